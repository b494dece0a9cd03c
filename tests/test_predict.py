"""Prediction: sliding-window oracles, TTA inversion, ensembles, files, out-of-fold, bad input."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from nbseg.config import Config, DataConfig
from nbseg.data.normalize import percentile_normalize
from nbseg.data.normalize import intensity_bounds
from nbseg.predict.image import predict_image
from nbseg.io.images import read_image
from nbseg.model.unet import UNet, save_model_file
from nbseg.predict import out_of_fold_predictions, predict_files
from nbseg.model.tiling import DiskArray, axis_placements, gaussian_profile, sliding_window
from nbseg.predict.tta import tta_variants

from model_projects import make_model, make_project  # tests/model_projects.py


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread):
    yield


def write_images(folder: Path, shapes, *, seed=0, pixel_sizes=(0.5, 0.5)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i, shape in enumerate(shapes):
        path = folder / f"img{i}.tif"
        axes = "ZYX" if len(shape) == 3 else "YX"
        meta = {"axes": axes, "PhysicalSizeY": pixel_sizes[-2], "PhysicalSizeX": pixel_sizes[-1]}
        tifffile.imwrite(path, (rng.random(shape) * 200).astype(np.uint8), ome=True, metadata=meta)
        paths.append(path)
    return paths


# ---------------------------------------------------------------- sliding window oracles


@st.composite
def window_cases(draw):
    dims = draw(st.sampled_from([2, 3]))
    shape = tuple(draw(st.integers(1, 24)) for _ in range(dims))
    tile = tuple(draw(st.integers(1, 12)) for _ in range(dims))
    overlap = draw(st.sampled_from([0.0, 0.25, 0.5, 0.75, 0.9]))
    return shape, tile, overlap, draw(st.integers(1, 5)), draw(st.integers(1, 2))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(window_cases())
def test_sliding_window_identity_and_shift_are_exact(case):
    shape, tile, overlap, batch, channels = case
    image = np.random.default_rng(0).random((channels,) + shape).astype(np.float32)
    same = sliding_window(image, lambda x: x, tile=tile, n_out=channels, overlap=overlap, batch_size=batch)
    np.testing.assert_allclose(same, image, rtol=1e-5, atol=1e-6)
    shifted = sliding_window(image, lambda x: x + 1, tile=tile, n_out=channels, overlap=overlap, batch_size=batch)
    np.testing.assert_allclose(shifted, image + 1, rtol=1e-5, atol=1e-6)


def _reference_window(image, fn, tile, overlap):
    """Dense re-computation: full weight map, every tile at once, float64."""
    grids = [axis_placements(s, t, overlap) for s, t in zip(image.shape[1:], tile)]
    importance = np.ones(())
    for t in tile:
        importance = np.multiply.outer(importance, gaussian_profile(t))
    total, weight = np.zeros(image.shape), np.zeros(image.shape[1:])
    import itertools

    for places in itertools.product(*grids):
        region = tuple(slice(p.start, p.stop) for p in places)
        crop = tuple(slice(p.offset, p.offset + p.stop - p.start) for p in places)
        pads = [(0, 0)] + [(p.offset, t - p.offset - (p.stop - p.start)) for p, t in zip(places, tile)]
        x = np.pad(image[(slice(None),) + region], pads, mode="reflect")
        y = fn(torch.from_numpy(x[None].astype(np.float32))).numpy()[0]
        total[(slice(None),) + region] += y[(slice(None),) + crop] * importance[crop]
        weight[region] += importance[crop]
    return total / weight


@pytest.mark.parametrize("shape,tile,overlap", [((1, 37, 29), (16, 8), 0.5), ((1, 11, 20, 17), (4, 8, 8), 0.25),
                                                ((2, 5, 9, 40), (8, 8, 16), 0.5)])
def test_sliding_window_blends_like_a_dense_reference(shape, tile, overlap):
    def tile_dependent(x):  # output depends on the whole tile, so blending weights matter
        return x * 2 + x.mean(dim=tuple(range(2, x.ndim)), keepdim=True)

    image = np.random.default_rng(1).random(shape).astype(np.float32)
    got = sliding_window(image, tile_dependent, tile=tile, n_out=shape[0], overlap=overlap, batch_size=3)
    np.testing.assert_allclose(got, _reference_window(image, tile_dependent, tile, overlap), rtol=1e-5, atol=1e-6)


def test_sliding_window_writes_to_disk_and_cleans_up(tmp_path):
    image = np.random.default_rng(2).random((1, 30, 20, 24)).astype(np.float32)
    store = DiskArray(tmp_path / "out.npy", (1, 30, 20, 24), np.float32)
    sliding_window(image, lambda x: x + 1, tile=(8, 8, 8), n_out=1, out=store)
    result = store.open()
    np.testing.assert_allclose(result, image + 1, rtol=1e-5)
    assert isinstance(result, np.memmap) and not (tmp_path / "out.npy").exists()


def test_sliding_window_rejects_bad_tiles():
    with pytest.raises(ValueError, match="2 spatial axes"):
        sliding_window(np.zeros((1, 8, 8)), lambda x: x, tile=(4, 4, 4), n_out=1)
    with pytest.raises(ValueError, match="overlap"):
        sliding_window(np.zeros((1, 8, 8)), lambda x: x, tile=(4, 4), n_out=1, overlap=1.0)


# ---------------------------------------------------------------- TTA


@pytest.mark.parametrize("dims,tta,count", [(2, "none", 1), (2, "flips", 3), (2, "all", 8), (3, "flips", 4),
                                            (3, "all", 16)])
def test_every_tta_variant_round_trips_and_is_distinct(dims, tta, count):
    x = torch.arange(2 * 3 * 4 ** dims, dtype=torch.float32).reshape((2, 3) + (4,) * dims)  # no symmetry
    variants = tta_variants(tta, dims)
    assert len(variants) == count and variants[0].forward(x).equal(x)
    seen = []
    for v in variants:
        assert v.inverse(v.forward(x)).equal(x)
        seen.append(v.forward(x))
    assert all(not a.equal(b) for i, a in enumerate(seen) for b in seen[i + 1:])


class Ramp(nn.Module):
    """A 'network' that is not equivariant: logit 1 is a ramp along one tile axis (input ignored),
    or, with ``axis=None``, the input itself (equivariant)."""

    def __init__(self, dims, axis):
        super().__init__()
        self.axis = axis
        self.spec = dict(spatial_dims=dims, in_channels=1, n_classes=2, size="S", pool_z=True)

    def forward(self, x):
        if self.axis is None:
            return torch.cat([torch.zeros_like(x), x], 1)
        n = x.shape[2 + self.axis]
        shape = [1] * x.ndim
        shape[2 + self.axis] = n
        ramp = (torch.arange(n, dtype=torch.float32) - (n - 1) / 2).reshape(shape) / n * 4
        return torch.cat([torch.zeros_like(x), torch.zeros_like(x) + ramp], 1)


def _sigmoid_ramp(n, reverse=False):
    ramp = (np.arange(n) - (n - 1) / 2) / n * 4
    return 1 / (1 + np.exp(-(ramp[::-1] if reverse else ramp)))


def _along(values, axis, dims, n):
    shape = [1] * dims
    shape[axis] = n
    return np.broadcast_to(values.reshape(shape), (n,) * dims)


@pytest.mark.parametrize("dims,tta", [(2, "flips"), (2, "all"), (3, "flips"), (3, "all")])
def test_tta_inverts_a_non_equivariant_network(dims, tta):
    n = 16
    image = np.random.default_rng(0).random((n,) * dims)
    last = dims - 1
    ramp_x = Ramp(dims, last)
    got = predict_image([(ramp_x, {"kind": "binary"})], image, tta=tta, tile=(n,) * dims, precision="fp32",
                        dtype=np.float32).foreground
    up, down = _along(_sigmoid_ramp(n), last, dims, n), _along(_sigmoid_ramp(n, True), last, dims, n)
    if tta == "flips":  # identity and the flips of the other axes keep the ramp; the X flip reverses it
        expected = (dims * up + down) / (dims + 1)
    else:  # quarter turns carry the X ramp onto Y too, both directions, equally often
        up_y, down_y = _along(_sigmoid_ramp(n), last - 1, dims, n), _along(_sigmoid_ramp(n, True), last - 1, dims, n)
        expected = (up + down + up_y + down_y) / 4
    np.testing.assert_allclose(got, expected, atol=1e-6)
    if dims == 3:  # the Z flip of "all" and "flips" reverses a Z ramp in half / a quarter of the passes
        got_z = predict_image([(Ramp(3, 0), {"kind": "binary"})], image, tta=tta, tile=(n,) * 3,
                              precision="fp32", dtype=np.float32).foreground
        share = 0.5 if tta == "all" else 0.25
        expected_z = (1 - share) * _along(_sigmoid_ramp(n), 0, 3, n) + share * _along(_sigmoid_ramp(n, True), 0, 3, n)
        np.testing.assert_allclose(got_z, expected_z, atol=1e-6)


@pytest.mark.parametrize("dims", [2, 3])
def test_tta_of_an_equivariant_network_changes_nothing(dims):
    image = np.random.default_rng(3).random((16, 24) if dims == 2 else (8, 16, 24))
    ensemble = [(Ramp(dims, None), {"kind": "binary"})]
    plain = predict_image(ensemble, image, tta="none", precision="fp32", dtype=np.float32, tile=image.shape)
    for tta in ("flips", "all"):
        other = predict_image(ensemble, image, tta=tta, precision="fp32", dtype=np.float32, tile=image.shape)
        np.testing.assert_allclose(other.probabilities, plain.probabilities, atol=1e-6)


# ---------------------------------------------------------------- predict_image


def test_normalisation_matches_training():
    """Training's normalisation and the one prediction applies (with the model's saved percentiles)
    both equal numpy's percentiles, computed here independently of nbseg."""
    data = np.random.default_rng(4).gamma(2.0, 30.0, (2, 40, 48)).astype(np.float32)
    low, high = (np.percentile(data, q, axis=(1, 2))[:, None, None] for q in (2.0, 98.0))
    expected = (data - low) / (high - low)
    np.testing.assert_allclose(percentile_normalize(data, percentiles=(2.0, 98.0)), expected, rtol=1e-5, atol=1e-5)
    # Ramp(axis=None) returns its (normalised) input as the logit of class 1: the foreground is its sigmoid
    ensemble = [(Ramp(2, None), {"kind": "binary", "percentiles": [2.0, 98.0]})]
    got = predict_image(ensemble, data[0], tta="none", precision="fp32", dtype=np.float32, tile=(40, 48)).foreground
    np.testing.assert_allclose(got, 1 / (1 + np.exp(-expected[0])), atol=1e-5)


