"""PredictOptions: one frozen, checked object for the settings of a prediction; the tile rule shared
with training patches."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import tifffile

from nbseg.model.unet import divisibility_problem, patch_divisors, pooling_divisors
from nbseg.predict.ensemble import ensemble_info, load_ensemble
from nbseg.predict.files import RECORD_FILE, predict_files
from nbseg.predict.image import predict_image
from nbseg.predict.options import PredictOptions
from nbseg.predict.post import DEFAULT_MIN_SIZE

from model_projects import make_model, make_project  # tests/model_projects.py


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread):
    yield


def test_options_are_frozen_and_normalised():
    options = PredictOptions(tile=[32, 48], channels=[0, 2], threshold="0.4", overlap=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.tta = "none"
    assert options.tile == (32, 48) and options.channels == (0, 2) and options.threshold == 0.4
    assert options.overlap == 0.0 and isinstance(options.overlap, float)
    assert hash(options) == hash(PredictOptions(tile=(32, 48), channels=(0, 2), threshold=0.4, overlap=0.0))
    changed = dataclasses.replace(options, tta="none")
    assert changed.tta == "none" and options.tta == "flips"


@pytest.mark.parametrize("settings,message", [
    ({"tta": "flip"}, r"tta 'flip' is unknown.*Did you mean 'flips'"),
    ({"overlap": 1.5}, r"overlap 1.5 must lie in \[0, 1\)"),
    ({"overlap": "half"}, r"overlap 'half' is not a number"),
    ({"threshold": "otsuu"}, r"threshold 'otsuu' is unknown.*Did you mean 'otsu'"),
    ({"threshold": 1.2}, r"threshold 1.2 is outside \(0, 1\)"),
    ({"uncertainty": "entropie"}, r"uncertainty 'entropie' is unknown.*Did you mean 'entropy'"),
    ({"precision": "fp33"}, r"precision 'fp33' is unknown.*'fp32'"),
    ({"device": "cude"}, r"device 'cude' is unknown.*Did you mean 'cuda'"),
    ({"batch_size": 0}, r"batch_size 0 must be a whole number of at least 1"),
    ({"min_size": -3}, r"min_size -3 must be a whole number of at least 0"),
    ({"tile": [0, 32]}, r"tile \[0, 32\] has a side below 1"),
    ({"tile": [32.5, 32]}, r"tile \[32.5, 32\] is not a list of whole numbers"),
    ({"channels": ["red"]}, r"channels \['red'\] is not a list of whole numbers"),
])
def test_bad_values_are_refused_with_what_was_given_and_a_fix(settings, message):
    with pytest.raises(ValueError, match=message):
        PredictOptions(**settings)


def test_unknown_setting_names_the_closest_and_options_must_be_options():
    with pytest.raises(TypeError, match=r"prediction setting 'tiles' is unknown.*Did you mean 'tile'"):
        PredictOptions.build(tiles=[32, 32])
    with pytest.raises(TypeError, match="not a PredictOptions"):
        PredictOptions.build({"tta": "none"})
    base = PredictOptions(tta="none")
    assert PredictOptions.build(base) is base
    assert PredictOptions.build(base, overlap=0.25) == PredictOptions(tta="none", overlap=0.25)


# What predict_files wrote into nbseg-predict.json before PredictOptions, for
# tta="flips", threshold="otsu", instances=True, tile=(32, 32), min_size=3 (other settings default).
EARLIER_SETTINGS = {"tta": "flips", "threshold": "otsu", "instances": True, "overlap": 0.5, "tile": [32, 32],
                    "uncertainty": "entropy", "min_size": 3}


def test_record_is_the_settings_predict_files_wrote_before():
    options = PredictOptions(tta="flips", threshold="otsu", instances=True, tile=(32, 32), min_size=3)
    record = options.record(["/p/models/fold0.pt"])
    assert list(record) == ["models", *EARLIER_SETTINGS]  # same keys, same order in the file
    assert record == {"models": ["/p/models/fold0.pt"], **EARLIER_SETTINGS}
    assert json.loads(json.dumps(record)) == record
    assert PredictOptions().record([]) == {"models": [], "tta": "flips", "threshold": 0.5, "instances": False,
                                           "overlap": 0.5, "tile": None, "uncertainty": "entropy", "min_size": None}
    # batch size, device, precision, axes and channels do not change the results: not recorded
    assert PredictOptions(batch_size=1, device="cpu", precision="fp32").record([]) == PredictOptions().record([])


def test_results_recorded_before_are_recognised(tmp_path):
    project = make_project(tmp_path / "p")
    images, out = tmp_path / "images", tmp_path / "out"
    images.mkdir()
    tifffile.imwrite(images / "a.tif", (np.random.default_rng(0).random((32, 40)) * 200).astype(np.uint8))
    settings = dict(tta="flips", threshold="otsu", instances=True, tile=(32, 32), min_size=3)
    predict_files(project, images, out, **settings)
    record = json.loads((out / RECORD_FILE).read_text())
    models = record["settings"]["models"]
    record["settings"] = {"models": models, **EARLIER_SETTINGS}  # as the earlier code wrote it
    (out / RECORD_FILE).write_text(json.dumps(record, indent=1))
    table = predict_files(project, images, out, PredictOptions(**settings))
    assert list(table["status"]) == ["done earlier"]
    with pytest.raises(FileExistsError, match=r"min_size 3 -> 4"):
        predict_files(project, images, out, PredictOptions(**settings), min_size=4)


def test_options_object_and_keywords_predict_the_same(tmp_path):
    ensemble = load_ensemble(make_project(tmp_path / "p", folds=2))
    image = np.random.default_rng(1).random((40, 56)) * 1000
    keywords = dict(tta="all", overlap=0.25, tile=(32, 32), uncertainty="std", precision="fp32")
    by_keywords = predict_image(ensemble, image, dtype=np.float32, **keywords)
    by_object = predict_image(ensemble, image, PredictOptions(**keywords), dtype=np.float32)
    overridden = predict_image(ensemble, image, PredictOptions(tta="none", **{k: v for k, v in keywords.items()
                                                                              if k != "tta"}),
                               tta="all", dtype=np.float32)
    np.testing.assert_array_equal(by_object.stored, by_keywords.stored)
    np.testing.assert_array_equal(overridden.stored, by_keywords.stored)
    assert by_object.n_passes == by_keywords.n_passes == 16


def test_tile_the_model_cannot_take_names_the_nearest_valid_tiles(tmp_path):
    ensemble = load_ensemble(make_project(tmp_path / "p"))
    with pytest.raises(ValueError, match=r"tile \[60, 64\] does not fit the model.*Y=60 is not divisible by 8.*"
                                         r"Nearest valid tiles: \[56, 64\] or \[64, 64\]"):
        predict_image(ensemble, np.zeros((64, 64)), tile=(60, 64))
    with pytest.raises(ValueError, match=r"tile \[32, 32, 32\] has 3 sides but the image has 2"):
        predict_image(ensemble, np.zeros((64, 64)), tile=(32, 32, 32))
    images = tmp_path / "images"
    images.mkdir()
    tifffile.imwrite(images / "a.tif", np.zeros((64, 64), np.uint8))
    with pytest.raises(ValueError, match=r"Nearest valid tiles: \[56, 64\] or \[64, 64\]"):
        predict_files(ensemble, images, tmp_path / "out", tile=(60, 64))
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_one_divisibility_rule_for_patches_and_tiles():
    assert pooling_divisors(2, "M") == patch_divisors([64, 64], "M") == (8, 8)
    assert pooling_divisors(3, "L", pool_z=False) == patch_divisors([4, 64, 64], "L") == (1, 16, 16)
    assert ensemble_info([(make_model(3, pool_z=False), {})]).divisors == (1, 8, 8)
    assert ensemble_info([(make_model(3), {})]).divisors == (8, 8, 8)
    assert divisibility_problem([96, 128], (8, 8)) is None
    assert divisibility_problem([100, 128], (8, 8)) == ("Y=100 is not divisible by 8. "
                                                        "Nearest valid sizes: [96, 128] or [104, 128]")


def test_min_size_left_to_the_models_comes_from_their_training_plan(tmp_path):
    project = make_project(tmp_path / "p")
    info = ensemble_info(load_ensemble(project))
    assert info.min_size is None  # a model whose plan does not say: the default
    assert PredictOptions().min_size_for(info) == DEFAULT_MIN_SIZE == 10
    planned = dataclasses.replace(info, min_size=40, spacing=(0.5, 0.5))  # trained on 0.5 µm pixels
    assert PredictOptions().min_size_for(planned) == 40
    assert PredictOptions().min_size_for(planned, (0.5, 0.5), "µm") == 40
    assert PredictOptions().min_size_for(planned, (0.25, 0.25), "µm") == 160  # 4 pixels where training had 1
    assert PredictOptions().min_size_for(planned, (1.0, 1.0), "µm") == 10  # a quarter: under the floor
    half = dataclasses.replace(planned, scale=(0.5, 0.5), spacing=(1.0, 1.0))  # trained at half scale
    assert PredictOptions().min_size_for(half, (0.5, 0.5), "µm") == 40  # the training images' own pixels
    assert PredictOptions().min_size_for(half, (0.25, 0.25), "µm") == 160
    assert PredictOptions(min_size=3).min_size_for(planned, (0.25, 0.25), "µm") == 3  # what the user gives wins
    assert PredictOptions(min_size=0).min_size_for(planned) == 0
