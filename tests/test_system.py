"""radseg.system: the cores this process may use, never the host's count when it is held to fewer."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from radseg.system import cgroup_cpu_quota, usable_cores


def test_the_same_count_as_joblib_on_this_machine(monkeypatch):
    joblib = pytest.importorskip("joblib")
    monkeypatch.delenv("LOKY_MAX_CPU_COUNT", raising=False)  # joblib's own cap, which radseg does not read
    assert usable_cores() == joblib.cpu_count()
    assert 1 <= usable_cores() <= (os.cpu_count() or 1)


@pytest.mark.parametrize("files, quota", [
    ({"cpu.max": "200000 100000\n"}, 2.0),  # cgroups v2: docker --cpus=2
    ({"cpu.max": "150000 100000\n"}, 1.5),
    ({"cpu.max": "max 100000\n"}, None),  # unlimited
    ({"cpu/cpu.cfs_quota_us": "50000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 0.5),  # cgroups v1
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),  # v1 unlimited
    ({"cpu.max": "garbled"}, None),
    ({}, None),  # no cgroup files (macOS, a host outside any limit)
])
def test_cgroup_quota_read_from_v2_and_v1_files(tmp_path, files, quota):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cgroup_cpu_quota(tmp_path, membership=tmp_path / "no-membership") == quota


@pytest.mark.parametrize("membership, files, quota", [
    # cgroups v2, the process in a nested group: its own limit, and a parent's tighter one binding it
    ("0::/user.slice/job\n", {"user.slice/job/cpu.max": "300000 100000", "user.slice/cpu.max": "max 100000"}, 3.0),
    ("0::/user.slice/job\n", {"user.slice/job/cpu.max": "300000 100000", "user.slice/cpu.max": "100000 100000"}, 1.0),
    ("0::/user.slice/job\n", {"cpu.max": "garbled", "user.slice/cpu.max": "250000 100000"}, 2.5),
    # cgroups v1 with cpu and cpuacct mounted together; other hierarchies' lines are not CPU limits
    ("4:memory:/slurm/job\n3:cpu,cpuacct:/slurm/job\n",
     {"cpu,cpuacct/slurm/job/cpu.cfs_quota_us": "400000", "cpu,cpuacct/slurm/job/cpu.cfs_period_us": "100000",
      "memory/slurm/job/cpu.cfs_quota_us": "100000", "memory/slurm/job/cpu.cfs_period_us": "100000"}, 4.0),
    # a container with its own cgroup mounted at the root, though /proc/self/cgroup names the host's path
    ("1:cpu:/docker/abc\n", {"cpu/cpu.cfs_quota_us": "150000", "cpu/cpu.cfs_period_us": "100000"}, 1.5),
    ("0::/a/b\n", {}, None),
    # a group outside this cgroup namespace ("/../x") is not under the mount: nothing there is read
    ("0::/../x\n", {"../x/cpu.max": "100000 100000"}, None),
])
def test_cgroup_quota_of_the_process_own_group_and_its_parents(tmp_path, membership, files, quota):
    (tmp_path / "proc-self-cgroup").write_text(membership)
    for name, text in files.items():
        (tmp_path / "fs" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "fs" / name).write_text(text)
    assert cgroup_cpu_quota(tmp_path / "fs", membership=tmp_path / "proc-self-cgroup") == quota


def test_a_quota_caps_the_cores_rounded_up(monkeypatch):
    monkeypatch.setattr("radseg.system.cgroup_cpu_quota", lambda *a, **k: 0.5)
    assert usable_cores() == 1  # half a CPU still runs one thread
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    monkeypatch.setattr("radseg.system.cgroup_cpu_quota", lambda *a, **k: allowed + 1.0)
    assert usable_cores() == allowed  # a quota above the CPUs it may run on changes nothing


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this platform")
def test_a_process_pinned_to_one_cpu_runs_one_torch_thread_in_the_predictor(tmp_path):
    """As ``taskset -c 0`` or a container's cpuset would pin it: the host count stays, the predictor
    uses one thread (torch's own default ignores the pinning)."""
    pytest.importorskip("torch")
    pytest.importorskip("monai")
    from radseg.models.bundle import ModelBundle
    from radseg.models.preprocess import Preprocessing
    from radseg.models.registry import build

    kwargs = {"channels": [4, 8], "strides": [2], "num_res_units": 0}
    net = build("unet", spatial_dims=2, in_channels=1, out_channels=2, overrides=kwargs)
    path = ModelBundle(architecture="unet", spatial_dims=2, in_channels=1, arch_kwargs=kwargs, head="multiclass",
                       class_values=[1], class_names=["thing"], preprocessing=Preprocessing(spatial_dims=2, size=(32, 32)),
                       state_dict=net.state_dict()).save(tmp_path / "tiny")
    code = ("import os, sys; os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]}); "
            "from radseg.system import usable_cores; from radseg.infer.predictor import Predictor; import torch; "
            "Predictor.load(sys.argv[1], device='cpu'); print(os.cpu_count(), usable_cores(), torch.get_num_threads())")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    host, usable, threads = map(int, done.stdout.split())
    assert (host, usable, threads) == (os.cpu_count(), 1, 1)
