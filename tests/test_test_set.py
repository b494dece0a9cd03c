"""The test set (issue 34, honest scores): images held back from every fold and every choice, recorded in
split.json; `nbseg train --test-fraction/--test-images`; and the warning wherever images the models trained
on or validated with are scored (`nbseg predict`, `nbseg evaluate`; the panels: tests/test_ui_panels.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from nbseg.cli.main import build_parser, main
from nbseg.config import Config, DataConfig
from nbseg.data.split import SplitError, choose_test, hold_back_test, load_or_make_split, read_split
from nbseg.model.unet import load_model_file, save_model_file
from nbseg.predict.seen import inflated_note, roles_of, seen_images

from model_projects import make_project  # tests/model_projects.py

NAMES = [f"img{i:02d}" for i in range(20)]


def data(**test) -> DataConfig:
    return DataConfig(images="images", **test)


# ---------------------------------------------------------------- split.json

@pytest.mark.parametrize("folds", [1, 3])
def test_test_images_are_in_no_fold(tmp_path, folds):
    test = hold_back_test(tmp_path, NAMES, data(test_fraction=0.2), seed=3)
    assert len(test) == 4 and set(test) < set(NAMES)
    split = load_or_make_split(tmp_path, NAMES, folds=folds, val_fraction=0.2, seed=3, test=test)
    for fold in split:
        assert not set(test) & (set(fold["train"]) | set(fold["val"])), fold
        assert set(fold["train"]) | set(fold["val"]) == set(NAMES) - set(test)
    saved = read_split(tmp_path)
    assert saved["test"] == test and saved["folds"] == split and not set(test) & set(saved["names"])
    # the same request reuses the file; another test set makes new folds without it
    assert load_or_make_split(tmp_path, NAMES, folds=folds, val_fraction=0.2, seed=3, test=test) == split
    other = load_or_make_split(tmp_path, NAMES, folds=folds, val_fraction=0.2, seed=3, test=NAMES[:2])
    assert all(not {"img00", "img01"} & (set(f["train"]) | set(f["val"])) for f in other)


def test_test_set_stays_when_images_are_added_or_the_seed_changes(tmp_path):
    first = hold_back_test(tmp_path, NAMES, data(test_fraction=0.2), seed=0)
    more = NAMES + [f"new{i}" for i in range(5)]
    grown = hold_back_test(tmp_path, more, data(test_fraction=0.2), seed=0)
    assert set(first) <= set(grown) and len(grown) == 5  # a test image never moves into training
    assert hold_back_test(tmp_path, more, data(test_fraction=0.2), seed=9) == grown
    assert choose_test(NAMES, fraction=0.2, seed=0) != choose_test(NAMES, fraction=0.2, seed=1)  # seeded
    assert choose_test(NAMES, fraction=0.2, seed=0) == choose_test(NAMES, fraction=0.2, seed=0)
    assert choose_test(["a", "b"], fraction=0.2) == []  # 0.2 of two images rounds to none: both train
    assert choose_test(["a", "b"], fraction=0.9) == ["a"] or choose_test(["a", "b"], fraction=0.9) == ["b"]
    assert hold_back_test(tmp_path, more, data(), seed=0) == [] and read_split(tmp_path)["test"] == []


def test_test_images_by_name(tmp_path):
    assert hold_back_test(tmp_path, NAMES, data(test_images=["img05", "img01"])) == ["img01", "img05"]
    assert read_split(tmp_path)["test"] == ["img01", "img05"]
    with pytest.raises(SplitError, match="imgXX.*not among the 20 images"):
        hold_back_test(tmp_path, NAMES, data(test_images=["img01", "imgXX"]))
    with pytest.raises(SplitError, match="all 2 images"):
        hold_back_test(tmp_path, ["a", "b"], data(test_images=["a", "b"]))
    with pytest.raises(ValueError, match="give one"):
        data(test_images=["a"], test_fraction=0.2)
    with pytest.raises(ValueError, match="test_fraction is 1"):
        data(test_fraction=1)


def test_split_json_without_test_still_loads(tmp_path):
    """A split.json written before the test set existed: read as no test set, its folds reused as they are."""
    folds = [{"train": NAMES[5:], "val": NAMES[:5]}]  # not what make_folds would draw: reuse is visible
    (tmp_path / "split.json").write_text(json.dumps({"names": NAMES, "seed": 0, "val_fraction": 0.2, "folds": folds}))
    assert read_split(tmp_path)["test"] == []
    assert load_or_make_split(tmp_path, NAMES, folds=1, val_fraction=0.2, seed=0) == folds
    assert hold_back_test(tmp_path, NAMES, data(), seed=0) == []
    assert "test" not in json.loads((tmp_path / "split.json").read_text())  # nothing to record: left as it was


# ---------------------------------------------------------------- which images the models have seen

def _with_images(project, images: dict) -> None:
    """Give fold 0's model file the names its training used, as training writes them."""
    path = project / "models" / "fold0.pt"
    model, meta = load_model_file(path)
    save_model_file(path, model, meta={**meta, "images": images})


