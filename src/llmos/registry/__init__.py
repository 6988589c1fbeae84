"""Model management: names, manifests, the content-addressed blob store, sources, the catalog."""
