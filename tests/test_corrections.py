"""The correction loop's core: nbseg suggest (and predict) with a bundled model's name, colour images for a grey
model, decisions written at once and read back after a killed process, and the training set they make."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tifffile

from conftest import nuclei_pool
from nbseg.data import sample
from nbseg.io.images import read_image, read_mask
from nbseg.labels.corrections import next_image, read_decisions, record_decision, training_set
from nbseg.predict.suggest import suggest_images
from nbseg.project import ProjectLayout


@pytest.fixture
def pool(tmp_path):
    """Four real crops of the bundled nuclei, with pixel sizes (0.5 µm) in the files."""
    return nuclei_pool(tmp_path / "pool", 4, micrometres=0.5)


def test_suggest_ranks_a_pool_with_the_bundled_model(pool, one_thread):
    table = suggest_images("nuclei", pool, tta="flips", by="uncertain")
    assert list(table["rank"]) == [1, 2, 3, 4] and table["score"].is_monotonic_decreasing
    assert table["score"].between(0, 1).all() and table["score"].nunique() > 1
    fewer = suggest_images("nuclei", pool, n=2, tta="none", skip={table["name"][0]})
    assert len(fewer) == 2 and table["name"][0] not in set(fewer["name"])
    diverse = suggest_images("nuclei", pool, tta="none", by="diverse", batch=2)
    assert sorted(diverse["name"]) == sorted(table["name"])
    crowded = suggest_images("nuclei", pool, tta="none", by="crowded", batch=1)
    assert (crowded["objects"] > 0).all() and crowded["objects"][0] >= sorted(crowded["objects"])[-2]
    dense = suggest_images("nuclei", pool, tta="none", batch=1)  # the default
    assert dense["foreground_px"][0] >= sorted(dense["foreground_px"])[-3]  # among the 3 x 1 with the most
    assert np.allclose(dense["foreground_px"] / dense["foreground_fraction"], 128 * 128)


def test_suggest_reads_the_networks_own_features(pool, one_thread):
    """The covering rules rank by the deepest layer's activations of the models prediction runs (copies of
    the loaded ones): one unit vector per image, different images giving different vectors."""
    from nbseg.predict.suggest import image_scores

    rows, features = image_scores("nuclei", sorted(pool.glob("*.tif")), tta="flips")
    assert len(rows) == len(features) == 4 and all(f is not None and f.shape == (128,) for f in features)
    assert np.allclose([f @ f for f in features], 1) and features[0] @ features[1] < 0.9999


@pytest.mark.slow  # predicts with the bundled model in a process of its own, or trains
def test_suggest_cli_on_colour_images_for_a_grey_model(pool, tmp_path, one_thread):
    colour = tmp_path / "colour"
    colour.mkdir()
    for path in sorted(pool.glob("*.tif"))[:2]:  # brightfield-like: dark nuclei on a light background, RGB
        grey = tifffile.imread(path).astype(np.float32)
        light = (255 - grey / max(grey.max(), 1) * 200).astype(np.uint8)
        tifffile.imwrite(colour / path.name, np.stack([light, light, light], -1), photometric="rgb")
    out = subprocess.run([sys.executable, "-m", "nbseg", "suggest", "nuclei", str(colour), "-n", "1", "--tta", "none"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].endswith(".tif")


@pytest.mark.slow  # predicts with the bundled model in a process of its own, or trains
def test_predict_takes_a_bundled_models_name(pool, tmp_path, one_thread):
    out = subprocess.run([sys.executable, "-m", "nbseg", "predict", "nuclei", str(pool), "--output",
                          str(tmp_path / "out"), "--instances", "--tta", "none"], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    labels = sorted((tmp_path / "out").glob("*.labels.ome.tif"))
    assert len(labels) == 4 and all(tifffile.imread(p).max() > 3 for p in labels)  # nuclei found in each


def test_a_decision_survives_a_killed_process(pool, tmp_path):
    project, image = tmp_path / "project", sorted(pool.glob("*.tif"))[0]
    labels = read_mask(sample("nuclei2d")["masks"] / image.name)[:128, :128]
    script = textwrap.dedent(f"""
        import os, signal, numpy as np, tifffile
        from nbseg.labels.corrections import record_decision
        labels = tifffile.imread({str(sample("nuclei2d")["masks"] / image.name)!r})[:128, :128]
        record_decision({str(project)!r}, {str(image)!r}, "corrected", labels, model="nuclei", edits={{"deleted": 2}})
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == -9, out.stderr[-2000:]
    decision = read_decisions(project)[image.stem]
    assert decision.decision == "corrected" and decision.edits == {"deleted": 2} and decision.model == "nuclei"
    saved = read_image(decision.mask)
    assert np.array_equal(saved.data[0], labels) and saved.pixel_sizes == pytest.approx((0.5, 0.5))
    ranked = sorted(pool.glob("*.tif"))
    assert next_image(ranked, project) == ranked[1]  # the kernel resumes at the next image


