"""`radseg train --nproc N`: data-parallel training on 2 CPU processes (gloo) trains the 1-process model.

Tolerance: 2 processes sum the same numbers in another order (per-slice sums, then an
all-reduce; 1 thread each instead of 2), so they differ from 1 process by float32 rounding,
and AdamW lets that grow a little with every step. Over the 12 steps here: losses within
rtol 1e-4 (measured 1e-7 at the first step, <= 1e-5 at the 12th), weights and outputs within 5e-3
relative L2 (measured 5e-4); 2 processes against 2 (straight vs interrupted and resumed) are equal bit for bit.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

torch = pytest.importorskip("torch")
pytest.importorskip("monai")
if not torch.distributed.is_available():
    pytest.skip("torch without torch.distributed", allow_module_level=True)

import radseg.io as rio  # noqa: E402
from radseg.commands import train as train_commands  # noqa: E402
from radseg.errors import RadsegError  # noqa: E402
from radseg.models.bundle import load_bundle  # noqa: E402
from radseg.train import distributed  # noqa: E402
from radseg.train.config import TrainConfig  # noqa: E402
from radseg.train.data import load_prepared  # noqa: E402
from radseg.train.loop import resolve_config, train  # noqa: E402
from radseg.train.losses import make_loss  # noqa: E402
from radseg.train.session import Session, load_checkpoint  # noqa: E402
from tests.train.shapes import disc_case  # noqa: E402

TINY = {"channels": [8, 16, 32], "strides": [2, 2], "num_res_units": 1}
PLAN = dict(epochs=4, iters_per_epoch=3, batch_size=4, val_every=1, lr=1e-2, threads=2)
CLI_PLAN = ["--size", "64,64", "--epochs", "4", "--iters-per-epoch", "3", "--batch-size", "4", "--val-every", "1",
            "--lr", "0.01", "--threads", "2", "--model-args", json.dumps(TINY)]
STEPS = PLAN["epochs"] * PLAN["iters_per_epoch"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Seven disc/square cases, two of them for validation (so each of 2 processes validates one)."""
    root = tmp_path_factory.mktemp("ddp") / "prepared"
    rng = np.random.default_rng(0)
    for i in range(7):
        image, labels = disc_case(rng)
        rio.write(image, root / "images" / f"case{i}.nii.gz")
        rio.write(labels, root / "labels" / f"case{i}.nii.gz")
    splits = {"train": [f"case{i}" for i in range(5)], "val": ["case5", "case6"]}
    (root / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "disc": 1, "square": 2},
                                                   "splits": splits}))
    return root


def _config(out, **changes) -> TrainConfig:
    return TrainConfig(**{"output": out, "preprocessing": {"size": (64, 64)}, "arch_kwargs": TINY, **PLAN, **changes})


def _run(config, data):
    losses = []

    def record(event):
        if event["kind"] == "iteration":
            losses.append(event["loss"])

    return train(config, data=data, on_event=record), np.array(losses)


