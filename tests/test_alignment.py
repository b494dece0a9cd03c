"""Labels that sit a fraction of a pixel off their structures: measured, planned for, and undone by the
network's own input shift (so prediction, tiling and exported packages need nothing else)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from nbseg.config import Config, DataConfig
from nbseg.data.alignment import MIN_IMAGES, describe_offset, image_offset, label_offset
from nbseg.data.dataset import Dataset, Sample
from nbseg.data.fingerprint import fingerprint
from nbseg.io.images import read_image, read_mask
from nbseg.model.unet import UNet, load_model_file, save_model_file
from nbseg.train.plan import make_plan


def membranes(shape=(128, 128), seed=0, offset=(0.0, 0.0)):
    """A smooth field's zero crossings as thin dark 'membranes', and labels drawn ``offset`` pixels away
    (labels at index i mark the image at i - offset)."""
    rng = np.random.default_rng(seed)
    field = ndi.gaussian_filter(rng.normal(size=shape), 4)
    ridges = np.exp(-(field / field.std()) ** 2 / 0.05)
    image = 1.0 - ridges + 0.05 * rng.normal(size=shape)
    labels = ndi.shift(ridges, offset, order=1, mode="nearest") > 0.5
    return image.astype(np.float32), labels


def cells(shape=(192, 192), seed=0, offset=(0.0, 0.0)):
    """Bright smooth objects, and labels whose edges (many pixels, at every sub-pixel position) sit
    ``offset`` pixels away: a ground truth that a binary mask can hold to a fraction of a pixel."""
    rng = np.random.default_rng(seed)
    field = ndi.gaussian_filter(rng.normal(size=shape), 5)
    image = field + 0.02 * field.std() * rng.normal(size=shape)
    labels = ndi.shift(field, offset, order=3, mode="nearest") > 0
    return image.astype(np.float32), labels


def samples(n, offset, seed=0):
    out = []
    for i in range(n):
        o = offset(i) if callable(offset) else offset
        image, labels = cells(seed=seed + i, offset=o)
        out.append(Sample(f"im{i}", image[None], labels.astype(np.int64), (None, None), None))
    return out


@pytest.mark.parametrize("offset", [(0.0, 0.0), (-0.6, -0.2), (0.4, 0.5)])
def test_image_offset_finds_a_sub_pixel_offset(offset):
    found = np.mean([image_offset(*cells(seed=s, offset=offset)) for s in range(4)], axis=0)
    assert found == pytest.approx(offset, abs=0.15)  # the objects' own shading moves it by ~0.1


def test_image_offset_of_thin_dark_lines():
    """A one-pixel line's mask can only sit on whole pixels; the estimate follows where it does."""
    assert image_offset(*membranes(offset=(0.0, 0.0))) == pytest.approx([0, 0], abs=0.1)
    y, x = np.mean([image_offset(*membranes(seed=s, offset=(-0.6, 0.0))) for s in range(3)], axis=0)
    assert -1.0 <= y <= -0.4 and abs(x) < 0.15


def test_image_offset_of_bright_objects_in_3d():
    found = []
    for seed in range(3):
        blobs = ndi.gaussian_filter(np.random.default_rng(seed).normal(size=(40, 64, 64)), 3)
        found.append(image_offset(blobs, ndi.shift(blobs, (0.5, 0.0, -0.4), order=3, mode="nearest") > 0))
    assert np.mean(found, axis=0) == pytest.approx([0.5, 0.0, -0.4], abs=0.2)  # blobs' shading: ~0.1 off


def test_label_offset_acts_only_on_a_clear_offset():
    clear = label_offset(samples(MIN_IMAGES + 1, (-0.6, -0.2)))
    assert clear["clear"] and clear["images"] == MIN_IMAGES + 1 and clear["agreement"] == 1.0
    assert clear["offset"] == pytest.approx([-0.6, -0.2], abs=0.15)
    none = label_offset(samples(MIN_IMAGES + 1, (0.0, 0.0)))
    assert not none["clear"] and "agree" in none["reason"]
    few = label_offset(samples(MIN_IMAGES - 1, (-0.6, -0.2)))
    assert few["offset"] is None and not few["clear"] and "needed" in few["reason"]
    mixed = label_offset(samples(MIN_IMAGES + 1, lambda i: (0.6 * (-1) ** i, 0.0)))  # images disagree
    assert not mixed["clear"]


def test_plan_shifts_the_input_by_the_offset_at_the_working_scale():
    ds = Dataset(samples(MIN_IMAGES + 1, (-0.6, -0.2)), "binary", 2, 1, 2)
    fp = fingerprint(ds)
    cfg = Config(data=DataConfig(images="x", dims=2))
    plan = make_plan(cfg, fp)
    assert plan.input_shift == pytest.approx(fp.label_offset["offset"]) and "input_shift" in plan.reasons
    assert "px up" in plan.reasons["input_shift"] and "left" in plan.reasons["input_shift"]
    half = make_plan(Config(data=DataConfig(images="x", dims=2), model={"scale": 0.5}), fp)
    assert half.input_shift == pytest.approx([v / 2 for v in plan.input_shift], abs=1e-3)
    off = make_plan(Config(data=DataConfig(images="x", dims=2), model={"input_shift": [0, 0]}), fp)
    assert off.input_shift is None and "as set" in off.reasons["input_shift"]
    with pytest.raises(ValueError, match="one value per axis"):
        make_plan(Config(data=DataConfig(images="x", dims=2), model={"input_shift": [0.5]}), fp)
    aligned = make_plan(cfg, fingerprint(Dataset(samples(MIN_IMAGES + 1, (0.0, 0.0)), "binary", 2, 1, 2)))
    assert aligned.input_shift is None and "input_shift" not in aligned.reasons


