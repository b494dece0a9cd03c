"""The working scale: resampling round trips, the label-fidelity measure, the plan's scale rule, and a
model trained at half scale predicting at the input's own shape and pixel sizes."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile

from nbseg.config import Config, DataConfig
from nbseg.data.fingerprint import fingerprint
from nbseg.data.resample import image_factors, label_fidelity, rescale_dataset, resample_image, restore
from nbseg.train.plan import make_plan
from test_plan import dataset


def smooth(shape):
    grid = np.indices(shape).astype(np.float32)
    return (np.sin(grid[-1] / 9) + np.cos(grid[-2] / 13) + grid[0] / 50)[np.newaxis]


@pytest.mark.parametrize("factors", [(0.5, 0.5), (1.0, 0.5, 0.5), (0.5, 0.5, 0.5), (1.0, 0.25, 0.25)])
def test_resample_and_restore_round_trip(factors):
    shape = (61, 83) if len(factors) == 2 else (21, 61, 83)
    image = smooth(shape)
    small = resample_image(image, factors)
    assert small.shape[1:] == tuple(round(n * f) for n, f in zip(shape, factors))
    back = restore(small, shape, step=4)  # slab by slab equals the whole
    assert back.shape == image.shape and np.allclose(back, restore(small, shape, step=1000), atol=1e-5)
    inner = (slice(None),) + tuple(slice(4, -4) for _ in shape)
    tolerance = 0.03 if min(factors) >= 0.5 else 0.08
    assert np.abs(back - image)[inner].max() < tolerance


def test_restore_writes_a_disk_backed_store(tmp_path):
    from nbseg.model.tiling import DiskArray

    small = resample_image(smooth((9, 40, 40)), (1.0, 0.5, 0.5))
    store = DiskArray(tmp_path / "p.npy", (1, 9, 40, 40), np.float32)
    restore(small, (9, 40, 40), out=store, step=2)
    assert np.allclose(store.open(), restore(small, (9, 40, 40)))


def test_label_fidelity_keeps_thick_objects_and_loses_thin_lines():
    thick = np.zeros((200, 200), np.int64)
    thick[40:160, 30:170] = 1
    thin = np.zeros((200, 200), np.int64)
    thin[::20, :] = 1  # one-pixel lines, like membranes or instance borders
    assert label_fidelity([thick], (0.5, 0.5), 2) > 0.99
    assert label_fidelity([thin], (0.5, 0.5), 2) < 0.5
    both = thick.copy()
    both[thin == 1] = 2
    assert label_fidelity([both], (0.5, 0.5), 3) < 0.5  # the worst class decides


def test_plan_shrinks_large_objects_that_survive_and_keeps_thin_ones():
    big = fingerprint(dataset([(600, 600)], radius=60))
    plan = make_plan(Config(data=DataConfig(images="x")), big, device="cpu")
    assert plan.scale == [0.5, 0.5] and "view" in plan.reasons["scale"] and "scale 0.5x0.5" in plan.lines()[0]
    big.scale_fidelity = {"0.5": 0.9, "0.25": 0.8}  # thin structures in the labels
    kept = make_plan(Config(data=DataConfig(images="x")), big, device="cpu")
    assert kept.scale == [1.0, 1.0] and "lose detail" in kept.reasons["scale"]
    # a mesh across the whole image (membranes): its extent is the image's, and it keeps the full scale
    big.scale_fidelity = {"0.5": 0.99, "0.25": 0.98}
    big.objects = {"foreground": {"count": 5, "extent": {"p10": [9, 9], "p50": [40, 40], "p90": [600, 600]}}}
    mesh = make_plan(Config(data=DataConfig(images="x")), big, device="cpu")
    assert mesh.scale == [1.0, 1.0] and "span whole images" in mesh.reasons["scale"]
    small = make_plan(Config(data=DataConfig(images="x")), fingerprint(dataset([(256, 256)])), device="cpu")
    assert small.scale == [1.0, 1.0] and "scale" not in small.reasons


def test_plan_scale_set_by_the_user_and_z_of_anisotropic_stacks():
    fp = fingerprint(dataset([(40, 200, 200)], spacing=(2.2, 1.0, 1.0), radius=12))
    cfg = Config(data=DataConfig(images="x", dims=3), model={"scale": 0.5, "dims": 3})
    plan = make_plan(cfg, fp, device="cpu")
    # Z (2.2x coarser) is already coarser than the plane at half scale: it stays
    assert plan.scale == [1.0, 0.5, 0.5] and "as set" in plan.reasons["scale"]
    assert plan.spacing == [2.2, 2.0, 2.0]
    iso = fingerprint(dataset([(40, 200, 200)], spacing=(1.0, 1.0, 1.0), radius=12))
    assert make_plan(cfg, iso, device="cpu").scale == [0.5, 0.5, 0.5]
    with pytest.raises(ValueError, match="scale is 1.5"):
        Config(data=DataConfig(images="x"), model={"scale": 1.5})


def test_images_of_another_pixel_size_are_brought_to_the_common_one():
    assert image_factors([0.5, 0.5], [0.4, 0.4], (0.2, 0.2), "µm") == [0.5, 0.5]
    assert image_factors([0.5, 0.5], [0.4, 0.4], (0.1, 0.1), "µm") == [0.25, 0.25]
    assert image_factors([0.5, 0.5], [0.4, 0.4], (1.0, 1.0), "relative") == [0.5, 0.5]
    assert image_factors(None, None, None) == [1.0, 1.0]
    data = dataset([(100, 100), (100, 100)], spacing=(0.2, 0.2), radius=20)
    data.samples[1].pixel_sizes = (0.1, 0.1)  # a second microscope: twice as fine
    moved = rescale_dataset(data, [1.0, 1.0], [0.2, 0.2])
    assert moved.samples[0] is data.samples[0] and moved.samples[1].target.shape == (50, 50)
    assert any("resampled to the common pixel size" in n for n in moved.notes)


def test_half_scale_model_predicts_at_the_input_shape_and_pixel_sizes(tmp_path):
    from nbseg.data import sample
    from nbseg.predict.files import predict_files
    from nbseg.predict.options import PredictOptions
    from nbseg.train import fit

    config = Config(data=sample("nuclei2d"), model={"scale": 0.5},
                    train={"epochs": 1, "steps_per_epoch": 2, "batch_size": 2, "val_tiles": 2, "device": "cpu"})
    result = fit(config, tmp_path / "project")
    assert result.folds[0].model_path.exists()
    image = next(iter(sorted(sample("nuclei2d")["images"].iterdir())))
    source = tmp_path / "in.ome.tif"
    tifffile.imwrite(source, tifffile.imread(image)[:200, :176], metadata={"axes": "YX",
                     "PhysicalSizeX": 0.3, "PhysicalSizeY": 0.3})
    predict_files(tmp_path / "project", [source], tmp_path / "out", PredictOptions(tta="none", device="cpu"))
    with tifffile.TiffFile(tmp_path / "out" / "in.mask.ome.tif") as tif:
        mask = tif.asarray()
        pixels = tif.ome_metadata
    assert mask.shape[-2:] == (200, 176)
    assert 'PhysicalSizeX="0.3"' in pixels and 'PhysicalSizeY="0.3"' in pixels


def test_3d_networks_plan_instance_norm_and_load_back(tmp_path):
    import torch

    from nbseg.model.unet import UNet, load_model_file, save_model_file

    fp = fingerprint(dataset([(40, 96, 96)], spacing=(1.0, 1.0, 1.0), radius=8))
    forced = make_plan(Config(data=DataConfig(images="x", dims=3), model={"dims": 3}), fp, device="cpu")
    assert forced.norm == "instance" and "instance norm" in forced.reasons["norm"]
    assert make_plan(Config(data=DataConfig(images="x", dims=3)), fp, device="cpu").norm == "batch"  # slices
    model = UNet(3, 1, 2, "S", norm="instance")
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in model.modules())
    x = torch.randn(1, 1, 16, 32, 32)
    model.eval()
    loaded, _ = load_model_file(save_model_file(tmp_path / "m.pt", model, meta={}))
    assert torch.allclose(loaded(x), model(x)) and loaded.spec["norm"] == "instance"
    assert "norm" not in UNet(2, 1, 2, "S").spec  # earlier model files keep their spec


@pytest.mark.parametrize("factors", [(1.0, 0.5, 0.5), (0.5, 0.25, 0.5)])
def test_windows_of_a_resampled_image_and_of_its_restoring_match_the_whole(factors):
    from nbseg.data.resample import scaled_shape
    from nbseg.data.windows import resample_window, restore_source, restore_window, source_window

    image = np.random.default_rng(0).random((2, 13, 101, 77)).astype(np.float32)
    shape = image.shape[1:]
    whole, work_shape = resample_image(image, factors), scaled_shape(shape, factors)
    for window in [(slice(0, 3), slice(10, 25), slice(0, 19)), (slice(2, 6), slice(0, 25), slice(7, 19))]:
        window = tuple(slice(w.start, min(w.stop, n)) for w, n in zip(window, work_shape))
        src = source_window(window, shape, factors)
        part = resample_window(image[(slice(None),) + src], factors, shape, window, [s.start for s in src])
        np.testing.assert_allclose(part, whole[(slice(None),) + window], atol=1e-6)
    back = restore(whole, shape)
    for out in [(slice(0, 5), slice(40, 101), slice(5, 33)), (slice(7, 13), slice(0, 17), slice(60, 77))]:
        need = restore_source(out, shape, work_shape)
        part = restore_window(whole[(slice(None),) + need], shape, work_shape, out, [s.start for s in need])
        np.testing.assert_allclose(part, back[(slice(None),) + out], atol=1e-6)


def test_blocks_of_a_half_scale_model_read_what_resampling_and_tiling_need():
    from nbseg.predict.cluster.blocks import plan_blocks
    from nbseg.model.tiling import axis_placements

    blocks = plan_blocks((40, 100), (20, 64), (16, 16), 0.5, factors=(0.5, 0.5))
    assert [b.out for b in blocks][:2] == [(slice(0, 20), slice(0, 64)), (slice(0, 20), slice(64, 100))]
    grids = [axis_placements(n, 16, 0.5) for n in (20, 50)]  # the tiles of the 20 x 50 image at half scale
    for b in blocks:  # the work window is made of whole tiles, and resampling it reads its input and a margin
        assert all(w.start in {p.start for p in g} and w.stop in {p.stop for p in g} for w, g in zip(b.work, grids))
        assert all(s.start <= max(0, 2 * w.start - 3) and s.stop >= min(n, 2 * w.stop + 2)
                   for s, w, n in zip(b.src, b.work, (40, 100)))


def test_a_membrane_mesh_given_as_one_stack_keeps_the_full_scale():
    # serial sections as one stack (ISBI 2012 as the challenge ships it): through Z each section's mesh joins
    # into a few objects, so their 90th-percentile extent falls under the image's; the share of the class's
    # pixels in objects that reach across the image still says it is a mesh
    from nbseg.data.dataset import Dataset, Sample

    target = np.zeros((6, 400, 400), np.int64)
    target[:, 199:202, :] = target[:, :, 199:202] = 1  # a cross from edge to edge, in every section
    target[:, 99:102, 10:190] = target[:, 299:302, 210:390] = target[:, 210:390, 99:102] = 1  # walls apart
    sample = Sample("stack", (target > 0).astype(np.float32)[None], target, (None,) * 3, None)
    fp = fingerprint(Dataset([sample], "binary", 2, 1, 3))
    found = fp.objects["foreground"]
    assert found["count"] == 4 and np.all(np.asarray(found["extent"]["p90"])[-2:] < 400)  # p90 alone: no mesh
    assert found["spanning"] == pytest.approx(0.596, abs=0.01)
    assert fp.typical_extent(spanning=False) is None and fp.typical_extent()[-1] > 300
    fp.scale_fidelity = {"0.5": 0.99, "0.25": 0.98}  # as thick walls keep at a coarser scale
    plan = make_plan(Config(data=DataConfig(images="x", dims=3)), fp, device="cpu")
    assert plan.scale == [1.0, 1.0, 1.0] and "span whole images" in plan.reasons["scale"]
    found["spanning"] = 0.2  # most pixels in walls apart from the cross: objects, not a mesh
    assert make_plan(Config(data=DataConfig(images="x", dims=3)), fp, device="cpu").scale != [1.0, 1.0, 1.0]
