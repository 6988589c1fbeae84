"""HTTP routes, one module per group. Routes raise domain errors; ``server/errors.py`` maps them."""
