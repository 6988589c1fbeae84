"""The data subsystem: tenants' collections of documents (parsed, chunked, embedded, versioned),
hybrid retrieval over them, and fine-tuning datasets. Start at :mod:`llmos.data.service`."""
