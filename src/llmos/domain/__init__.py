"""Domain types: the plain frozen values the services and ``storage`` exchange.

They sit below ``storage`` so that repositories return them without importing the services
above (``registry``, ``data``, ``security``), and import nothing of llmos but ``types`` and
``errors``:

* :mod:`llmos.domain.manifest`: what a model name resolves to (manifests, their files).
* :mod:`llmos.domain.progress`: progress reports of long registry and blob-store operations.
* :mod:`llmos.domain.data`: collections, documents, chunks, search hits, datasets.
* :mod:`llmos.domain.tenancy`: tenants, API keys, quotas, usage and audit events.
* :mod:`llmos.domain.training`: fine-tuning jobs, hyperparameters, events, checkpoints.
"""
