"""HTTP request and response models. They never leave ``llmos.server``."""
