"""ONNX Runtime vs plain MONAI/torch inference of the same trained network, on CPU.

    .venv/bin/python benchmarks/onnx_inference.py --model /tmp/radseg-bench/hip-xray-run/model --threads 2

Three measurements, same weights, same threads; the paths are timed in interleaved rounds
(so a change in the machine's load hits them alike) and the median pass is kept:

1. **network**: preprocessed network inputs (the model's patch size) at batch 1 (what the
   predictor runs for a fitted radiograph) and at ``--batch``: plain MONAI (the
   ``monai.networks.nets`` module, ``eval()`` and ``torch.no_grad()``, what a MONAI user runs)
   vs radseg's ONNX Runtime session (all graph optimisations, sequential execution, no
   thread spinning) and, for reference, the same session with thread spinning on.
2. **end to end**: ``Predictor.predict`` on full phantom images (preprocessing, network,
   resampling back, argmax), torch backend vs onnx backend; images per second.
3. **agreement**: share of pixels with the same label, torch vs onnx, over the test images.

The model bundle is exported to ONNX if it has no export yet (a copy is used, the input is
left untouched). Writes benchmarks/results/onnx_inference.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _phantoms import phantoms  # noqa: E402
from radseg.system import usable_cores  # the cores this process may use, not the host's

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--kind", default="hip-xray", help="phantom kind of the test images")
    parser.add_argument("--images", type=int, default=20, help="test images (phantom cases 60..)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/radseg-bench"))
    parser.add_argument("--tag", default="onnx_inference")
    args = parser.parse_args()

    import torch

    from radseg.infer.onnx import OnnxForward, export_onnx
    from radseg.infer.predictor import Predictor
    from radseg.models.bundle import load_bundle

    torch.set_num_threads(args.threads)
    workdir = Path(tempfile.mkdtemp(prefix="radseg-onnx-bench-"))
    model = workdir / "model"
    shutil.copytree(args.model, model)
    bundle = load_bundle(model)
    if bundle.onnx_bytes is None:
        export_onnx(bundle)
    bundle = load_bundle(model)
    all_cases = phantoms(args.kind, 60 + args.images, cache=args.cache)[60:]
    images = [image for _, image, _ in all_cases]
    load_before = os.getloadavg()

    # 1. network only: plain MONAI module vs ONNX Runtime, same input batch, interleaved rounds
    net = bundle.build_network()  # eval mode
    sessions = {"onnxruntime": OnnxForward(bundle.onnx_bytes, weights=bundle.weights_bytes, threads=args.threads),
                "onnxruntime, spinning threads": OnnxForward(bundle.onnx_bytes, weights=bundle.weights_bytes,
                                                             threads=args.threads, spinning=True)}
    rng = np.random.default_rng(0)
    network = {}
    logits_diff = 0.0
    for batch in (1, args.batch):
        x = torch.from_numpy(rng.normal(size=(batch, 1, *bundle.preprocessing.patch_size)).astype(np.float32))

        def monai_net(x=x):
            with torch.no_grad():
                return net(x)

        paths = {"monai": monai_net, **{name: (lambda s=s, x=x: s(x)) for name, s in sessions.items()}}
        times = {name: [] for name in paths}
        for fn in paths.values():
            fn()  # warm-up
        for _ in range(args.repeats):
            for name, fn in paths.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
        network[batch] = {name: batch / statistics.median(t) for name, t in times.items()}
        logits_diff = max(logits_diff, float((monai_net() - sessions["onnxruntime"](x)).abs().max()))

    # 2. end to end through the predictor, both backends (interleaved)
    by_torch = Predictor(bundle, device="cpu", backend="torch", threads=args.threads)
    by_onnx = Predictor(bundle, device="cpu", backend="onnx", threads=args.threads)
    e2e = {"torch": [], "onnx": []}
    for predictor in (by_torch, by_onnx):
        predictor.predict(images[0])  # warm-up
    for _ in range(max(1, args.repeats // 2)):
        for name, predictor in (("torch", by_torch), ("onnx", by_onnx)):
            start = time.perf_counter()
            for image in images:
                predictor.predict(image)
            e2e[name].append(time.perf_counter() - start)
    e2e_torch, e2e_onnx = statistics.median(e2e["torch"]), statistics.median(e2e["onnx"])

    # 3. agreement
    same = total = 0
    for image in images:
        a, b = by_torch.predict(image).array, by_onnx.predict(image).array
        same += int((a == b).sum())
        total += a.size
    load_after = os.getloadavg()
    shape = "x".join(str(s) for s in bundle.preprocessing.patch_size)
    record = {
        "command": " ".join([".venv/bin/python", "benchmarks/onnx_inference.py", *sys.argv[1:]]),
        "model": str(args.model), "architecture": bundle.architecture, "arch_kwargs": bundle.arch_kwargs,
        "patch": shape, "batch": args.batch, "threads": args.threads, "cpu_count": os.cpu_count(), "usable_cores": usable_cores(),
        "load_avg_before": load_before, "load_avg_after": load_after,
        "network_images_per_s": {str(b): r for b, r in network.items()},
        "network_speedup_onnx_vs_monai": {str(b): r["onnxruntime"] / r["monai"] for b, r in network.items()},
        "end_to_end_images_per_s": {"torch": len(images) / e2e_torch, "onnx": len(images) / e2e_onnx},
        "end_to_end_speedup": e2e_torch / e2e_onnx,
        "max_logit_difference": logits_diff, "same_label_fraction": same / total,
        "torch": torch.__version__, "onnxruntime": __import__("onnxruntime").__version__,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.tag}.json").write_text(json.dumps(record, indent=2))
    rows = []
    for batch, rates in network.items():
        base = rates["monai"]
        rows += [f"| network, batch {batch}: MONAI module, eval + no_grad | {base:.1f} | 1.00 |"]
        rows += [f"| network, batch {batch}: radseg {name} | {rate:.1f} | {rate / base:.2f}x |"
                 for name, rate in rates.items() if name != "monai"]
    lines = [
        "# ONNX Runtime vs plain MONAI inference (CPU)", "", f"Command: `{record['command']}`", "",
        f"Network: {bundle.architecture} {bundle.arch_kwargs}, input {shape}, {args.threads} threads, "
        f"median of {args.repeats} interleaved rounds; machine {usable_cores()} usable cores, 1-min load average "
        f"{load_before[0]:.2f} before, {load_after[0]:.2f} after (other jobs share the CPU).", "",
        "| path | images / s | ratio |", "| --- | --- | --- |", *rows,
        f"| end to end ({images[0].shape[0]}x{images[0].shape[1]} images): Predictor, torch | {len(images) / e2e_torch:.1f} | 1.00 |",
        f"| end to end: Predictor, onnx | {len(images) / e2e_onnx:.1f} | {e2e_torch / e2e_onnx:.2f}x |", "",
        f"Agreement: same label on {100 * same / total:.4f}% of {total:,} pixels over {len(images)} images; "
        f"largest logit difference {logits_diff:.2e}.", "",
        "Whole `radseg segment --backend onnx` runs (no torch imported) against a plain MONAI/torch script on "
        "real radiographs: `benchmarks/onnx_segment.py`, results in `benchmarks/results/onnx_segment.md`.", "",
    ]
    (RESULTS / f"{args.tag}.md").write_text("\n".join(lines))
    print("\n".join(lines))
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
