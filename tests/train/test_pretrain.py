"""`radseg pretrain` (restoration of corrupted images, Models Genesis) and `radseg train --init` from its weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from radseg.errors import RadsegError, ReadError  # noqa: E402
from radseg.models.bundle import load_bundle  # noqa: E402
from radseg.models.pretrained import read_pretrained  # noqa: E402
from radseg.train.config import TrainConfig  # noqa: E402
from radseg.train.data import from_pairs  # noqa: E402
from radseg.train.loop import train  # noqa: E402
from radseg.train.pretext import bezier_map, corrupt, in_paint, out_paint, shuffle_blocks  # noqa: E402
from radseg.train.pretrain import pretrain  # noqa: E402
from tests.train.shapes import disc_case  # noqa: E402

NET = {"channels": [8, 16, 32], "strides": [2, 2], "num_res_units": 0}


class _Scripted:
    """A generator stand-in that returns the given numbers in order (to set the Bezier control points)."""

    def __init__(self, *values: float) -> None:
        self.values = list(values)

    def random(self, size=None):
        if size is None:
            return self.values.pop(0)
        return np.array([self.values.pop(0) for _ in range(size)])


def test_the_bezier_map_against_curves_worked_by_hand():
    unit = np.linspace(0, 1, 11)[None]
    # control points on the diagonal: the curve is the line y = x; upside down it is y = 1 - x
    assert np.allclose(bezier_map(unit, _Scripted(1 / 3, 1 / 3, 2 / 3, 2 / 3, 0.1)), unit, atol=1e-3)
    assert np.allclose(bezier_map(unit, _Scripted(1 / 3, 1 / 3, 2 / 3, 2 / 3, 0.9)), 1 - unit, atol=1e-3)
    # p1 = (0, 1), p2 = (1, 0): x(t) = 3t^2 - 2t^3, y(t) = 3t - 6t^2 + 4t^3. At t = 1/4, x = 5/32 and
    # y = 7/16; upside down x(t) pairs with y(1 - t), and y(3/4) = 9/16
    x = np.array([[0.0, 5 / 32, 0.5, 1.0]])
    assert np.allclose(bezier_map(x, _Scripted(0, 1, 1, 0, 0.1), samples=20001), [[0, 7 / 16, 0.5, 1]], atol=1e-3)
    assert np.allclose(bezier_map(x, _Scripted(0, 1, 1, 0, 0.9), samples=20001), [[1, 9 / 16, 0.5, 0]], atol=1e-3)
    # random curves stay in [0, 1] and are monotone, about half of them inverted
    rng = np.random.default_rng(3)
    inverted = 0
    for _ in range(40):
        out = bezier_map(unit, rng)[0]
        assert out.min() >= 0 and out.max() <= 1
        steps = np.diff(out)
        assert np.all(steps >= -1e-12) or np.all(steps <= 1e-12)
        inverted += bool(out[0] > out[-1])
    assert 10 <= inverted <= 30


def test_shuffling_moves_pixels_only_inside_a_block():
    patch = np.arange(40 * 50, dtype=float).reshape(1, 40, 50)  # each value names its place
    out = shuffle_blocks(patch, np.random.default_rng(0), blocks=1)
    moved = np.argwhere(out[0] != patch[0])
    assert len(moved) > 0
    rows, cols = moved[:, 0], moved[:, 1]
    assert rows.max() - rows.min() < 40 // 10 and cols.max() - cols.min() < 50 // 10  # one block, sides <= 1/10
    assert np.array_equal(np.sort(out[0][out[0] != patch[0]]), np.sort(patch[0][out[0] != patch[0]]))
    many = shuffle_blocks(patch, np.random.default_rng(1))[0]
    here = np.indices(many.shape)
    came_from = np.stack(np.divmod(many.astype(int), 50))
    assert np.abs(came_from - here).max(axis=(1, 2)).tolist() <= [40 // 10 - 1, 50 // 10 - 1]
    # blocks cover the patch about twice over: most pixels move (a 1-pixel block or a fixed point does not)
    assert (many != patch[0]).mean() > 0.6


def test_painting_replaces_boxes_or_all_but_boxes():
    patch = np.full((1, 60, 60), 2.0)  # outside [0, 1]: noise can never equal it
    painted = 0
    for seed in range(6):
        inside = in_paint(patch, np.random.default_rng(seed))
        changed = inside != 2.0
        assert changed.mean() <= 5 * (1 / 3) ** 2 + 1e-9 and (not changed.any() or inside[changed].max() < 1)
        painted += bool(changed.any())
        kept = (out_paint(patch, np.random.default_rng(seed)) == 2.0).sum()
        assert int(60 * 3 / 7) ** 2 <= kept < patch.size
    assert painted >= 5  # no box only with chance 0.05


def test_a_corrupted_patch_keeps_its_shape_type_and_grey_range_and_is_seeded():
    patch = np.random.default_rng(0).normal(size=(1, 32, 32)).astype(np.float32)
    a, b = corrupt(patch, np.random.default_rng(5)), corrupt(patch, np.random.default_rng(5))
    assert a.shape == patch.shape and a.dtype == np.float32 and np.array_equal(a, b)
    assert a.min() >= patch.min() - 1e-5 and a.max() <= patch.max() + 1e-5 and not np.allclose(a, patch)


def _config(out, **changes):
    options = dict(output=out, preprocessing={"size": (48, 48)}, arch_kwargs=NET, epochs=4, iters_per_epoch=4,
                   batch_size=2, lr=1e-2, threads=1, val_every=1)
    return TrainConfig(**{**options, **changes})


@pytest.fixture(scope="module")
def discs():
    rng = np.random.default_rng(0)
    return from_pairs([disc_case(rng) for _ in range(6)])


def test_pretraining_learns_leaves_the_holdout_alone_and_resumes_exactly(tmp_path, discs):
    straight = pretrain(_config(tmp_path / "a", holdout=0.34, holdout_order="last"), discs)
    assert straight.stopped == "completed" and straight.epochs_done == 4
    state = read_pretrained(straight.weights)
    history = torch.load(tmp_path / "a/checkpoints/last.pt", weights_only=True)["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]  # it learns to restore
    # the two last ids (the block --holdout-order last holds out) are never pretrained on
    assert state["manifest"]["data"]["train_cases"] == [f"case{i:04d}" for i in range(4)]
    assert state["architecture"] == "unet" and state["spatial_dims"] == 2 and state["arch_kwargs"]["channels"] == [8, 16, 32]
    assert state["preprocessing"]["size"] == [48, 48]
    assert (tmp_path / "a/learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "a/metrics.csv").read_text().startswith("epoch,iteration,time_s,lr,train_loss,device")

    def ctrl_c_after_epoch_2(event):
        if event["kind"] == "epoch" and event["epoch"] == 2:
            raise KeyboardInterrupt

    stopped = pretrain(_config(tmp_path / "b", holdout=0.34, holdout_order="last"), discs, on_event=ctrl_c_after_epoch_2)
    assert stopped.stopped == "interrupted" and stopped.epochs_done == 2
    with pytest.raises(RadsegError, match="--resume"):
        pretrain(_config(tmp_path / "b", holdout=0.34, holdout_order="last"), discs)
    resumed = pretrain(_config(tmp_path / "b", holdout=0.34, holdout_order="last", resume=True), discs)
    assert resumed.epochs_done == 4
    a, b = state["state_dict"], read_pretrained(resumed.weights)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)  # same patches, corruptions and weights as one run

    # a time limit stops after the step that reaches it and still writes the weights
    timed = pretrain(_config(tmp_path / "c", time_limit=1e-3), discs)
    assert timed.stopped == "time-limit" and timed.epochs_done == 1
    assert read_pretrained(timed.weights)["manifest"]["metrics"]["iterations"] == 1
    # a training run's folder is not a pretraining run to resume
    train(_config(tmp_path / "t", epochs=1), discs)
    with pytest.raises(ReadError, match="not a radseg training checkpoint.*task"):
        pretrain(_config(tmp_path / "t", resume=True), discs)


def test_train_init_takes_every_fitting_tensor_and_refuses_another_network(tmp_path, discs):
    weights = pretrain(_config(tmp_path / "pre"), discs).weights
    pretrained = read_pretrained(weights)["state_dict"]
    events = []
    # a vanishing learning rate keeps the starting weights; hard negatives are not mined at epoch 0
    tuned = train(_config(tmp_path / "tuned", init=str(tmp_path / "pre"), lr=1e-12, weight_decay=0.0, epochs=1,
                          hard_negatives=0.3, mine_every=5), discs, on_event=events.append)
    after = load_bundle(tuned.model_path).state_dict
    # MONAI's UNet without residual units ends in one transposed convolution, model.2.conv (read off its layout)
    output = ["model.2.conv.bias", "model.2.conv.weight"]
    assert read_pretrained(weights)["output_keys"] == output
    same = [k for k in after if k not in output]
    assert all(float((after[k] - pretrained[k]).abs().max()) < 1e-6 for k in same)
    started = [e for e in events if e["kind"] == "initialised"]
    assert started == [{"kind": "initialised", "source": str(tmp_path / "pre"), "from": "pretrained",
                        "taken": len(same), "total": len(after), "fresh": sorted(output, reverse=True)}]
    assert not [e for e in events if e["kind"] == "mined"]
    hardware = load_bundle(tuned.model_path).manifest["hardware"]
    assert hardware[0] == {"device": hardware[1]["device"], "initialised_from": str(tmp_path / "pre")}
    assert hardware[1]["device"].startswith("cpu")  # the pretraining's device, read from its weights

    # one output channel (a one-class multi-label head): the restoration layer fits by shape and is still left out
    from radseg.models.registry import build
    from radseg.train.init import initialise

    one = build("unet", spatial_dims=2, in_channels=1, out_channels=1, patch_size=(48, 48), overrides=NET)
    done = initialise(one, str(weights), architecture="unet", class_names=["disc"], spatial_dims=2,
                      arch_kwargs=read_pretrained(weights)["arch_kwargs"])
    assert sorted(done.fresh) == output and done.taken == len(same)

    wider = {**NET, "channels": [8, 16, 48]}
    with pytest.raises(RadsegError, match="same --arch and --model-args"):
        train(_config(tmp_path / "wide", init=str(weights), arch_kwargs=wider), discs)
    foreign = tmp_path / "foreign.pt"
    torch.save({"model": {}}, foreign)
    with pytest.raises(ReadError, match="foreign.pt.*not radseg pretrained weights"):
        train(_config(tmp_path / "f", init=str(foreign)), discs)
    # pretrained on cases this run validates on (no holdout in the pretraining, the last two held out here)
    with pytest.raises(RadsegError, match="cases this run validates on.*--seed"):
        train(_config(tmp_path / "h", init=str(weights), holdout=0.34, holdout_order="last"), discs)
    with pytest.raises(RadsegError, match="other input \\(patch_size, size differ\\)"):
        train(_config(tmp_path / "s", init=str(weights), preprocessing={"size": (64, 64)}), discs)
    (tmp_path / "pre" / "pretrained.pt").rename(tmp_path / "elsewhere.pt")  # as if still pretraining
    with pytest.raises(RadsegError, match="has not finished"):
        train(_config(tmp_path / "u", init=str(tmp_path / "pre")), discs)
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes((tmp_path / "elsewhere.pt").read_bytes()[:200])
    with pytest.raises(ReadError, match="damaged.pt.*damaged pretrained weights"):
        train(_config(tmp_path / "d", init=str(damaged)), discs)


def test_pretrain_and_train_init_from_the_command_line(tmp_path, prepared):
    import json

    from radseg.commands import train as train_commands

    root = prepared
    app = typer.Typer()
    app.callback()(lambda: None)
    train_commands.register(app)
    small = ["--epochs", "1", "--iters-per-epoch", "2", "--batch-size", "2", "--model-args", json.dumps(NET), "-q"]
    run = tmp_path / "pre"
    done = CliRunner().invoke(app, ["pretrain", "--data", str(root), "-o", str(run), *small[:-1]])
    assert done.exit_code == 0, done.output
    assert "pretraining on 4 case(s) (labels unused)" in done.output
    assert f"radseg train --init {run}" in done.output and (run / "pretrained.pt").is_file()
    # only the train split is pretrained on: the val and test splits stay unseen
    assert read_pretrained(run / "pretrained.pt")["manifest"]["data"]["train_cases"] == ["case0", "case1", "case2", "case3"]
    tuned = CliRunner().invoke(app, ["train", "--data", str(root), "-o", str(tmp_path / "t"), "--init", str(run),
                                     *small[:-1]])
    assert tuned.exit_code == 0, tuned.output
    assert f"started from pretrained weights {run}" in tuned.output and "start from random weights" in tuned.output
    wrong = CliRunner().invoke(app, ["train", "--data", str(root), "-o", str(tmp_path / "w"), "--init", str(run), "-q"])
    assert wrong.exit_code == 1 and "same --arch and --model-args" in wrong.output


def test_resuming_on_images_whose_pixels_changed_under_the_same_names_is_refused(tmp_path):
    import radseg.io as rio

    folder = tmp_path / "archive"
    rng = np.random.default_rng(5)
    for i in range(3):
        rio.write(disc_case(rng)[0], folder / f"xray{i}.nii.gz")
    pretrain(_config(tmp_path / "run", epochs=1, iters_per_epoch=1), images=folder)
    original = (folder / "xray1.nii.gz").read_bytes()
    rio.write(disc_case(rng)[0], folder / "xray1.nii.gz")  # same name, another picture: the ids still match
    with pytest.raises(RadsegError, match=r"1 of this run's --images changed since it started \(e.g. 'xray1'"):
        pretrain(_config(tmp_path / "run", epochs=2, iters_per_epoch=1, resume=True), images=folder)
    (folder / "xray1.nii.gz").write_bytes(original)  # the pictures it started on: it resumes
    assert pretrain(_config(tmp_path / "run", epochs=2, iters_per_epoch=1, resume=True), images=folder).epochs_done == 2
    assert not (tmp_path / "run" / "grid-cache").exists()  # the archive's on-disk grid copies go with the run



def test_the_grid_cache_goes_when_a_run_fails_after_writing_it(tmp_path, monkeypatch):
    import radseg.io as rio

    folder = tmp_path / "archive"
    rng = np.random.default_rng(6)
    for i in range(2):
        rio.write(disc_case(rng)[0], folder / f"xray{i}.nii.gz")
    seen = []

    def failing_build(*args, **kwargs):  # the network is built after the archive's grid copies are written
        seen.append(sorted(p.name for p in (tmp_path / "run" / "grid-cache").iterdir()))
        raise RuntimeError("out of memory")

    monkeypatch.setattr("radseg.train.pretrain.build", failing_build)
    with pytest.raises(RuntimeError, match="out of memory"):
        pretrain(_config(tmp_path / "run", epochs=1, iters_per_epoch=1), images=folder)
    assert seen == [["0.npy", "1.npy"]] and not (tmp_path / "run" / "grid-cache").exists()


def test_archive_grid_copies_are_read_only_memory_maps_equal_to_the_array(tmp_path):
    from radseg.train.pretrain import _on_disk

    x = np.random.default_rng(0).normal(size=(1, 20, 30)).astype(np.float32)
    mapped = _on_disk(x[:, ::-1], tmp_path / "cache" / "0.npy")  # a non-contiguous view is stored as seen
    assert isinstance(mapped, np.memmap) and np.array_equal(mapped, x[:, ::-1]) and mapped.dtype == np.float32
    with pytest.raises(ValueError, match="read-only"):
        mapped[0, 0, 0] = 1.0


def test_pretraining_on_a_folder_of_unlabelled_images_leaves_out_unseen_cases(tmp_path, prepared):
    import shutil

    import radseg.io as rio
    from radseg.image import Image

    folder = tmp_path / "archive"
    rng = np.random.default_rng(4)
    for i in range(3):
        image, _ = disc_case(rng)
        rio.write(image, folder / "ward" / f"xray{i}.nii.gz")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (folder / "notes.txt").write_text("not an image")
    alone = pretrain(_config(tmp_path / "alone", epochs=1, iters_per_epoch=2), images=folder)
    record = read_pretrained(alone.weights)["manifest"]["data"]
    assert record["train_cases"] == [] and record["unlabelled"]["n"] == 3
    assert [Path(p).name for p, _ in alone.problems] == ["broken.png"]  # reported; the text file is not an image

    # beside a prepared dataset: copies of its val (case4) and test (case5) images are left out, and so is the copy
    # of a training image (case0), which is pretrained on as that case
    for name in ("case0", "case4", "case5"):
        shutil.copy(prepared / "images" / f"{name}.nii.gz", folder / f"copy_of_{name}.nii.gz")
    both = pretrain(_config(tmp_path / "both", epochs=1, iters_per_epoch=2), prepared, images=folder)
    left_out = {Path(p).name: why for p, why in both.problems}
    assert "case4 (the val split)" in left_out["copy_of_case4.nii.gz"]
    assert "case5 (the test split)" in left_out["copy_of_case5.nii.gz"]
    assert "training case case0: pretrained on once" in left_out["copy_of_case0.nii.gz"]
    record = read_pretrained(both.weights)["manifest"]["data"]
    assert record["train_cases"] == ["case0", "case1", "case2", "case3"] and record["unlabelled"]["n"] == 3
    with pytest.raises(ValueError, match="images to pretrain on"):
        pretrain(_config(tmp_path / "none"))
    # a prepared dataset's own folder is refused (its label maps would be read as images)
    with pytest.raises(RadsegError, match="prepared dataset .*give it as --data"):
        pretrain(_config(tmp_path / "self", epochs=1), prepared, images=prepared)
    # an image of another dimensionality is left out, named
    rio.write(Image(np.zeros((6, 8, 8), np.float32)), folder / "volume.nii.gz")
    mixed = pretrain(_config(tmp_path / "mixed", epochs=1, iters_per_epoch=1), images=folder)
    assert ("a 3D image; this pretraining is 2D") in dict((Path(p).name, w) for p, w in mixed.problems)["volume.nii.gz"]
    # pretrained on the folder alone (no dataset to compare with): a later run whose validation cases are among
    # its images is refused by their pixels
    tuned = _config(tmp_path / "later", init=str(mixed.weights), epochs=1, iters_per_epoch=1,
                    preprocessing={"size": (48, 48)})
    from radseg.train.data import from_pairs as pairs_of

    images = [rio.read(p) for p in sorted((folder / "ward").glob("*.nii.gz"))]
    labels = [Image(np.zeros(im.shape, np.uint8), affine=im.affine) for im in images]
    labels[0].array[2:5, 2:5] = 1
    clash = pairs_of(list(zip(images, labels)), label_names={1: "disc"}, case_ids=["w0", "w1", "w2"])
    with pytest.raises(RadsegError, match="copies of them were among its --images"):
        train(tuned, clash)
    # nothing readable to pretrain on: refused, naming the folder and why
    only_broken = tmp_path / "unreadable"
    only_broken.mkdir()
    shutil.copy(folder / "broken.png", only_broken / "broken.png")
    with pytest.raises(RadsegError, match="unreadable: no image to pretrain on \\(broken.png: "):
        pretrain(_config(tmp_path / "broken-run", epochs=1), images=only_broken)
