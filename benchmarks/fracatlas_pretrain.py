"""Does self-supervised pretraining help the FracAtlas model learn? An early read on the block holdout.

    .venv/bin/python benchmarks/fracatlas_pretrain.py --pretrain runs/fracatlas6/pretrain \\
        --tuned runs/fracatlas6/train-ssl --scratch runs/fracatlas5/train --data runs/fracatlas5/prepared

``--tuned`` is round 5's recipe started from the ``radseg pretrain`` weights (``--init``), ``--scratch``
round 5 itself from random weights: same seed, data, learning-rate schedule and held-out images, so
their holdout Dice at the same epoch differ only by the start. This reads both runs' ``metrics.csv``
(no model is scored here, the valid split is never read), draws the two curves, and shows what the
pretrained network does: training images (never held-out ones), corrupted as in pretraining, and restored.
Writes ``benchmarks/results/fracatlas_pretrain.md`` and two figures beside it.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from fracatlas_baseline import _fmt, publish

HERE = Path(__file__).resolve().parent


def holdout_curves(scratch: pd.DataFrame, tuned: pd.DataFrame) -> pd.DataFrame:
    """Holdout Dice of both runs at the epochs both validated (one row per epoch)."""
    a = scratch.dropna(subset=["val_dice"])[["epoch", "val_dice"]].rename(columns={"val_dice": "scratch"})
    b = tuned.dropna(subset=["val_dice"])[["epoch", "val_dice"]].rename(columns={"val_dice": "pretrained"})
    return a.merge(b, on="epoch", how="inner").sort_values("epoch").reset_index(drop=True)


def first_epoch_above(curve: pd.Series, epochs: pd.Series, level: float) -> int | None:
    above = epochs[curve.to_numpy() > level]
    return int(above.iloc[0]) if len(above) else None


def _plot_curves(both: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(7, 4), dpi=100)
    axis.plot(both["epoch"], both["scratch"], "o-", ms=3, label="round 5, random weights")
    axis.plot(both["epoch"], both["pretrained"], "o-", ms=3, label="round 5 recipe, pretrained weights")
    axis.set_xlabel("epoch (same learning-rate schedule)")
    axis.set_ylabel("holdout Dice, fractured")
    axis.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _plot_restorations(pretrain_run: Path, data: Path, path: Path, count: int = 4) -> None:
    """Training images: a patch, the patch corrupted as in pretraining, and the network's restoration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from radseg.datasets.prepared import open_prepared
    from radseg.models.preprocess import Preprocessing, prepare
    from radseg.models.pretrained import read_pretrained
    from radseg.models.registry import build
    from radseg.train.pretext import corrupt

    state = read_pretrained(pretrain_run / "pretrained.pt")
    pre = Preprocessing.from_dict(state["preprocessing"])
    net = build(state["architecture"], spatial_dims=state["spatial_dims"], in_channels=1, out_channels=1,
                patch_size=pre.patch_size, overrides=state["arch_kwargs"])
    net.load_state_dict(state["state_dict"])
    net.eval()
    trained_on = state["manifest"]["data"]["train_cases"]
    rng = np.random.default_rng(0)
    chosen = set(rng.choice(trained_on, count, replace=False))
    cases = [c for c in open_prepared(data).cases if c.case_id in chosen]
    fig, axes = plt.subplots(count, 3, figsize=(7.5, 2.5 * count), dpi=100)
    for row, case in zip(axes, cases):
        x, _ = prepare(case.image, pre)
        size = pre.patch_size
        top = [(s - p) // 2 for s, p in zip(x.shape[1:], size)]
        patch = x[:, top[0]:top[0] + size[0], top[1]:top[1] + size[1]]
        damaged = corrupt(patch, rng)
        with torch.no_grad():
            restored = net(torch.from_numpy(damaged)[None])[0].numpy()
        low, high = float(patch.min()), float(patch.max())
        for axis, image, title in zip(row, (patch, damaged, restored), ("training patch", "corrupted", "restored")):
            axis.imshow(image[0], cmap="gray", vmin=low, vmax=high)
            axis.set_title(f"{case.case_id}: {title}" if title == "training patch" else title, fontsize=8)
            axis.axis("off")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrain", type=Path, required=True)
    parser.add_argument("--tuned", type=Path, required=True)
    parser.add_argument("--scratch", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--results", type=Path, default=HERE / "results" / "fracatlas_pretrain.md")
    args = parser.parse_args(argv)

    from radseg.models.pretrained import read_pretrained

    manifest = read_pretrained(args.pretrain / "pretrained.pt")["manifest"]
    losses = pd.read_csv(args.pretrain / "metrics.csv")
    both = holdout_curves(pd.read_csv(args.scratch / "metrics.csv"), pd.read_csv(args.tuned / "metrics.csv"))
    if both.empty:
        print("no epoch validated by both runs yet", file=sys.stderr)
        return 1
    curves, pictures = args.results.with_suffix(".png"), args.results.with_name(args.results.stem + "_restored.png")
    _plot_curves(both, curves)
    _plot_restorations(args.pretrain, args.data, pictures)
    metrics, config = manifest["metrics"], manifest["config"]
    planned = json.loads((args.tuned / "config.json").read_text())["epochs"]
    last = both.iloc[-1]
    lines = [
        "# FracAtlas: self-supervised pretraining (radseg pretrain), an early read on the block holdout", "",
        "```", "python benchmarks/fracatlas_pretrain.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])), "```", "",
        f"Pretraining: {manifest['data']['n_train']} training images (labels unused; the "
        f"block holdout's, valid and test images never seen), {config['arch_kwargs']['channels']} U-Net, {metrics['epochs_done']} epochs of "
        f"{config['iters_per_epoch']} batches of {config['batch_size']} patches, {metrics['train_seconds'] / 60:.0f} min on "
        f"{', '.join(span['device'] for span in manifest['hardware'])}, stopped: {metrics['stopped']}; restoration "
        f"loss (MSE on z-scored grey levels) {losses['train_loss'].iloc[0]:.3f} in the first epoch, {metrics['final_loss']:.3f} in the last.", "",
        f"Fine-tuning: round 5's recipe (`{args.scratch}`), only `--init` differs (`{args.tuned}`). Holdout Dice at the epochs both "
        f"validated, up to epoch {int(last['epoch'])} of {planned}:", "",
        "| epoch | random weights (round 5) | pretrained |", "| --- | --- | --- |",
    ]
    shown = both[(both["epoch"] % 48 == 0) | (both.index == len(both) - 1)]
    lines += [f"| {int(r.epoch)} | {_fmt(r.scratch)} | {_fmt(r.pretrained)} |" for r in shown.itertuples()]
    firsts = {name: first_epoch_above(both[name], both["epoch"], 0.05) for name in ("scratch", "pretrained")}
    lines += ["", f"First validation with holdout Dice above 0.05: epoch {firsts['scratch']} from random weights, "
              f"{firsts['pretrained']} pretrained. Mean holdout Dice over the common epochs: "
              f"{both['scratch'].mean():.3f} and {both['pretrained'].mean():.3f}.", "",
              "Holdout Dice is the checkpoint-selection signal, not the issue's figures (mask AP50, AUC): "
              "this read decides nothing; the rule (`runs/fracatlas6/RULE-ssl.txt`) compares the finished runs as "
              "candidates on the holdout.", "",
              f"![holdout Dice]({curves.name})", "", f"![restorations]({pictures.name})", "",
              f"Written {pd.Timestamp.now(tz='UTC'):%Y-%m-%d %H:%M} UTC."]
    publish(lines, args.results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
