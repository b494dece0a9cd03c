"""Prediction at the speed of the network: batches of tiles and TTA variants through one forward pass, blended
in place, give what one tile at a time gives; the batch grows with the memory bound and stays within it."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from model_projects import make_model
from nbseg.model.tiling import axis_placements, gaussian_profile, outer, sliding_window
from nbseg.predict.ensemble import ensemble_info
from nbseg.predict.image import _tile_predictor, as_image, model_bounds, predict_image
from nbseg.predict.inference import inference_copy
from nbseg.predict.memory import plan_memory, plan_prediction, prediction_parts, steps
from nbseg.predict.options import PredictOptions


def _blobs(shape, seed=0) -> np.ndarray:
    """Bright round objects on a dark, noisy background (uint8): a prediction with confident and
    doubtful parts."""
    rng = np.random.default_rng(seed)
    grid = np.indices(shape).astype(np.float32)
    image = np.zeros(shape, np.float32)
    for _ in range(8):
        centre = [rng.uniform(0, s) for s in shape]
        image += np.exp(-sum((g - c) ** 2 for g, c in zip(grid, centre)) / (2 * (min(shape) / 6) ** 2))
    image += rng.normal(0, 0.05, shape)
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def _reference_tile(ensemble, bounds, variants):
    """The per-tile function written out plainly: each model (as trained, not its inference copy) on each
    variant of one tile, turned back, averaged; then classes 1.. and the entropy, as ``TilePredictor`` gives."""
    def predict(tile):
        passes = []
        with torch.no_grad():
            for (model, _), (low, span) in zip(ensemble, bounds):
                shape = (1, -1) + (1,) * (tile.ndim - 2)
                low, span = (torch.as_tensor(v, dtype=torch.float32).view(shape) for v in (low, span))
                x = model.align((tile - low) / span)
                passes += [v.inverse(torch.softmax(model(v.forward(x), aligned=True), dim=1)) for v in variants]
        mean = torch.stack(passes).mean(dim=0)
        entropy = -(mean * mean.clamp(min=1e-12).log()).sum(dim=1) / np.log(mean.shape[1])
        return torch.cat([mean[:, 1:], entropy[:, None]], dim=1)
    return predict


def _one_tile_at_a_time(image, predict, tile, n_out, overlap=0.5) -> np.ndarray:
    """The reference: every tile alone through ``predict``, its output times the Gaussian importance and the
    importance itself summed into whole-image arrays, then divided."""
    spatial = image.shape[1:]
    grids = [axis_placements(s, t, overlap) for s, t in zip(spatial, tile)]
    importance = outer([gaussian_profile(t) for t in tile])
    value, weight = np.zeros((n_out,) + spatial), np.zeros(spatial)
    for places in itertools.product(*grids):
        region = np.asarray(image[(slice(None),) + tuple(slice(p.start, p.stop) for p in places)], np.float32)
        pads = [(p.offset, t - p.offset - (p.stop - p.start)) for p, t in zip(places, tile)]
        region = np.pad(region, [(0, 0)] + pads, mode="reflect")
        pred = predict(torch.from_numpy(region[np.newaxis]))[0].numpy()
        crop = tuple(slice(p.offset, p.offset + p.stop - p.start) for p in places)
        where = tuple(slice(p.start, p.stop) for p in places)
        value[(slice(None),) + where] += pred[(slice(None),) + crop] * importance[crop]
        weight[where] += importance[crop]
    return (value / weight).astype(np.float32)


def _dice(a, b) -> float:
    return 2 * np.sum(a & b) / max(1, a.sum() + b.sum())


CASES = [(2, (150, 170), (64, 96), "none"), (2, (150, 170), (64, 96), "flips"),
         (2, (150, 170), (64, 96), "all"),  # quarter turns of a non-square tile: two shapes per call
         (3, (20, 70, 60), (8, 32, 32), "none"),
         # the longest case (~30 s): make test-release runs it, keeping make test under 10 minutes
         pytest.param(3, (20, 70, 60), (8, 32, 32), "flips", marks=pytest.mark.release)]


@pytest.mark.parametrize("dims, shape, tile, tta", CASES)
def test_batched_prediction_equals_one_tile_at_a_time(dims, shape, tile, tta, tmp_path, one_thread):
    ensemble = [(make_model(dims, seed=k), {"kind": "binary", "patch": list(tile), "percentiles": [1.0 + k, 99.8]})
                for k in range(2)]
    info = ensemble_info(ensemble)
    image = as_image(_blobs(shape), info)
    options = PredictOptions(tta=tta, device="cpu", precision="fp32", tile=tile, batch_size=5)
    batched = _tile_predictor(ensemble, info, image, options)
    reference = _one_tile_at_a_time(image.data, _reference_tile(ensemble, model_bounds(ensemble, image), batched.variants),
                                    tile, info.n_classes)
    batched.images = None  # every variant of every tile of a call in one forward pass
    results = {
        "one pass per call": sliding_window(image.data, batched, tile=tile, n_out=info.n_classes, batch_size=5),
        "predict_image": np.asarray(predict_image(ensemble, image, options, dtype=np.float32).stored),
        "on disk": np.asarray(predict_image(ensemble, image, options, dtype=np.float32, memory_budget=0,
                                            scratch_dir=tmp_path).stored),
    }
    level = np.median(reference[0])  # an untrained model's probabilities sit near one value: half above it
    for name, result in results.items():
        assert np.abs(result - reference).max() < 1e-4, name
        assert _dice(result[0] > level, reference[0] > level) >= 0.999, name


def test_a_real_model_batched_equals_one_tile_at_a_time(one_thread):
    from nbseg.data import sample
    from nbseg.predict.ensemble import load_ensemble

    import tifffile

    ensemble = load_ensemble("nuclei")
    info = ensemble_info(ensemble)
    image = as_image(tifffile.imread(sorted(sample("nuclei2d")["images"].glob("*.tif"))[0])[:200, :230], info)
    options = PredictOptions(tta="flips", device="cpu", precision="fp32", tile=(96, 96))
    predictor = _tile_predictor(ensemble, info, image, options)
    reference = _one_tile_at_a_time(image.data, _reference_tile(ensemble, model_bounds(ensemble, image),
                                                                predictor.variants), (96, 96), info.n_classes)
    result = np.asarray(predict_image(ensemble, image, options, dtype=np.float32).stored)
    assert np.abs(result - reference).max() < 1e-4
    fg, fg_ref = result[:-1].sum(0) > 0.5, reference[:-1].sum(0) > 0.5
    assert _dice(fg, fg_ref) >= 0.999 and fg_ref.mean() > 0.05


SHAPE = dict(spatial=(64, 512, 512), in_channels=1, n_out=2, tile=(32, 128, 128), batch_size=4, width=16,
             image_itemsize=1)


def test_the_steps_go_from_every_variant_of_the_batch_to_one_image():
    assert steps(4, 3) == [(4, 12), (2, 6), (1, 3), (1, 1)]
    assert steps(4, 1) == [(4, 4), (2, 2), (1, 1)]
    assert steps(1, 8) == [(1, 8), (1, 4), (1, 2), (1, 1)]


def test_the_forward_pass_grows_with_the_bound_and_stays_within_it():
    least = prediction_parts(**{**SHAPE, "batch_size": 1}, images=1)  # one image per pass
    bounds = np.geomspace(1.0, 20.0, 40) * max(sum(p.values()) for p in least.values())
    plans = [plan_memory(int(b), baseline=0, variants=4, **SHAPE) for b in bounds]
    images = [p.images for p in plans]
    assert images == sorted(images) and images[0] == 1 and images[-1] == 16  # batch 4 x 4 variants at the widest
    assert len(set(images)) == 5
    assert all(p.peak <= b for p, b in zip(plans, bounds))
    wide = plan_memory("64GB", baseline=0, variants=4, **SHAPE)
    assert (wide.batch_size, wide.images) == (4, 16)
    on_gpu = plan_memory("64GB", baseline=0, variants=4, cpu=False, **SHAPE)  # one image per tile per pass
    assert (on_gpu.batch_size, on_gpu.images) == (4, 4)


def test_a_bound_never_makes_the_pass_larger_than_an_unbounded_run():
    """predict_image caps the pass at forward_images' (what runs without a bound): a bound lowers peak memory,
    it never raises it."""
    capped = plan_memory("64GB", baseline=0, variants=4, max_images=1, **SHAPE)
    assert capped.images == 1 and capped.peak < plan_memory("64GB", baseline=0, variants=4, **SHAPE).peak
    assert plan_memory("64GB", baseline=0, variants=4, max_images=6, **SHAPE).images == 6


def test_a_plan_with_a_measured_network_grows_with_the_bound():
    network = lambda images: (50 + 30 * (images - 1)) * 10**6  # noqa: E731 - bytes for passes of that many images
    least = prediction_parts(**{**SHAPE, "batch_size": 1}, images=1, network=network)
    bounds = max(sum(p.values()) for p in least.values()) + np.arange(0, 40) * 10 * 10**6
    plans = [plan_memory(int(b), baseline=0, variants=3, network=network, **SHAPE) for b in bounds]
    images = [p.images for p in plans]
    assert images == sorted(images) and images[0] < 6 and images[-1] == 12 and len(set(images)) >= 3
    for plan, bound in zip(plans, bounds):
        assert plan.peak <= bound and plan.parts["tiling"]["network activations"] == network(plan.images)


def test_the_planned_pass_is_what_the_prediction_runs(one_thread):
    from nbseg.predict.memory import current_memory

    ensemble = [(make_model(2), {"kind": "binary", "patch": [64, 64]})]
    info = ensemble_info(ensemble)
    image = as_image(_blobs((256, 256)), info)
    options = PredictOptions(tta="flips", device="cpu", precision="fp32", batch_size=4,
                             max_memory=current_memory() + 2 * 10**9)
    predictor = _tile_predictor(ensemble, info, image, options)
    plan = plan_prediction(options, ensemble, info, image, (256, 256), (64, 64), predictor, np.float16)
    # 2 GB would hold every variant of the batch (12), but a bound never passes more than an unbounded run (4)
    assert (plan.batch_size, plan.images) == (4, 4) and plan.peak <= options.max_memory
    assert predictor.images is None  # the measurement left the predictor as it was
    passes = []
    predictor.images = plan.images
    predictor.nets[0].register_forward_pre_hook(lambda module, args: passes.append(args[0].shape[0]))
    sliding_window(image.data, predictor, tile=(64, 64), n_out=2, batch_size=plan.batch_size)
    assert max(passes) == 4 and sum(passes) == 49 * 3  # 49 tiles x 3 variants, never more than 4 a pass


def test_the_inference_copy_runs_3d_convolutions_on_onednn_with_its_hooks(one_thread):
    model = make_model(3)
    seen = []
    model.encoders[-1].register_forward_hook(lambda module, args, out: seen.append(float(out.mean())))
    fast = inference_copy(model, torch.device("cpu"))
    assert sum(type(m).__name__ == "OneDNNConv3d" for m in fast.modules()) == 14  # every 3x3x3 layer
    x = torch.rand(1, 1, 16, 32, 32)
    with torch.inference_mode():
        expected, got = model(x), fast(x.contiguous(memory_format=torch.channels_last_3d))
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    assert len(seen) == 2 and abs(seen[0] - seen[1]) < 1e-4  # the hook came along with the copy