def test_roles_and_the_warning(tmp_path):
    project = make_project(tmp_path / "p", folds=2)
    _with_images(project, {"train": ["a", "b"], "val": ["c"], "test": ["t"]})
    from nbseg.predict.ensemble import load_ensemble

    # fold 1 says nothing itself: its project's split.json (older models) names what it used
    (project / "split.json").write_text(json.dumps({"names": ["a", "b", "c"], "folds": [
        {"train": ["a", "b"], "val": ["c"]}, {"train": ["c", "b"], "val": ["a"]}], "test": ["t"]}))
    seen = seen_images(load_ensemble(project))
    assert seen == {"a": "train", "b": "train", "c": "train", "t": "test"}  # c trains fold 1: train wins
    roles = roles_of(["a", "t", "x"], seen)
    assert roles == {"a": "train", "t": "test", "x": "new"}
    note = inflated_note(roles)
    assert note.split(":")[0] == "Of the 3 image(s), 1 trained on (a)" and "scores are inflated" in note
    assert inflated_note(roles_of(["t", "x"], seen)) is None
    assert "used for validation (c)" in inflated_note({"c": "val", "t": "test"})


@pytest.fixture
def scored(tmp_path, one_thread):
    """A project whose model trained on ``a``, validated with ``b`` and held back ``t``; images and masks of all."""
    project = make_project(tmp_path / "project")
    _with_images(project, {"train": ["a"], "val": ["b"], "test": ["t"]})
    rng = np.random.default_rng(0)
    for name in ("a", "b", "t"):
        for kind in ("images", "masks"):
            (tmp_path / kind).mkdir(exist_ok=True)
        tifffile.imwrite(tmp_path / "images" / f"{name}.tif", (rng.random((32, 40)) * 255).astype(np.uint8))
        mask = np.zeros((32, 40), np.uint16)
        mask[4:12, 4:12] = 1
        tifffile.imwrite(tmp_path / "masks" / f"{name}.tif", mask)
    return tmp_path


def test_predict_and_evaluate_warn_for_trained_on_images(scored, capsys):
    images = scored / "images"
    assert main(["predict", str(scored / "project"), str(images), "-o", str(scored / "all"), "--tta", "none"]) == 0
    err = capsys.readouterr().err
    assert "nbseg predict: warning:" in err and "1 trained on (a)" in err and "1 used for validation (b)" in err
    table = json.loads((scored / "all" / "nbseg-predict.json").read_text())["roles"]
    assert table == {"a": "train", "b": "val", "t": "test"}
    assert main(["evaluate", str(scored / "all"), str(scored / "masks")]) == 0
    err = capsys.readouterr().err
    assert "nbseg evaluate: warning:" in err and "scores are inflated" in err and "trained on (a)" in err