def test_predict_image_2d_shapes_ranges_and_padding():
    model = make_model(2)
    image = np.random.default_rng(5).random((20, 44)) * 1000  # smaller than the 32x32 tile along Y
    pred = predict_image([(model, {"kind": "binary", "patch": [32, 32]})], image, tta="flips")
    assert pred.probabilities.shape == (2, 20, 44) and pred.probabilities.dtype == np.float16
    np.testing.assert_allclose(pred.probabilities.astype(np.float32).sum(0), 1, atol=2e-3)
    assert 0 <= pred.uncertainty.min() and pred.uncertainty.max() <= 1 and pred.n_passes == 3
    assert 0 <= pred.uncertainty_score <= 1


@pytest.mark.parametrize("pool_z", [True, False])
def test_predict_image_3d_stack_with_few_slices(pool_z):
    model = make_model(3, classes=3, pool_z=pool_z)
    image = np.random.default_rng(6).random((3, 24, 20))
    pred = predict_image([(model, {"kind": "instances", "patch": [8, 16, 16]})], image, tta="none")
    assert pred.probabilities.shape == (3, 3, 24, 20) and pred.foreground.shape == (3, 24, 20)
    np.testing.assert_allclose(pred.foreground, 1 - pred.probabilities[0].astype(np.float32), atol=2e-3)


