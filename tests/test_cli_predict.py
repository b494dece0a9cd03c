"""`nbseg predict`, `nbseg evaluate`, `nbseg export` end to end through nbseg.cli.main."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile

from nbseg.cli.main import build_parser, main

from model_projects import make_project  # tests/model_projects.py

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*deprecated:DeprecationWarning")


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread):
    yield


@pytest.fixture
def project(tmp_path):
    make_project(tmp_path / "project")
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        tifffile.imwrite(images / f"{name}.tif", (rng.random((32, 40)) * 255).astype(np.uint8))
        mask = np.zeros((32, 40), np.uint16)
        mask[4:12, 4:12], mask[20:28, 20:30] = 1, 2
        tifffile.imwrite(masks / f"{name}.tif", mask)
    return tmp_path


def test_predict_evaluate_export(project, capsys):
    out = project / "pred"
    assert main(["predict", str(project / "project"), str(project / "images"), "--output", str(out),
                 "--tta", "none", "--instances", "--threshold", "otsu"]) == 0
    printed = capsys.readouterr().out
    assert "Predicted 2 image(s)" in printed and "Most uncertain" in printed
    assert sorted(p.name for p in out.glob("a.*")) == ["a.labels.ome.tif", "a.mask.ome.tif", "a.objects.csv",
                                                        "a.prob.ome.tif", "a.uncertainty.ome.tif"]
    assert main(["predict", str(project / "project"), str(project / "images"), "--output", str(out),
                 "--tta", "none", "--instances", "--threshold", "otsu"]) == 0
    assert "Predicted 0 image(s), 2 done earlier" in capsys.readouterr().out

    csv = project / "eval.csv"
    assert main(["evaluate", str(out), str(project / "masks"), "--csv", str(csv)]) == 0
    printed = capsys.readouterr().out
    assert "Dice (pooled over pixels)" in printed and "mAP" in printed and csv.exists()
    assert csv.read_text().splitlines()[0].startswith("image,")

    assert main(["export", str(project / "project"), str(project / "model.pt")]) == 0
    assert (project / "model.pt").exists() and "torch.jit.load" in capsys.readouterr().out


def test_bad_option_gives_a_message_not_a_traceback(project, capsys):
    code = main(["predict", str(project / "project"), str(project / "images"), "--output", str(project / "o"),
                 "--tta", "flip"])
    err = capsys.readouterr().err
    assert code == 2 and "Did you mean 'flips'" in err and "Traceback" not in err
    assert not (project / "o").exists()
    assert main(["evaluate", str(project / "images"), str(project / "nothing")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["predict", "evaluate", "export"])
def test_help_is_readable(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "example: nbseg " + command in text


def _digests(folder):
    import hashlib

    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_predict_never_changes_its_inputs(project, capsys):
    """Inputs are opened read-only: a truncated TIFF is named and refused, never extended on disk, and
    what prediction reads is a read-only map (a read-write one would let an in-place step write to the
    user's file, and the refused truncated file alone would not show it)."""
    from nbseg.predict.ensemble import ensemble_info, load_ensemble
    from nbseg.predict.image import read_for_models

    images = project / "images"
    read = read_for_models(images / "a.tif", ensemble_info(load_ensemble(project / "project")))
    assert isinstance(read.data.base, np.memmap) and not read.data.flags.writeable
    del read
    data = (images / "b.tif").read_bytes()
    (images / "cut.tif").write_bytes(data[: len(data) // 2])
    before = _digests(images)
    out = project / "pred"
    code = main(["predict", str(project / "project"), str(images), "--output", str(out), "--tta", "none"])
    err = capsys.readouterr().err
    assert code != 0 and "cut.tif" in err and "truncated" in err and "Traceback" not in err
    assert _digests(images) == before
    (images / "cut.tif").unlink()
    before = _digests(images)
    assert main(["predict", str(project / "project"), str(images), "--output", str(out), "--tta", "none"]) == 0
    assert _digests(images) == before


def test_cli_messages_speak_cli(project, capsys):
    """Refusals printed by the command line name options, not Python keyword arguments."""
    out = project / "pred"
    args = ["predict", str(project / "project"), str(project / "images"), "--output", str(out), "--tta", "none"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args[:-1] + ["flips"]) != 0  # other settings, earlier results
    err = capsys.readouterr().err
    assert "--overwrite" in err and "overwrite=True" not in err
