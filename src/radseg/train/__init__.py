"""Training: ``radseg train`` (see :mod:`radseg.train.loop`)."""

import radseg.models  # noqa: F401  (OpenMP wait policy before torch loads: radseg.models.cpu)
