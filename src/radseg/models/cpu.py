"""Device choice for training and inference, and CPU threading that survives a shared machine.

:func:`resolve_device` turns ``auto``/``cpu``/``cuda[:N]`` into the device both ``radseg train``
and ``radseg segment`` use (a clear error when CUDA is asked for and absent).

OpenMP threads sleep instead of spinning:

PyTorch's CPU kernels run on OpenMP (libgomp), whose idle threads by default busy-wait for
the next parallel region. On a machine where other jobs keep every core busy, a spinning
thread holds a core the working thread needs, and each of the hundreds of parallel regions
of a training step waits for a descheduled partner: measured on 2 shared cores (load average
about 6), a U-Net training step with 2 threads took 2.9 s with the default policy and 0.26 s
with ``OMP_WAIT_POLICY=PASSIVE`` (1 thread: 0.16-0.25 s). On an idle machine the passive
policy costs a few percent at most.

libgomp reads the policy once, when torch is first imported, so :func:`passive_openmp` runs
when :mod:`radseg.models`, :mod:`radseg.train` or :mod:`radseg.infer` is imported; it does
nothing when torch is already loaded or the variable is set (an explicit
``OMP_WAIT_POLICY=ACTIVE`` wins).
"""

from __future__ import annotations

import os
import sys

__all__ = ["passive_openmp", "resolve_device"]


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available else ``cpu``; ``cuda`` without a GPU is an error."""
    import torch

    from radseg.errors import RadsegError

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RadsegError("--device cuda: no CUDA device is available (this torch build or machine has none)")
    if device != "cpu" and not device.startswith("cuda"):
        raise RadsegError(f"device must be cpu, cuda or auto, got {device!r}")
    return device


def passive_openmp() -> bool:
    """Default ``OMP_WAIT_POLICY`` to ``PASSIVE`` if torch is not loaded yet; True if it now is."""
    if "torch" in sys.modules:
        return os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE"
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return os.environ["OMP_WAIT_POLICY"].upper() == "PASSIVE"
