"""The hardware record of trained weights: stretches of epochs per device, --init sources, old manifests."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from radseg.models.hardware import describe_device, hardware_spans, run_hardware, trained_on  # noqa: E402


def test_each_stretch_of_epochs_on_one_device_is_one_span_so_a_run_resumed_elsewhere_says_so():
    history = [{"epoch": 1}, {"epoch": 2, "device": "cpu (2 cores)"}, {"epoch": 3, "device": "cpu (2 cores)"},
               {"epoch": 4, "device": "cuda (NVIDIA H100)"}, {"epoch": 5, "device": "cpu (2 cores)"}]
    assert hardware_spans(history) == [{"device": "not recorded", "epochs": [1, 1]},
                                       {"device": "cpu (2 cores)", "epochs": [2, 3]},
                                       {"device": "cuda (NVIDIA H100)", "epochs": [4, 4]},
                                       {"device": "cpu (2 cores)", "epochs": [5, 5]}]
    # devices in order of first use, each once
    assert trained_on({"hardware": hardware_spans(history)}) == ["not recorded", "cpu (2 cores)", "cuda (NVIDIA H100)"]


def test_a_gpu_is_named_and_several_processes_counted(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB HBM3")
    assert describe_device("cuda:0") == "cuda (NVIDIA H100 80GB HBM3)"
    assert describe_device(torch.device("cuda"), processes=4) == "4 x cuda (NVIDIA H100 80GB HBM3)"
    monkeypatch.setattr("radseg.models.hardware.usable_cores", lambda: 16)
    assert describe_device("cpu") == "cpu (16 cores)"


def test_manifests_from_before_the_record_fall_back_on_the_torch_build_only():
    assert trained_on({"environment": {"torch": "2.13.0+cpu", "cpu_count": 2}}) == ["cpu (2 cores)"]
    assert trained_on({"environment": {"torch": "2.13.0+cpu"}}) == ["cpu"]
    assert trained_on({"environment": {"torch": "2.11.0+cu130", "cpu_count": 16}}) == ["not recorded"]
    assert trained_on({}) == ["not recorded"]


def test_an_init_source_that_is_gone_is_not_recorded_rather_than_guessed(tmp_path):
    spans = run_hardware([{"epoch": 1, "device": "cpu (2 cores)"}], init=str(tmp_path / "moved"))
    assert spans == [{"device": "not recorded", "initialised_from": str(tmp_path / "moved")},
                     {"device": "cpu (2 cores)", "epochs": [1, 1]}]
