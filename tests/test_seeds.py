"""The seeded watershed's threshold, chosen on the validation images after training (nbseg.predict.seeds): the
bundled model carries its own, `nbseg train` writes each fold's into its model file, prediction reads it, and
`--seed-threshold` overrides it."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile

from nbseg.cli.main import main
from nbseg.data import sample
from nbseg.data.pairs import find_pairs
from nbseg.model.unet import load_model_file
from nbseg.predict.ensemble import ensemble_info, load_ensemble
from nbseg.predict.options import PredictOptions
from nbseg.predict.post import DEFAULT_SEED_THRESHOLD, instances
from nbseg.predict.seeds import MIN_OBJECTS, SEED_THRESHOLDS, TOLERANCE, choose_seed_threshold


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    pass


def test_the_bundled_model_predicts_with_the_seed_threshold_chosen_for_it():
    info = ensemble_info(load_ensemble("nuclei"))
    assert info.seed_threshold in SEED_THRESHOLDS and info.seed_threshold > DEFAULT_SEED_THRESHOLD
    assert PredictOptions().seed_threshold_for(info) == info.seed_threshold
    assert PredictOptions(seed_threshold=0.6).seed_threshold_for(info) == 0.6  # the user's value wins


@pytest.mark.parametrize("bad", [0, 1, 1.5, "x"])
def test_a_seed_threshold_outside_0_to_1_is_refused_with_an_example(bad):
    with pytest.raises(ValueError, match="seed_threshold"):
        PredictOptions(seed_threshold=bad)


def test_the_choice_is_the_best_f1_on_the_images_given():
    pairs = find_pairs(sample("nuclei2d")["images"], sample("nuclei2d")["masks"])
    choice = choose_seed_threshold("nuclei", pairs, device="cpu")
    assert choice.objects >= MIN_OBJECTS and choice.images == len(pairs)
    assert set(choice.f1) == set(SEED_THRESHOLDS) and choice.threshold in choice.f1
    assert choice.f1[choice.threshold] >= max(choice.f1.values()) - TOLERANCE
    assert all(choice.f1[t] < max(choice.f1.values()) - TOLERANCE for t in choice.f1 if t < choice.threshold)


def test_a_region_split_is_scored_on_its_held_out_bands_only():
    from nbseg.data.split import held_out_band
    from nbseg.io.images import read_mask

    pairs = find_pairs(sample("nuclei2d")["images"], sample("nuclei2d")["masks"])
    choice = choose_seed_threshold("nuclei", pairs, device="cpu", held_out=0.5)
    in_bands = 0
    for pair in pairs:
        mask = read_mask(pair.mask, dims=2)
        in_bands += len(np.unique(mask[held_out_band(mask.shape, (), 0.5)[0]])) - 1
    assert choice.objects == in_bands and "validation bands" in choice.reason


def test_too_few_objects_keep_the_fallback(tmp_path):
    (tmp_path / "images").mkdir(), (tmp_path / "masks").mkdir()
    mask = np.zeros((64, 64), np.uint16)
    mask[10:20, 10:20], mask[40:50, 40:50] = 1, 2
    image = (mask > 0).astype(np.float32) + np.random.default_rng(0).normal(0, 0.05, mask.shape).astype(np.float32)
    tifffile.imwrite(tmp_path / "images" / "a.tif", image)
    tifffile.imwrite(tmp_path / "masks" / "a.tif", mask)
    choice = choose_seed_threshold("nuclei", find_pairs(tmp_path / "images", tmp_path / "masks"), device="cpu",
                                   fallback=0.7)
    assert choice.threshold == 0.7 and choice.objects == 2 and not choice.f1 and "fewer than" in choice.reason


def test_an_interior_smoothed_once_gives_the_same_objects():
    """Calibration smooths each interior map once for all candidate thresholds (seed_smoothing=0 after it)."""
    from nbseg.predict.post import smooth_interior

    rng = np.random.default_rng(0)
    interior = np.clip(rng.normal(0.5, 0.3, (40, 50)), 0, 1).astype(np.float16)
    foreground = interior > 0.3
    for t in (0.5, 0.9):
        np.testing.assert_array_equal(
            instances(foreground, interior=interior, seed_threshold=t, min_size=1),
            instances(foreground, interior=smooth_interior(interior), seed_threshold=t, min_size=1, seed_smoothing=0))


def test_a_higher_seed_threshold_splits_touching_objects():
    """What the threshold does: two interiors joined by a faint bridge share one seed at 0.5, not at 0.9."""
    interior = np.zeros((20, 40), np.float32)
    interior[4:16, 4:18], interior[4:16, 22:36], interior[8:12, 18:22] = 0.98, 0.98, 0.7
    foreground = interior > 0
    assert instances(foreground, interior=interior, seed_threshold=0.5, min_size=1).max() == 1
    assert instances(foreground, interior=interior, seed_threshold=0.9, min_size=1).max() == 2


@pytest.mark.slow  # a short training run and its calibration, through the CLI
def test_train_writes_each_folds_choice_and_predict_uses_it(tmp_path, capsys):
    src, project = sample("nuclei2d"), tmp_path / "p"
    assert main(["train", "--images", str(src["images"]), "--masks", str(src["masks"]), "--project", str(project),
                 "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2", "--patch", "64,64", "--size", "S",
                 "--device", "cpu", "--init", "nuclei"]) == 0
    said = capsys.readouterr().out
    assert "fold 0: seed threshold" in said, said
    _, meta = load_model_file(project / "models" / "fold0.pt")
    # one validation image: too few objects to choose from, so the fine-tune keeps the bundled model's value
    bundled = ensemble_info(load_ensemble("nuclei")).seed_threshold
    assert meta["seed_threshold"] in (bundled, *SEED_THRESHOLDS) and "seed_threshold_choice" in meta
    assert ensemble_info(load_ensemble(project)).seed_threshold == meta["seed_threshold"]
    out = tmp_path / "out"
    image = sorted(src["images"].iterdir())[0]
    assert main(["predict", str(project), str(image), "--output", str(out), "--instances", "--tta", "none",
                 "--seed-threshold", "0.95"]) == 0
    assert (out / f"{image.stem}.labels.ome.tif").exists()
    assert main(["predict", str(project), str(image), "--output", str(tmp_path / "bad"), "--instances",
                 "--seed-threshold", "2"]) == 2
    assert "is 2.0; give an interior probability between 0 and 1" in capsys.readouterr().err
