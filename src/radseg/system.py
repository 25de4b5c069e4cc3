"""The machine radseg runs on: how many cores this process may use.

Written here rather than taken from joblib's ``cpu_count`` (which the tests compare it with): importing
joblib costs ~0.17 s, and ``radseg info`` and ``convert`` answer in a fraction of a second."""

from __future__ import annotations

import math
import os
from pathlib import Path

__all__ = ["usable_cores", "cgroup_cpu_quota"]

CGROUP = Path("/sys/fs/cgroup")


def usable_cores() -> int:
    """The cores this process may use: the CPUs it may run on (its affinity), capped by a container's CPU
    quota (cgroups v2 or v1), rounded up. ``os.cpu_count()`` counts the host's cores, so a pod limited to
    2 CPUs on a 64-core node would start 64 threads and be throttled."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = cgroup_cpu_quota()
    if quota is not None:
        cores = min(cores, math.ceil(quota))
    return max(1, cores)


def cgroup_cpu_quota(root: Path = CGROUP) -> float | None:
    """CPUs' worth of time per period the process's cgroup may use (``cpu.max`` of cgroups v2, else v1's
    ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``), or None when unlimited or unreadable."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None
