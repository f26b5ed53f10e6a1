"""Images: the OCI store, layers, archives and base images (see docs/design.md)."""
