"""`radseg annotate bone | hip-joint | rank | merge` from the command line, including bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from radseg.cli import app
from radseg.evaluate import dice
from radseg.io import read_labels, write

from .test_active_learning import CORRUPTED, _corrupt, _save, _truth

runner = CliRunner()


@pytest.fixture(scope="module")
def ct_files(tmp_path_factory, hip_case, hip_bone):
    folder = tmp_path_factory.mktemp("ct")
    ct, labels = hip_case
    write(ct, folder / "hip.nii.gz")
    write(hip_bone.mask, folder / "hip_bone.nii.gz", kind="nifti")
    return folder, labels


def test_bone_writes_a_mask(ct_files, tmp_path):
    folder, labels = ct_files
    out = tmp_path / "bone.nii.gz"
    result = runner.invoke(app, ["annotate", "bone", str(folder / "hip.nii.gz"), "-o", str(out), "--json", "-q"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["output"] == str(out) and summary["bone_ml"] > 100
    assert dice(read_labels(out).array > 0, labels.array > 0) >= 0.93  # as test_graph_cut_matches_phantom_bone
    again = runner.invoke(app, ["annotate", "bone", str(folder / "hip.nii.gz"), "-o", str(out)])
    assert again.exit_code == 0 and "kept" in again.output  # a rerun resumes


def test_bone_bad_input_names_the_file(tmp_path):
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"this is no nifti")
    missing = tmp_path / "missing.nii.gz"
    for path in (broken, missing):
        result = runner.invoke(app, ["annotate", "bone", str(path), "-o", str(tmp_path / "out.nii.gz")])
        assert result.exit_code != 0
        assert path.name in result.output
    result = runner.invoke(app, ["annotate", "bone", str(broken), "-o", str(tmp_path / "o.nii.gz"), "--mode", "4d"])
    assert result.exit_code != 0 and "--mode" in result.output


def test_bone_rejects_a_volume_without_tissue(tmp_path):
    from radseg.image import Image

    air = tmp_path / "air.nii.gz"
    write(Image(np.full((6, 20, 20), -1000, np.int16), spacing=(2.0, 1.0, 1.0)), air)
    result = runner.invoke(app, ["annotate", "bone", str(air), "-o", str(tmp_path / "out.nii.gz")])
    assert result.exit_code != 0 and "air.nii.gz" in result.output and "Hounsfield" in result.output


def test_hip_joint_with_given_bone_and_ablation_flags(ct_files, tmp_path):
    folder, labels = ct_files
    out = tmp_path / "hip.nii.gz"
    args = ["annotate", "hip-joint", str(folder / "hip.nii.gz"), "--bone", str(folder / "hip_bone.nii.gz"), "-q"]
    result = runner.invoke(app, [*args, "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert all(side["found"] for side in summary["sides"].values())
    predicted = read_labels(out).array
    assert dice(predicted == 4, labels.array == 4) >= 0.84 and dice(predicted == 3, labels.array == 3) >= 0.84
    ablated = runner.invoke(app, [*args, "-o", str(tmp_path / "ablated.nii.gz"), "--json", "--no-fsg", "--no-lnms", "--no-ahs"])
    assert ablated.exit_code == 0, ablated.output
    other = json.loads(ablated.output.strip().splitlines()[-1])
    assert other["sides"]["right"]["candidates"] > summary["sides"]["right"]["candidates"]


def test_hip_joint_bad_bone_mask_names_the_file(ct_files, tmp_path):
    folder, _ = ct_files
    from radseg.image import Image

    wrong = tmp_path / "wrong_bone.nii.gz"
    write(Image(np.ones((4, 8, 8), np.uint8)), wrong, kind="nifti")
    result = runner.invoke(app, ["annotate", "hip-joint", str(folder / "hip.nii.gz"), "--bone", str(wrong),
                                 "-o", str(tmp_path / "hip.nii.gz")])
    assert result.exit_code != 0 and "wrong_bone.nii.gz" in result.output
    result = runner.invoke(app, ["annotate", "hip-joint", str(tmp_path / "nothing.nii.gz"), "-o", str(tmp_path / "x.nii.gz")])
    assert result.exit_code != 0 and "nothing.nii.gz" in result.output


@pytest.fixture
def label_folders(tmp_path):
    pred, pseudo = tmp_path / "pred", tmp_path / "pseudo"
    for index in range(8):
        case = f"case{index:02d}"
        truth = _truth(index)
        _save(truth, pred / f"{case}.nii.gz")
        _save(_corrupt(truth, CORRUPTED[case]) if case in CORRUPTED else truth, pseudo / f"{case}.nii.gz")
    return pred, pseudo


def test_rank_and_merge(label_folders, tmp_path):
    pred, pseudo = label_folders
    out = tmp_path / "ranked"
    result = runner.invoke(app, ["annotate", "rank", "--pred", str(pred), "--pseudo", str(pseudo), "-k", "2",
                                 "-o", str(out), "--per-slice"])
    assert result.exit_code == 0, result.output
    top = pd.read_csv(out / "topk.csv")
    assert set(top.case) == {"case03", "case06"}  # the corrupted cases among the eight
    assert (out / "slices.csv").exists() and len(list((out / "to_correct" / "labels").iterdir())) == 2
    corrected = out / "to_correct" / "labels"
    for case in ("case03", "case06"):  # the "human" fixes them in place
        _save(_truth(int(case[-2:])), corrected / f"{case}.nii.gz")
    merged = tmp_path / "merged"
    result = runner.invoke(app, ["annotate", "merge", "--pseudo", str(pseudo), "--corrected", str(corrected),
                                 "-o", str(merged)])
    assert result.exit_code == 0, result.output
    assert "version 1: 2 corrected, 6 pseudo-label(s)" in result.output
    record = pd.read_csv(merged / "provenance.csv")
    assert set(record[record.source == "manual"].case) == {"case03", "case06"}


def test_rank_bad_input(label_folders, tmp_path):
    pred, pseudo = label_folders
    result = runner.invoke(app, ["annotate", "rank", "--pred", str(pred), "--pseudo", str(tmp_path / "absent"),
                                 "-k", "2", "-o", str(tmp_path / "r")])
    assert result.exit_code != 0 and "absent" in result.output
    result = runner.invoke(app, ["annotate", "rank", "--pred", str(pred), "--pseudo", str(pseudo), "-k", "0",
                                 "-o", str(tmp_path / "r")])
    assert result.exit_code != 0 and "-k" in result.output
    (pseudo / "case05.nii.gz").write_bytes(b"garbage")
    result = runner.invoke(app, ["annotate", "rank", "--pred", str(pred), "--pseudo", str(pseudo), "-k", "2",
                                 "-o", str(tmp_path / "r")])
    assert result.exit_code != 0 and "case05" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["annotate", "rank", "--pred", str(pred), "--pseudo", str(empty), "-k", "2",
                                 "-o", str(tmp_path / "r2")])
    assert result.exit_code != 0 and "no case" in result.output