def test_no_warning_for_test_images(scored, capsys):
    for kind in ("images", "masks"):
        (scored / f"test_{kind}").mkdir()
        (scored / f"test_{kind}" / "t.tif").write_bytes((scored / kind / "t.tif").read_bytes())
    assert main(["predict", str(scored / "project"), str(scored / "test_images"), "-o", str(scored / "t"),
                 "--tta", "none"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert main(["evaluate", str(scored / "t"), str(scored / "test_masks")]) == 0
    assert "warning" not in capsys.readouterr().err
    # predictions made elsewhere say nothing of their models: --project tells
    (scored / "t" / "nbseg-predict.json").unlink()
    for name in ("a", "b"):
        (scored / "t" / f"{name}.mask.ome.tif").write_bytes((scored / "t" / "t.mask.ome.tif").read_bytes())
    assert main(["evaluate", str(scored / "t"), str(scored / "masks")]) == 0
    assert "warning" not in capsys.readouterr().err
    assert main(["evaluate", str(scored / "t"), str(scored / "masks"), "--project", str(scored / "project")]) == 0
    assert "trained on (a)" in capsys.readouterr().err


def test_prediction_roles_precedence(scored):
    """The record wins, unless the caller names the models (nbseg evaluate --project); a notebook's project
    with no model yet says nothing, a named folder without models is an error."""
    from nbseg.predict.files import prediction_roles

    folder = scored / "recorded"
    folder.mkdir()
    (folder / "nbseg-predict.json").write_text(json.dumps({"roles": {"a": "test"}}))
    names = ["a", "b", "x"]
    assert prediction_roles(names, folder, scored / "project") == {"a": "test", "b": "new", "x": "new"}
    assert prediction_roles(names, folder, scored / "project", models_first=True) == {
        "a": "train", "b": "val", "x": "new"}
    assert prediction_roles(names, scored / "images", scored / "project") == {"a": "train", "b": "val", "x": "new"}
    assert prediction_roles(names, scored / "images") == dict.fromkeys(names, "new")
    (scored / "empty").mkdir()
    assert prediction_roles(names, scored / "images", scored / "empty") == dict.fromkeys(names, "new")
    with pytest.raises(FileNotFoundError):
        prediction_roles(names, scored / "images", scored / "empty", models_first=True)


def test_score_images_predicts_and_scores_what_it_is_given(scored):
    from nbseg.metrics.evaluation import evaluate_folders
    from nbseg.predict.test_scores import score_images

    summary = score_images(scored / "project", [scored / "images" / "t.tif"], scored / "masks", scored / "out")
    assert summary["images"] == 1
    assert sorted(p.name for p in (scored / "out").glob("*.mask.ome.tif")) == ["t.mask.ome.tif"]
    (scored / "truth").mkdir()
    (scored / "truth" / "t.tif").write_bytes((scored / "masks" / "t.tif").read_bytes())
    # a binary project: pixels only, what nbseg evaluate --kind binary says (the round test has objects)
    expected = evaluate_folders(scored / "out", scored / "truth", kind="binary").summary
    assert summary == pytest.approx(expected) and "f1@0.5" not in summary
    (scored / "masks" / "a.tif").unlink()
    with pytest.raises(ValueError, match="No mask in .* for a.tif"):
        score_images(scored / "project", [scored / "images" / "a.tif"], scored / "masks", scored / "out")


# ---------------------------------------------------------------- nbseg train --test-fraction / --test-images

def test_test_options_parse(tmp_path):
    parser = build_parser()
    names = tmp_path / "test.txt"
    names.write_text("img03.tif\nimg07\n\n")
    base = ["train", "--images", "i", "--masks", "m", "--project", str(tmp_path / "p")]
    assert parser.parse_args(base + ["--test-images", "a.tif,b, c"]).test_images == ["a", "b", "c"]
    assert parser.parse_args(base + ["--test-images", str(names)]).test_images == ["img03", "img07"]
    assert parser.parse_args(base + ["--test-fraction", "0.25"]).test_fraction == 0.25
    with pytest.raises(SystemExit):
        parser.parse_args(base + ["--test-fraction", "0.2", "--test-images", "a"])
    from nbseg.cli.train import config_from_args

    assert config_from_args(parser.parse_args(base + ["--test-images", "a,b"])).data.test_images == ["a", "b"]
    Config(data=data(test_images=["a"])).save(tmp_path / "p")  # a saved test set: the one given replaces it
    given = config_from_args(parser.parse_args(base + ["--test-fraction", "0.3"])).data
    assert (given.test_fraction, given.test_images) == (0.3, None)
    Config(data=data(test_fraction=0.2)).save(tmp_path / "p")
    given = config_from_args(parser.parse_args(base + ["--test-images", "b"])).data
    assert (given.test_fraction, given.test_images) == (0.0, ["b"])


@pytest.mark.slow  # a short training run
def test_train_holds_back_the_test_set(tmp_path, capsys, one_thread):
    from nbseg.data import sample

    src, root = sample("nuclei2d"), tmp_path / "data"
    for kind in ("images", "masks"):
        (root / kind).mkdir(parents=True)
        for path in sorted(src[kind].glob("*.tif"))[:6]:
            tifffile.imwrite(root / kind / path.name, tifffile.imread(path)[:64, :64])
    project = tmp_path / "project"
    code = main(["train", "--images", str(root / "images"), "--masks", str(root / "masks"), "--project", str(project),
                 "--test-fraction", "0.34", "--epochs", "1", "--steps-per-epoch", "1", "--patch", "64,64",
                 "--batch-size", "2", "--device", "cpu", "--precision", "fp32"])
    out = capsys.readouterr().out
    assert code == 0, out
    split = read_split(project)
    assert len(split["test"]) == 2 and "test set: 2 image(s) held back" in out and split["test"][0] in out
    fold = split["folds"][0]
    assert not set(split["test"]) & (set(fold["train"]) | set(fold["val"]))
    _, meta = load_model_file(project / "models" / "fold0.pt")
    assert meta["images"] == {"train": fold["train"], "val": fold["val"], "test": split["test"]}
    assert Config.load(project).data.test_fraction == 0.34
    # predicting the project's own folder: the warning names the trained-on images, not the test ones
    assert main(["predict", str(project), str(root / "images"), "-o", str(tmp_path / "pred"), "--tta", "none"]) == 0
    warning = next(line for line in capsys.readouterr().err.splitlines() if "warning" in line)
    assert f"{len(fold['train'])} trained on" in warning and not any(name in warning for name in split["test"])

    # fine-tuned from it on its two test images: the new model has seen what its source trained on too
    other = tmp_path / "other"
    for kind in ("images", "masks"):
        (other / kind).mkdir(parents=True)
        for name in split["test"]:
            (other / kind / f"{name}.tif").write_bytes((root / kind / f"{name}.tif").read_bytes())
    tuned = tmp_path / "tuned"
    assert main(["train", "--images", str(other / "images"), "--masks", str(other / "masks"), "--project", str(tuned),
                 "--init", str(project), "--epochs", "1", "--steps-per-epoch", "1", "--patch", "64,64",
                 "--batch-size", "2", "--device", "cpu", "--precision", "fp32"]) == 0
    _, tuned_meta = load_model_file(tuned / "models" / "fold0.pt")
    assert set(fold["train"]) <= set(tuned_meta["images"]["train"])
    assert set(fold["val"]) <= set(tuned_meta["images"]["train"]) | set(tuned_meta["images"]["val"])
    assert set(split["test"]) <= set(tuned_meta["images"]["train"]) | set(tuned_meta["images"]["val"])