def test_ensemble_is_the_mean_of_its_models():
    image = np.random.default_rng(7).random((32, 32))
    members = [(make_model(2, seed=s), {"kind": "binary"}) for s in (1, 2)]
    options = dict(tta="none", precision="fp32", dtype=np.float32)
    both = predict_image(members, image, **options)
    each = [predict_image([m], image, **options).probabilities for m in members]
    np.testing.assert_allclose(both.probabilities, (each[0] + each[1]) / 2, atol=1e-5)


def test_bf16_autocast_keeps_the_result():
    image = np.random.default_rng(8).random((48, 48))
    ensemble = [(make_model(2), {"kind": "binary"})]
    fp32 = predict_image(ensemble, image, tta="none", precision="fp32", dtype=np.float32).foreground
    bf16 = predict_image(ensemble, image, tta="none", precision="bf16", dtype=np.float32).foreground
    assert np.abs(fp32 - bf16).max() < 0.05
    assert np.mean((fp32 > 0.5) == (bf16 > 0.5)) > 0.99


def test_large_results_go_to_disk(tmp_path):
    image = np.random.default_rng(9).random((8, 24, 24))
    ensemble = [(make_model(3), {"kind": "binary", "patch": [8, 16, 16]})]
    in_memory = predict_image(ensemble, image, tta="none", precision="fp32")
    on_disk = predict_image(ensemble, image, tta="none", precision="fp32", memory_budget=0, scratch_dir=tmp_path)
    assert isinstance(on_disk.stored, np.memmap)
    np.testing.assert_array_equal(np.asarray(on_disk.probabilities), in_memory.probabilities)
    assert on_disk.uncertainty_score == pytest.approx(in_memory.uncertainty_score)
    assert not list(tmp_path.iterdir())  # the scratch file is gone once mapped


