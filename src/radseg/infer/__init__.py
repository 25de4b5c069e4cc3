"""Inference: ``radseg segment`` and the ONNX backend (see :mod:`radseg.infer.predictor`)."""

import radseg.models  # noqa: F401  (OpenMP wait policy before torch loads: radseg.models.cpu)