def test_training_set_holds_accepted_corrected_and_earlier_masks(pool, tmp_path):
    project, images = tmp_path / "project", sorted(pool.glob("*.tif"))
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    masks = sample("nuclei2d")["masks"]
    for image in images[2:]:  # the user had masks for the last two
        tifffile.imwrite(earlier / image.name, read_mask(masks / image.name)[:128, :128])
    first = read_mask(masks / images[0].name)[:128, :128]
    record_decision(project, images[0], "accepted", first, model="nuclei")
    record_decision(project, images[1], "corrected", first * 0 + 1, model="nuclei")
    record_decision(project, images[3], "left out", model="nuclei")  # an earlier mask the user now leaves out
    with pytest.raises(ValueError, match="needs label image"):
        record_decision(project, images[2], "accepted")
    found = training_set(project, pool, earlier)
    names = sorted(p.stem for p in found["masks"].iterdir())
    assert found["count"] == 3 and names == sorted([images[0].stem + ".ome", images[1].stem + ".ome", images[2].stem])
    assert sorted(p.name for p in found["images"].iterdir()) == sorted(p.name for p in images[:3])
    assert ProjectLayout(project).decisions.read_text().count("\n") == 3


@pytest.mark.slow  # predicts with the bundled model in a process of its own, or trains
def test_proposed_labels_are_the_objects_predict_writes(pool, tmp_path, one_thread):
    from nbseg.predict.suggest import propose_labels

    image = sorted(pool.glob("*.tif"))[0]
    labels, prediction = propose_labels("nuclei", image, tta="none")
    subprocess.run([sys.executable, "-m", "nbseg", "predict", "nuclei", str(image), "--output", str(tmp_path / "out"),
                    "--instances", "--tta", "none"], check=True, capture_output=True, timeout=600)
    written = tifffile.imread(tmp_path / "out" / f"{image.stem}.labels.ome.tif")
    assert labels.shape == written.shape and labels.max() > 3
    assert np.array_equal(labels > 0, written > 0) and labels.max() == written.max()


@pytest.mark.slow  # predicts with the bundled model in a process of its own, or trains
def test_predict_pixel_size_fills_the_micrometre_columns(tmp_path, one_thread):
    import pandas as pd

    src = sample("nuclei2d")
    image = sorted(src["images"].glob("*.tif"))[0]
    plain = tmp_path / "in"
    plain.mkdir()
    tifffile.imwrite(plain / image.name, tifffile.imread(image)[:128, :128])  # no calibration in the file
    for extra, name in (([], "without"), (["--pixel-size", "0.5,0.5"], "with")):
        subprocess.run([sys.executable, "-m", "nbseg", "predict", "nuclei", str(plain), "--output",
                        str(tmp_path / name), "--instances", "--tta", "none", *extra], check=True,
                       capture_output=True, timeout=600)
    without = pd.read_csv(tmp_path / "without" / f"{image.stem}.objects.csv")
    table = pd.read_csv(tmp_path / "with" / f"{image.stem}.objects.csv")
    assert table["area_um2"].notna().all() and without["area_um2"].isna().all()
    assert np.allclose(table["area_um2"], table["area_px"] * 0.25)
    bad = subprocess.run([sys.executable, "-m", "nbseg", "predict", "nuclei", str(plain), "--output",
                          str(tmp_path / "bad"), "--pixel-size", "2,0.5,0.5"], capture_output=True, text=True,
                         timeout=600)
    assert bad.returncode != 0 and "Y,X" in bad.stderr


def test_covering_rules_pick_one_image_of_each_kind():
    """Three kinds of image (feature directions), the most uncertain all of one kind: "uncertain" takes three of
    that kind, "representative" one of each, and "diverse" one of each among the six most uncertain."""
    from nbseg.predict.suggest import cover, rank_order

    kinds = np.eye(3)[[0, 0, 0, 0, 1, 1, 2, 2, 2]] + 0.05
    features = [f / np.linalg.norm(f) for f in kinds]
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.1, 0.4, 0.3, 0.2])
    assert rank_order(scores, features, by="uncertain", n=3)[:3] == [0, 1, 2]
    assert sorted(np.argmax(kinds[rank_order(scores, features, by="representative", n=3)[:3]], axis=1)) == [0, 1, 2]
    diverse = rank_order(scores, features, by="diverse", n=3)
    assert sorted(diverse) == list(range(9)) and set(diverse[:3]) <= {0, 1, 2, 3, 4, 6}
    assert sorted(np.argmax(kinds[diverse[:3]], axis=1)) == [0, 1, 2]
    assert cover(np.stack(features), [0, 1, 2, 3], 2)[0] in {0, 1, 2, 3}
    assert rank_order(scores, [None] * 9, by="diverse", n=3) == list(np.argsort(-scores))  # no features: by score
    # "crowded", 2 of 9: one of each kind among the 3 x 2 images with the most objects (kind 1's two have few)
    objects = np.array([40, 35, 30, 25, 3, 2, 20, 15, 10])
    crowded = rank_order(scores, features, by="crowded", n=2, objects=objects)
    assert sorted(crowded) == list(range(9)) and set(crowded[:2]) <= {0, 1, 2, 3, 6, 7}
    assert sorted(np.argmax(kinds[crowded[:2]], axis=1)) == [0, 2]
    # "dense" the same by foreground: 1 of 9 is among the 3 with the most foreground, whatever their objects
    foreground = np.array([1, 2, 1, 2, 900, 800, 700, 600, 500])
    dense = rank_order(scores, features, by="dense", n=1, objects=objects, foreground=foreground)
    assert sorted(dense) == list(range(9)) and dense[0] in {4, 5, 6}
    assert rank_order(scores, features, by="crowded", n=1, objects=objects, foreground=foreground)[0] in {0, 1, 2}