def test_uncertainty_kinds_are_bounded():
    image = np.random.default_rng(10).random((32, 32))
    ensemble = [(make_model(2, seed=s), {"kind": "binary"}) for s in (1, 2)]
    for kind in ("entropy", "mutual_info", "std"):
        unc = predict_image(ensemble, image, tta="flips", uncertainty=kind).uncertainty
        assert 0 <= unc.min() and unc.max() <= 1 and unc.max() > 0
    with pytest.raises(ValueError, match="Did you mean 'entropy'"):
        predict_image(ensemble, image, uncertainty="entropie")


# ---------------------------------------------------------------- predict_files


def test_predict_files_writes_results_with_pixel_sizes(tmp_path):
    project = make_project(tmp_path / "project")
    paths = write_images(tmp_path / "images", [(40, 36), (32, 32)], pixel_sizes=(0.25, 0.5))
    table = predict_files(project, [tmp_path / "images"], tmp_path / "out", instances=True, tta="none")
    assert set(table["status"]) == {"predicted"} and len(table) == 2
    for stem in ("img0", "img1"):
        for kind in ("prob", "mask", "labels", "uncertainty"):
            result = read_image(tmp_path / "out" / f"{stem}.{kind}.ome.tif")
            assert result.pixel_sizes == (0.25, 0.5)
    mask = tifffile.imread(tmp_path / "out" / "img0.mask.ome.tif")
    assert mask.shape == (40, 36) and set(np.unique(mask)) <= {0, 255}
    assert (tmp_path / "out" / "uncertainty.csv").exists()
    assert all(p.exists() for p in paths)


@pytest.mark.parametrize("dims,kind", [(3, "instances"), (2, "multiclass")])
def test_predict_files_instances_3d_and_multiclass(tmp_path, dims, kind):
    project = tmp_path / "project"
    patch = [8, 16, 16] if dims == 3 else [32, 32]
    meta = {"kind": kind, "patch": patch, "class_names": ["background", "a", "b"]}
    save_model_file(project / "models" / "fold0.pt", make_model(dims, classes=3), meta=meta)
    shape = (6, 32, 24) if dims == 3 else (32, 24)
    write_images(tmp_path / "images", [shape])
    predict_files(project, tmp_path / "images", tmp_path / "out", tta="none", instances=True, min_size=1)
    prob = tifffile.imread(tmp_path / "out" / "img0.prob.ome.tif")
    mask = tifffile.imread(tmp_path / "out" / "img0.mask.ome.tif")
    labels = tifffile.imread(tmp_path / "out" / "img0.labels.ome.tif")
    assert mask.shape == labels.shape == shape
    if kind == "multiclass":
        assert prob.shape == (3,) + shape and set(np.unique(mask)) <= {0, 1, 2}
    else:
        assert prob.shape == shape and set(np.unique(mask)) <= {0, 255}
        assert read_image(tmp_path / "out" / "img0.labels.ome.tif").axes == "CZYX"
        # the interior probability is kept: notebook 07 splits touching objects with it later
        interior = tifffile.imread(tmp_path / "out" / "img0.interior.ome.tif")
        assert interior.shape == shape and interior.dtype == np.uint8 and np.all(interior <= prob)
    assert (tmp_path / "out" / "img0.interior.ome.tif").exists() == (kind == "instances")