@pytest.fixture(scope="module")
def runs(prepared, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    one, one_losses = _run(_config(out / "one"), prepared)
    two, two_losses = _run(_config(out / "two", nproc=2), prepared)
    return {"out": out, "one": one, "one_losses": one_losses, "two": two, "two_losses": two_losses}


def _last(run):
    return load_checkpoint(run / "checkpoints" / "last.pt")


def _relative(a, b) -> float:
    return float((a - b).norm() / a.norm())


def test_two_processes_train_the_one_process_model(runs):
    one, two = runs["one_losses"], runs["two_losses"]
    assert len(one) == len(two) == STEPS
    np.testing.assert_allclose(two, one, rtol=1e-4)  # measured: 1e-7 at the first step, <= 1e-5 at the 12th
    wa, wb = _last(runs["one"].run_dir)["model"], _last(runs["two"].run_dir)["model"]
    assert wa.keys() == wb.keys()
    # A conv bias right before instance norm cannot change the output: its gradient is rounding noise
    # that AdamW scales to full-sized steps, so it drifts apart (as between any two rounding orders).
    inert = {k for k in wa if k.endswith(".conv.bias") and k[:-len("conv.bias")] + "adn.A.weight" in wa}
    assert inert and len(inert) < len(wa) // 3
    assert max(_relative(wa[k], wb[k]) for k in set(wa) - inert) < 5e-3  # measured 5e-4
    x = torch.randn(2, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    outputs = []
    for weights in (wa, wb):
        net = load_bundle(runs["one"].model_path).build_network(load_weights=False)
        net.load_state_dict(weights)
        with torch.no_grad():
            outputs.append(net.eval()(x))
    assert _relative(*outputs) < 5e-3  # measured 4e-4
    assert [r["val_dice"] for r in runs["two"].history] == pytest.approx([r["val_dice"] for r in runs["one"].history],
                                                                          abs=1e-3)
    manifest = load_bundle(runs["two"].model_path).manifest
    assert manifest["processes"] == {"nproc": 2, "backend": "gloo", "batch_per_process": 2, "threads_per_process": 1}
    assert manifest["config"]["nproc"] == 2
    assert load_bundle(runs["one"].model_path).manifest["processes"]["nproc"] == 1


def test_validation_gathered_over_processes_is_the_one_process_metric(runs, prepared, tmp_path):
    """The last epoch's Dice (2 processes, one validation case each) against 1 process on the same weights."""
    two = runs["two"]
    dataset = load_prepared(prepared)
    config = resolve_config(_config(tmp_path / "check", threads=1), dataset)  # 1 thread: as each of the 2 processes
    session = Session(config, dataset, on_event=lambda e: None)
    session._setup()
    assert len(session.grid_val) == 2
    session.net.load_state_dict(_last(two.run_dir)["model"])
    dice, per_class = session.validate()
    last = two.history[-1]
    assert dice == last["val_dice"]
    assert per_class == [last["dice_disc"], last["dice_square"]]


def test_interrupted_two_process_run_resumes_exactly_through_the_cli(runs, prepared):
    """Stop after epoch 2 (as Ctrl-C would), then `radseg train --nproc 2 --resume`: the straight run's weights."""
    out = runs["out"] / "resumed"

    def stop_after_epoch_2(event):
        if event["kind"] == "epoch" and event["epoch"] == 2:
            raise KeyboardInterrupt

    stopped = train(_config(out, nproc=2), data=prepared, on_event=stop_after_epoch_2)
    assert stopped.stopped == "interrupted" and stopped.epochs_done == 2
    assert load_bundle(stopped.model_path).manifest["metrics"]["iterations"] == 2 * PLAN["iters_per_epoch"]

    result = _cli(["train", "--data", prepared, "-o", out, "--resume", "--nproc", "2", "-q"])
    assert result.exit_code == 0, result.output
    assert "completed after 4 epoch(s)" in result.output
    straight, resumed = _last(runs["two"].run_dir), _last(out)
    assert all(torch.equal(straight["model"][k], resumed["model"][k]) for k in straight["model"])
    assert [r["train_loss"] for r in resumed["history"]] == [r["train_loss"] for r in straight["history"]]
    assert [r["val_dice"] for r in resumed["history"]] == [r["val_dice"] for r in straight["history"]]
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("model")) == ["model"]  # one bundle
    assert load_bundle(out / "model").manifest["processes"]["nproc"] == 2


def _cli(args):
    app = typer.Typer()
    app.callback()(lambda: None)
    train_commands.register(app)
    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_refuses_bad_process_counts(prepared, tmp_path):
    base = ["train", "--data", prepared, "-o", tmp_path / "run", *CLI_PLAN, "-q"]
    zero = _cli([*base, "--nproc", "0"])
    assert zero.exit_code == 1 and "--nproc must be" in zero.output and "at least 1" in zero.output
    uneven = _cli([*base[:-1], "--batch-size", "3", "--nproc", "2", "-q"])
    assert uneven.exit_code == 1
    assert "batch size 3 is not divisible by --nproc 2" in uneven.output
    nccl = _cli([*base, "--nproc", "2", "--device", "cpu", "--backend", "nccl"])
    assert nccl.exit_code == 1 and "nccl needs CUDA" in nccl.output
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_a_failing_process_is_reported_not_waited_for(prepared, tmp_path):
    """Every process fails building the network: the error comes back with its exit status, nothing hangs."""
    with pytest.raises(RadsegError, match=r"training process [01] failed: TypeError.*no_such_option") as caught:
        train(_config(tmp_path / "bad", nproc=2, arch_kwargs={**TINY, "no_such_option": 1}), data=prepared)
    assert caught.value.exit_code == 1


class _OneRank:
    """A one-process 'group': GlobalBatchLoss must then be MONAI's DiceCELoss / multi-label loss exactly."""

    world, _device = 1, "cpu"

    def all_sum(self, tensor):
        return tensor


@pytest.mark.parametrize("head", ["multiclass", "multilabel"])
def test_global_batch_loss_is_the_monai_loss_on_one_process(head):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 3, 16, 16, generator=gen, requires_grad=True)
    if head == "multiclass":
        target = torch.randint(0, 3, (4, 1, 16, 16), generator=gen)
    else:
        target = (torch.rand(4, 3, 16, 16, generator=gen) > 0.6).float()
    ours = distributed.GlobalBatchLoss(head, _OneRank())
    a = ours(logits, target)
    (grad_a,) = torch.autograd.grad(a, logits)
    b = make_loss(head)(logits, target)
    (grad_b,) = torch.autograd.grad(b, logits)
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(grad_a, grad_b, rtol=1e-5, atol=1e-9)
    assert ours.value == pytest.approx(float(b.detach()), rel=1e-6)


def test_process_share_of_threads_and_batch():
    group = distributed.Group(1, 2, "gloo", stop=None)
    assert group.threads(5) == 2 and group.threads(1) == 1
    assert group.shard(torch.arange(4)).tolist() == [2, 3]
    assert group.mine(5) == [1, 3]
    assert distributed.LOCAL.threads(3) == 3 and distributed.LOCAL.mine(2) == [0, 1]