def test_config_refuses_a_shift_beyond_a_pixel():
    with pytest.raises(ValueError, match="between -1 and 1"):
        Config(data=DataConfig(images="x"), model={"input_shift": [1.5, 0]})


@pytest.mark.parametrize("dims,shift", [(2, (-0.6, -0.2)), (3, (0.3, -0.6, 0.5))])
def test_network_input_shift_is_scipys_linear_shift(dims, shift, tmp_path):
    model = UNet(dims, 2, 2, "S", input_shift=shift).eval()
    x = torch.randn((1, 2) + (16,) * dims)
    moved = model.align(x)[0, 1].numpy()
    assert np.allclose(moved, ndi.shift(x[0, 1].numpy(), shift, order=1, mode="nearest"), atol=1e-5)
    plain = UNet(dims, 2, 2, "S")
    assert list(model.state_dict()) == list(plain.state_dict())  # fine-tuning loads across either way
    path = save_model_file(tmp_path / "m.pt", model, meta={})
    loaded, _ = load_model_file(path)
    assert loaded.spec["input_shift"] == pytest.approx(list(shift))
    with torch.no_grad():
        assert torch.allclose(loaded.eval()(x), model(x), atol=1e-5)


def test_describe_offset():
    assert describe_offset([-0.63, 0.21], "YX") == "0.63 px up, 0.21 px right"
    assert describe_offset([0.5, 0.0, 0.0], "ZYX") == "0.50 px deeper"


def test_isbi_membrane_masks_sit_above_the_membranes(shared_data):
    """ISBI 2012's masks sit about 0.6 px above the membranes they mark (all 20 sections agree)."""
    folder = shared_data / "isbi2012"
    found = []
    for i in range(0, 20, 4):
        image = read_image(folder / "images" / f"train_{i:02d}.tif").data[0]
        found.append(image_offset(image, read_mask(folder / "masks" / f"train_{i:02d}.tif") > 0))
    y, x = np.median(found, axis=0)
    assert -0.8 < y < -0.4 and -0.3 < x < 0 and all(f[0] < -0.2 for f in found), found


def test_prediction_shifts_before_its_flips(tmp_path):
    """TTA flips the aligned image: the shift is applied once, in the image's own frame."""
    import model_projects  # tests/model_projects.py
    from nbseg.model.unet import load_model_file
    from nbseg.predict.image import predict_image

    shift = (-0.6, -0.2)
    project = model_projects.make_project(tmp_path / "p", input_shift=shift, percentiles=lambda k: [0.0, 100.0])
    image = np.random.default_rng(0).gamma(2.0, 40.0, (32, 32)).astype(np.float32)
    net, meta = load_model_file(project / "models" / "fold0.pt")
    with torch.no_grad():  # an untrained net's output barely depends on its input: make it
        net.head.weight.mul_(300)
        net.head.bias.sub_(net(torch.from_numpy(image / image.max())[None, None]).mean((0, 2, 3)))
    save_model_file(project / "models" / "fold0.pt", net, meta=meta)
    got = predict_image(project, image, tta="flips", tile=(32, 32), precision="fp32", dtype=np.float32)
    net, _ = load_model_file(project / "models" / "fold0.pt")
    low, high = np.percentile(image, [0.0, 100.0])
    normed = ((image - low) / (high - low)).astype(np.float32)
    aligned = torch.from_numpy(ndi.shift(normed, shift, order=1, mode="nearest"))[None, None]
    with torch.no_grad():
        probs = [torch.flip(net(torch.flip(aligned, dims), aligned=True).softmax(1), dims) for dims in ([], [2], [3])]
    expected = torch.stack(probs).mean(0)[0, 1].numpy()
    np.testing.assert_allclose(got.probabilities[1], expected, atol=2e-4)  # (K, Y, X): class 1
    with torch.no_grad():
        turned = torch.stack([torch.flip(net(torch.flip(torch.from_numpy(
            normed)[None, None], d)).softmax(1), d) for d in ([], [2], [3])]).mean(0)[0, 1].numpy()
    assert np.abs(turned - expected).max() > 0.05  # shifting after the flip differs: the test can tell


def test_serial_sections_of_one_stack_are_measured_as_images():
    """ISBI 2012 as the challenge ships it is one stack: its sections show different membranes, so each counts
    as an image; a stack whose sections repeat their neighbours' structures (Lucchi++, BBBC050) does not."""
    pairs = [cells(seed=z, offset=(-0.6, 0.2)) for z in range(8)]  # a new field each section
    serial = Sample("stack", np.stack([p[0] for p in pairs])[None], np.stack([p[1] for p in pairs]).astype(np.int64),
                    (None,) * 3, None)
    found = label_offset([serial])
    assert found["clear"] and "8 sections agree" in found["reason"]
    assert found["offset"] == pytest.approx([0.0, -0.6, 0.2], abs=0.15)
    image, labels = cells(seed=0, offset=(-0.6, 0.2))
    repeated = Sample("blobs", np.stack([image] * 8)[None], np.stack([labels] * 8).astype(np.int64), (None,) * 3, None)
    assert not label_offset([repeated])["clear"] and "not measured" in label_offset([repeated])["reason"]