def test_predict_files_continues_an_interrupted_run_and_guards_results(tmp_path):
    project = make_project(tmp_path / "project")
    write_images(tmp_path / "images", [(32, 32), (32, 32), (32, 32)])
    out = tmp_path / "out"
    predict_files(project, tmp_path / "images", out, tta="none")
    first = (out / "img0.mask.ome.tif").stat().st_mtime_ns
    (out / "img1.mask.ome.tif").unlink()  # as if stopped while writing img1
    table = predict_files(project, tmp_path / "images", out, tta="none")
    status = dict(zip(table["image"], table["status"]))
    assert status == {"img0": "done earlier", "img1": "predicted", "img2": "done earlier"}
    assert (out / "img0.mask.ome.tif").stat().st_mtime_ns == first
    with pytest.raises(FileExistsError, match="overwrite"):
        predict_files(project, tmp_path / "images", out, tta="flips")
    table = predict_files(project, tmp_path / "images", out, tta="flips", overwrite=True)
    assert set(table["status"]) == {"predicted"}


def test_out_of_fold_predictions_use_the_fold_that_did_not_train(tmp_path):
    project = tmp_path / "project"
    write_images(tmp_path / "images", [(32, 32)] * 4)
    Config(data=DataConfig(images=tmp_path / "images")).save(project)
    folds = [{"train": ["img2", "img3"], "val": ["img0", "img1"]}, {"train": ["img0", "img1"], "val": ["img2", "img3"]}]
    (project / "split.json").write_text(json.dumps({"names": [f"img{i}" for i in range(4)], "folds": folds}))
    for k, value in enumerate((-2.0, 2.0)):  # fold 0 says "background", fold 1 "foreground"
        model = UNet(2, 1, 2, "S")
        nn.init.zeros_(model.head.weight)
        model.head.bias.data = torch.tensor([0.0, value])
        save_model_file(project / "models" / f"fold{k}.pt", model, meta={"kind": "binary", "patch": [32, 32]})
    calls = []
    result = out_of_fold_predictions(project, tta="none", progress=lambda *a: calls.append(a))
    assert sorted(result) == ["img0", "img1", "img2", "img3"] and len(calls) == 4
    assert result["img0"].max() < 0.5 < result["img3"].min()


def test_out_of_fold_predictions_of_a_region_split_are_the_held_out_bands(tmp_path):
    project = tmp_path / "project"
    write_images(tmp_path / "images", [(32, 40)] * 2)
    Config(data=DataConfig(images=tmp_path / "images")).save(project)
    folds = [{"train": ["img0", "img1"], "val": ["img0", "img1"], "region_split": 0.25}]
    (project / "split.json").write_text(json.dumps({"names": ["img0", "img1"], "folds": folds}))
    model = UNet(2, 1, 2, "S")
    save_model_file(project / "models" / "fold0.pt", model, meta={"kind": "binary", "patch": [32, 32]})
    result = out_of_fold_predictions(project, tta="none")
    for found in result.values():  # the band across X (the longest axis), 10 of 40 columns: the rest trained
        assert np.isnan(found[:, :15]).all() and np.isnan(found[:, 25:]).all() and not np.isnan(found[:, 15:25]).any()


# ---------------------------------------------------------------- bad input: clear message, nothing written


def _nothing_written(out: Path):
    assert not out.exists()


def test_2d_model_on_3d_data_and_the_reverse(tmp_path):
    write_images(tmp_path / "stacks", [(12, 32, 32)])
    write_images(tmp_path / "flat", [(32, 32)])
    with pytest.raises(ValueError, match=r"3D stack .* trained on 2D images"):
        predict_files(make_project(tmp_path / "p2"), tmp_path / "stacks", tmp_path / "out")
    with pytest.raises(ValueError, match=r"2D image .* trained on 3D stacks"):
        predict_files(make_project(tmp_path / "p3", dims=3), tmp_path / "flat", tmp_path / "out")
    _nothing_written(tmp_path / "out")


def test_channel_count_mismatch(tmp_path):
    folder = tmp_path / "two"
    folder.mkdir()  # RGB reaches a grey model as grey (test_corrections); two channels are refused
    tifffile.imwrite(folder / "a.tif", np.zeros((2, 32, 32), np.uint8), metadata={"axes": "CYX"})
    with pytest.raises(ValueError, match=r"2 channel\(s\).*1-channel.*--channels 0"):
        predict_files(make_project(tmp_path / "p"), folder, tmp_path / "out")
    _nothing_written(tmp_path / "out")


