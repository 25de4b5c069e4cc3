"""The machine radseg runs on: how many cores this process may use.

Written here rather than taken from joblib's ``cpu_count`` (which the tests compare it with): importing
joblib costs ~0.17 s, and ``radseg info`` and ``convert`` answer in a fraction of a second."""

from __future__ import annotations

import math
import os
from pathlib import Path

__all__ = ["usable_cores", "cgroup_cpu_quota"]

CGROUP = Path("/sys/fs/cgroup")
MEMBERSHIP = Path("/proc/self/cgroup")  # which cgroup this process is in, per hierarchy


def usable_cores() -> int:
    """The cores this process may use: the CPUs it may run on (its affinity), capped by a container's CPU
    quota (cgroups v2 or v1), rounded up. ``os.cpu_count()`` counts the host's cores, so a pod limited to
    2 CPUs on a 64-core node would start 64 threads and be throttled."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = cgroup_cpu_quota()
    if quota is not None:
        cores = min(cores, math.ceil(quota))
    return max(1, cores)


def cgroup_cpu_quota(root: Path = CGROUP, membership: Path = MEMBERSHIP) -> float | None:
    """CPUs' worth of time per period this process may use, or None when unlimited or unreadable: the
    smallest quota from its own cgroup (``membership`` names it) up to ``root``, since a parent's limit
    binds its children (a systemd ``CPUQuota=`` slice, a batch job's step under its job). Quotas are
    ``cpu.max`` (cgroups v2) or ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (v1). A container that
    mounts its own cgroup at ``root`` is read there whatever path ``membership`` shows."""
    quotas = [q for q in map(_quota_in, _own_cgroup_folders(root, membership)) if q is not None]
    return min(quotas) if quotas else None


def _own_cgroup_folders(root: Path, membership: Path) -> list[Path]:
    """The folders of this process's CPU cgroup and of every ancestor, then the mount points themselves."""
    bases = [root, root / "cpu"]
    folders: list[Path] = []
    try:
        lines = membership.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "":
            base = root  # cgroups v2: one hierarchy
        elif "cpu" in controllers.split(","):
            base = root / controllers
            bases.append(base)
        else:
            continue
        parts = [p for p in path.strip().split("/") if p]
        if ".." in parts:  # a group outside this cgroup namespace: not under the mount
            continue
        folders += [base.joinpath(*parts[:n]) for n in range(len(parts), 0, -1)]
    return folders + bases


def _quota_in(folder: Path) -> float | None:
    try:
        quota, period = (folder / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None
