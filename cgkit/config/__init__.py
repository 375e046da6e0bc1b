"""Config files: the typed model, the position-aware YAML reader, the layered loader, the schema."""