def test_unknown_tta_or_threshold_suggests_the_right_name(tmp_path):
    project = make_project(tmp_path / "p")
    write_images(tmp_path / "images", [(32, 32)])
    with pytest.raises(ValueError, match=r"tta 'flip' is unknown.*Did you mean 'flips'"):
        predict_files(project, tmp_path / "images", tmp_path / "out", tta="flip")
    with pytest.raises(ValueError, match=r"threshold 'otsuu' is unknown.*Did you mean 'otsu'"):
        predict_files(project, tmp_path / "images", tmp_path / "out", threshold="otsuu")
    _nothing_written(tmp_path / "out")


def test_output_folder_among_the_inputs(tmp_path):
    project = make_project(tmp_path / "p")
    images = tmp_path / "images"
    write_images(images, [(32, 32)])
    with pytest.raises(ValueError, match="also where input images are"):
        predict_files(project, images, images)
    out = images / "pred"
    out.mkdir()
    tifffile.imwrite(out / "img0.prob.ome.tif", np.zeros((32, 32), np.uint8))  # an old result given as input
    with pytest.raises(ValueError, match="would replace input image"):
        predict_files(project, [images / "img0.tif", out / "img0.prob.ome.tif"], out)
    assert sorted(p.name for p in out.iterdir()) == ["img0.prob.ome.tif"]


def test_corrupt_model_file(tmp_path):
    project = make_project(tmp_path / "p")
    (project / "models" / "fold0.pt").write_bytes(b"not a model")
    write_images(tmp_path / "images", [(32, 32)])
    with pytest.raises(ValueError, match="not a readable nbseg model file"):
        predict_files(project, tmp_path / "images", tmp_path / "out")
    _nothing_written(tmp_path / "out")


def test_project_without_models(tmp_path):
    with pytest.raises(FileNotFoundError, match="No trained model"):
        predict_image(tmp_path, np.zeros((8, 8)))


def test_real_dsb2018_image(shared_data, tmp_path):
    source = sorted((shared_data / "dsb2018" / "images").glob("*.tif"))[0]
    crop = read_image(source).data[:1, :64, :64]
    tifffile.imwrite(tmp_path / "nuclei.tif", crop[0])
    table = predict_files(make_project(tmp_path / "p"), tmp_path / "nuclei.tif", tmp_path / "out", tta="none",
                          threshold="otsu", instances=True)
    assert table.loc[0, "status"] == "predicted" and 0 <= table.loc[0, "threshold"] <= 1
    assert tifffile.imread(tmp_path / "out" / "nuclei.labels.ome.tif").shape == (64, 64)


def test_slice_models_skip_z_flips():
    assert len(tta_variants("flips", 3)) == 4 and len(tta_variants("flips", 3, planar=True)) == 3
    assert all(0 not in v.flips for v in tta_variants("all", 3, planar=True))
    assert len(tta_variants("all", 3, planar=True)) == 8


def test_instances_keep_the_objects_the_training_plan_allows(tmp_path):
    """An untrained model's mask is speckled: the plan's min_size (from the labelled objects) drops the small
    pieces that the default keeps, and what the user gives wins over the plan."""
    write_images(tmp_path / "images", [(64, 64)])
    sizes = {}
    for name, plan, given in (("default", None, None), ("planned", {"min_size": 40}, None),
                              ("given", {"min_size": 40}, 10)):
        project = make_project(tmp_path / name, plan=plan)
        predict_files(project, tmp_path / "images", tmp_path / name / "out", tta="none", threshold="otsu",
                      instances=True, min_size=given)
        labels = tifffile.imread(tmp_path / name / "out" / "img0.labels.ome.tif")
        sizes[name] = np.bincount(labels.ravel())[1:]
        record = json.loads((tmp_path / name / "out" / "nbseg-predict.json").read_text())
        assert record["settings"]["min_size"] == given  # None: the plan's, as the models say
    assert sizes["default"].min() >= 10 and sizes["planned"].min() >= 40
    assert np.array_equal(sizes["given"], sizes["default"])
    assert (sizes["default"] < 40).any(), "the test needs objects between the two bounds"
