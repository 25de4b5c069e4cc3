"""Model architectures, task presets, and self-contained model bundles."""

from radseg.models.cpu import passive_openmp as _passive_openmp

_passive_openmp()  # before torch is imported (see radseg.models.cpu)
