"""Model architectures, task presets, and self-contained model bundles."""
