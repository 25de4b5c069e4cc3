"""The machine radseg runs on: how many cores this process may use."""

from __future__ import annotations

__all__ = ["usable_cores"]


def usable_cores() -> int:
    """The cores this process may use: its CPU affinity and a container's CPU quota (cgroups v1 and v2), as
    joblib's loky reads them, or ``LOKY_MAX_CPU_COUNT`` when set. ``os.cpu_count()`` counts the host's cores,
    so a pod limited to 2 CPUs on a 64-core node would start 64 threads and be throttled."""
    from joblib import cpu_count

    return max(1, int(cpu_count()))
