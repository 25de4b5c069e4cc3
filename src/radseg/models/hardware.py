"""What hardware trained a bundle's weights: recorded per epoch by ``radseg train``, kept in the
manifest as stretches of epochs per device (a run resumed on other hardware, or started from another
run's weights with ``--init``, names each), and carried by ensembles for each member."""

from __future__ import annotations

from typing import Any

from radseg.system import usable_cores

NOT_RECORDED = "not recorded"


def describe_device(device, processes: int = 1) -> str:
    """The GPU's name, or the CPU's cores; ``N x`` in front when N processes train together."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        name = f"cuda ({torch.cuda.get_device_name(device)})"
    else:
        name = f"cpu ({usable_cores()} cores)"
    return f"{processes} x {name}" if processes > 1 else name


def hardware_spans(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive epochs of a run's history on one device: ``[{"device", "epochs": [first, last]}]``."""
    spans: list[dict[str, Any]] = []
    for row in history:
        name = row.get("device") or NOT_RECORDED  # epochs written before radseg recorded the device
        if spans and spans[-1]["device"] == name:
            spans[-1]["epochs"][1] = row["epoch"]
        else:
            spans.append({"device": name, "epochs": [row["epoch"], row["epoch"]]})
    return spans


def run_hardware(history: list[dict[str, Any]], init: str | None = None) -> list[dict[str, Any]]:
    """The manifest's ``hardware``: the ``--init`` bundle's devices (marked ``initialised_from``), then this
    run's spans, so the record covers every step that shaped the weights."""
    from radseg.errors import RadsegError
    from radseg.models.bundle import load_bundle
    from radseg.models.pretrained import pretrained_path, read_pretrained

    before: list[dict[str, Any]] = []
    if init:
        try:
            found = pretrained_path(init)  # pretrained weights of 'radseg pretrain' record theirs too
            manifest = read_pretrained(found)["manifest"] if found else load_bundle(init, weights=False).manifest
            devices = trained_on(manifest or {})
        except (RadsegError, OSError):  # moved or deleted since: say so rather than guess
            devices = [NOT_RECORDED]
        before = [{"device": device, "initialised_from": str(init)} for device in devices]
    return before + hardware_spans(history)


def trained_on(manifest: dict[str, Any]) -> list[str]:
    """The devices, in order of first use, that trained a bundle's weights, from its manifest (an
    ensemble's: its members'). Runs from before radseg recorded them: a CPU-only torch build could
    only have used the CPU; otherwise "not recorded"."""
    members = (manifest.get("ensemble") or {}).get("members")
    if members:
        return list(dict.fromkeys(d for member in members for d in member.get("trained_on") or [NOT_RECORDED]))
    spans = manifest.get("hardware")
    if spans:
        return list(dict.fromkeys(span["device"] for span in spans))
    environment = manifest.get("environment") or {}
    if str(environment.get("torch", "")).endswith("+cpu"):
        cores = environment.get("cpu_count")
        return [f"cpu ({cores} cores)" if cores else "cpu"]
    return [NOT_RECORDED]
