"""radseg.system.usable_cores: the cores this process may use, never the host's count when it is held to fewer."""

from __future__ import annotations

import os

import pytest

from radseg.system import usable_cores


def test_never_more_than_the_cpus_this_process_may_run_on():
    cores = usable_cores()
    assert 1 <= cores <= (os.cpu_count() or 1)
    if hasattr(os, "sched_getaffinity"):
        assert cores <= len(os.sched_getaffinity(0))


def test_a_set_limit_is_honoured(monkeypatch):
    monkeypatch.setenv("LOKY_MAX_CPU_COUNT", "1")
    assert usable_cores() == 1


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this platform")
def test_a_process_pinned_to_one_cpu_gets_one_thread():
    import subprocess
    import sys

    # a child pinned to one CPU, as `taskset -c 0` or a container's cpuset would: the host count stays 2 or more
    code = ("import os; os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]}); "
            "from radseg.system import usable_cores; print(os.cpu_count(), usable_cores())")
    host, usable = map(int, subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                           check=True).stdout.split())
    assert usable == 1
    assert host == os.cpu_count()


def test_the_predictor_runs_as_many_torch_threads_as_cores_it_may_use(monkeypatch, tmp_path):
    torch = pytest.importorskip("torch")
    from radseg.infer.predictor import Predictor
    from radseg.models.bundle import ModelBundle
    from radseg.models.preprocess import Preprocessing
    from radseg.models.registry import build

    kwargs = {"channels": [4, 8], "strides": [2], "num_res_units": 0}
    net = build("unet", spatial_dims=2, in_channels=1, out_channels=2, overrides=kwargs)
    path = ModelBundle(architecture="unet", spatial_dims=2, in_channels=1, arch_kwargs=kwargs, head="multiclass",
                       class_values=[1], class_names=["thing"], preprocessing=Preprocessing(spatial_dims=2, size=(32, 32)),
                       state_dict=net.state_dict()).save(tmp_path / "tiny")
    before = torch.get_num_threads()
    monkeypatch.setenv("LOKY_MAX_CPU_COUNT", "1")
    try:
        Predictor.load(path, device="cpu")
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
