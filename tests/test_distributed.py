"""Prediction on a dask.distributed cluster: two worker processes give what one process gives, objects
are stitched across block faces, and bad input is refused before anything is written."""
from __future__ import annotations

import socket
import sys

import numpy as np
import pytest
import tifffile
import zarr
from skimage.measure import label

from nbseg.io.images import read_image, write_ome_tiff
from nbseg.predict.cluster.block_size import block_peak, choose_block, fit_block
from nbseg.predict.cluster.blocks import Block, plan_blocks
from nbseg.predict.cluster import ClusterError, connect, predict_on_cluster, slurm_settings
from nbseg.predict.cluster.distributed import _stitch
from nbseg.predict.files import predict_files
from nbseg.predict.image import predict_image
from nbseg.predict.outputs import to_uint8

from model_projects import make_project

LUCCHI = "lucchi-pp/images/train.tif"


@pytest.fixture(scope="module")
def client():
    """One local cluster of two single-threaded worker processes for the module (starting one takes seconds)."""
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        yield client


def _lucchi(shared_data, tmp_path, region) -> object:
    pages = tifffile.imread(shared_data / LUCCHI, key=range(region[0].start, region[0].stop))
    crop = pages.reshape((-1,) + pages.shape[-2:])[:, region[1], region[2]]
    crop = crop[0] if crop.shape[0] == 1 else crop
    path = tmp_path / "in" / "crop.tif"
    write_ome_tiff(path, crop, axes="ZYX"[-crop.ndim:], pixel_sizes=(0.005,) * crop.ndim)
    return path


def _same_objects(a, b) -> bool:
    """True when two label images split the pixels into the same objects (ids may differ)."""
    if not np.array_equal(a > 0, b > 0):
        return False
    pairs = np.unique(np.stack([a[a > 0], b[b > 0]]), axis=1)
    return len(pairs[0]) == len(np.unique(pairs[0])) == len(np.unique(pairs[1]))


@pytest.mark.slow  # a dask cluster of two worker processes
def test_2d_blocks_on_two_workers_match_one_process(shared_data, tmp_path, client):
    path = _lucchi(shared_data, tmp_path, (slice(80, 81), slice(100, 212), slice(200, 300)))
    project = make_project(tmp_path / "project", dims=2)
    steps = []
    table = predict_on_cluster(project, path, tmp_path / "out", cluster=client, block=(40, 40), tta="flips",
                               precision="fp32", progress=lambda done, total, name: steps.append((done, total)))
    assert table.loc[0, "blocks"] == 9 and steps[-1] == (9, 9)
    prob = read_image(tmp_path / "out" / "crop.prob.ome.zarr")
    reference = predict_image(project, path, tta="flips", precision="fp32", dtype=np.float32).foreground
    assert prob.data.shape[1:] == reference.shape and prob.pixel_sizes == pytest.approx((0.005, 0.005))
    assert np.abs(prob.data[0] - reference).max() <= 1e-4


@pytest.mark.slow  # a dask cluster of two worker processes
def test_cli_predicts_on_a_running_scheduler(tmp_path, capsys, client):
    from nbseg.cli.main import main

    project = make_project(tmp_path / "project", dims=2)
    write_ome_tiff(tmp_path / "in" / "a.tif", np.random.default_rng(0).random((80, 72), np.float32), axes="YX")
    code = main(["predict", str(project), str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--cluster",
                 client.scheduler.address, "--block", "20,40", "--tta", "none", "--instances", "--threshold", "0.45"])
    captured = capsys.readouterr()
    assert "block [20, 40] rounded up to [32, 40]: a block holds at least one tile" in captured.out
    assert code == 0 and "[6/6] a block" in captured.err, "progress over the 3 x 2 blocks"
    assert "Stitching across block faces made" in captured.out
    assert read_image(tmp_path / "out" / "a.labels.ome.zarr").data.shape == (1, 80, 72)
    assert main(["predict", str(project), str(tmp_path / "in"), "--output", str(tmp_path / "x"),
                 "--block", "40,40"]) == 2
    assert "give --cluster too" in capsys.readouterr().err


@pytest.mark.slow  # a dask cluster of two worker processes
def test_3d_blocks_on_two_workers_match_one_process(shared_data, tmp_path, client):
    path = _lucchi(shared_data, tmp_path, (slice(40, 60), slice(300, 380), slice(400, 470)))
    project = make_project(tmp_path / "project", dims=3)
    table = predict_on_cluster(project, path, tmp_path / "out", cluster=client, block=(16, 48, 48), tta="none",
                               precision="fp32")  # "auto" may pick bf16 where it measures faster
    assert table.loc[0, "blocks"] == 2 * 2 * 2
    prob = read_image(tmp_path / "out" / "crop.prob.ome.zarr").data[0]
    reference = predict_image(project, path, tta="none", precision="fp32", dtype=np.float32).foreground
    assert np.abs(prob - reference).max() <= 1e-4


@pytest.mark.slow  # a dask cluster of two worker processes
def test_half_scale_model_in_blocks_matches_one_process(shared_data, tmp_path, client):
    # Lucchi++'s plan predicts at half scale in-plane: each block is resampled (with its halo), tiled there
    # and restored, as the whole image is
    path = _lucchi(shared_data, tmp_path, (slice(40, 56), slice(300, 428), slice(400, 520)))
    project = make_project(tmp_path / "project", dims=3, plan={"scale": [1.0, 0.5, 0.5]})
    reference = predict_image(project, path, tta="none", precision="fp32", dtype=np.float32).foreground
    threshold = float(np.quantile(reference, 0.6))  # an untrained model: a threshold that leaves both classes
    said = []  # the README's case: a block of the models' tile in its own pixels is half a tile of the input's
    table = predict_on_cluster(project, path, tmp_path / "out", cluster=client, block=(8, 32, 32), tta="none",
                               precision="fp32", threshold=threshold, report=said.append)
    assert said == ["block [8, 32, 32] rounded up to [8, 64, 64]: a block holds at least one tile of the model "
                    "([8, 32, 32] at working scale 1x0.5x0.5, [8, 64, 64] pixels of the image)."]
    assert table.loc[0, "blocks"] == 2 * 2 * 2
    prob = read_image(tmp_path / "out" / "crop.prob.ome.zarr")
    mask = read_image(tmp_path / "out" / "crop.mask.ome.zarr").data[0] > 0
    assert prob.data.shape[1:] == reference.shape == (16, 128, 120)
    assert prob.pixel_sizes == pytest.approx((0.005,) * 3)
    assert np.abs(prob.data[0] - reference).max() <= 1e-4
    whole = to_uint8(reference) > threshold * 255
    assert whole.any() and (mask & whole).sum() / (mask | whole).sum() >= 0.995


@pytest.mark.slow  # a dask cluster of two worker processes
def test_without_a_block_one_is_chosen_from_the_memory_bound(tmp_path, client, monkeypatch):
    import re

    import nbseg.predict.cluster.block_size as block_size
    from nbseg.predict.cluster.connect import worker_memory

    limits = [w["memory_limit"] for w in client.scheduler_info()["workers"].values()]
    assert worker_memory(client)[0] == min(limits) and worker_memory("tcp://head:8786")[0] is None
    baseline = 1_500_000_000  # what a worker holds before predicting, taken above what these workers hold
    monkeypatch.setattr(block_size, "current_memory", lambda: baseline)  # this process's planning only
    project = make_project(tmp_path / "project", dims=2)
    path = tmp_path / "in" / "a.tif"
    write_ome_tiff(path, np.random.default_rng(1).random((160, 144), np.float32), axes="YX")
    settings = dict(in_channels=1, n_out=2, width=16, batch_size=4, baseline=baseline)
    whole, tile = (block_peak(b, (160, 144), (32, 32), None, **settings) for b in ((160, 144), (32, 32)))
    said = []
    table = predict_on_cluster(project, path, tmp_path / "out", cluster=client, tta="none", precision="fp32",
                               max_memory=(whole + tile) // 2, report=said.append)
    assert table.loc[0, "blocks"] > 1 and len(said) == 1 and said[0].startswith("a: cut into blocks of ")
    assert "--max-memory" in said[0]
    size = [int(v) for v in re.search(r"blocks of \[(\d+), (\d+)\]", said[0]).groups()]
    assert all(v % 32 == 0 for v in size) and size != [32, 32], "whole tiles, more than one"
    prob = read_image(tmp_path / "out" / "a.prob.ome.zarr").data[0]
    reference = predict_image(project, path, tta="none", precision="fp32", dtype=np.float32).foreground
    assert np.abs(prob - reference).max() <= 1e-4
    predict_on_cluster(project, path, tmp_path / "whole", cluster=client, tta="none", max_memory=whole + 10**6,
                       report=said.append)
    assert (tmp_path / "whole" / "a.prob.ome.tif").exists() and len(said) == 1, "a bound that holds it: whole"


@pytest.mark.slow  # a dask cluster of two worker processes
def test_instances_are_stitched_across_block_faces(shared_data, tmp_path, client):
    path = _lucchi(shared_data, tmp_path, (slice(80, 81), slice(200, 328), slice(300, 428)))
    project = make_project(tmp_path / "project", dims=2)
    reference = predict_image(project, path, tta="none", precision="fp32", dtype=np.float32).foreground
    threshold = float(np.quantile(reference, 0.6))  # an untrained model: a threshold that leaves blobs of both
    settings = dict(tta="none", instances=True, threshold=threshold, min_size=5, format="zarr", precision="fp32")
    table = predict_on_cluster(project, path, tmp_path / "blocks", cluster=client, block=(32, 32), **settings)
    one = predict_files(project, path, tmp_path / "one", **settings)
    blocked = read_image(tmp_path / "blocks" / "crop.labels.ome.zarr").data[0]
    whole = read_image(tmp_path / "one" / "crop.labels.ome.zarr").data[0]
    assert table.loc[0, "merges"] > 0, "some objects straddle the faces of 32 x 32 blocks"
    assert (table.loc[0, "objects"], blocked.max()) == (one.loc[0, "objects"], whole.max())
    # holes are filled within each block (a hole cut by a face stays open): compare the objects' own pixels
    both = (blocked > 0) & (whole > 0)
    assert both.sum() >= 0.98 * (whole > 0).sum()
    assert _same_objects(np.where(both, blocked, 0), np.where(both, whole, 0))


@pytest.mark.slow  # a dask cluster of two worker processes
def test_synthetic_objects_across_faces_get_one_id_each(tmp_path, client):
    mask = np.zeros((40, 40), bool)
    mask[5:35, 18:22] = True  # a bar across both faces: 4 pieces
    mask[2:4, 2:38] = mask[2:30, 2:4] = mask[2:30, 36:38] = True  # a U: 4 pieces, two of them joined only via the top
    mask[12:28, 8] = True  # 16 pixels: kept as a whole, though 8 on each side of a face
    mask[10:20, 30] = mask[20:30, 31] = True  # two runs that touch only diagonally across a face
    mask[30:33, 24:27] = True  # 9 pixels inside one block: below min_size
    blocks = plan_blocks((40, 40), (20, 20), (20, 20), 0.0)
    array = zarr.create_array(str(tmp_path / "labels.zarr"), shape=(40, 40), chunks=(20, 20), dtype="uint32")
    stats = {}
    for b in blocks:
        local = label(mask[b.out])
        array[b.out] = local
        stats[b.index] = {"counts": np.bincount(local.ravel())}
    objects, merges = _stitch(client, {"blocks": blocks}, str(tmp_path / "labels.zarr"), stats, min_size=15)
    stitched = np.asarray(array[:])
    expected = label(mask)
    expected[expected == expected[31, 25]] = 0
    assert objects == 4 and sorted(np.unique(stitched)) == [0, 1, 2, 3, 4]
    assert _same_objects(stitched, expected)
    assert merges == 3 + 3 + 1 + 1


def test_touching_objects_split_by_a_watershed_stay_apart():
    from nbseg.predict.cluster.blocks import face_pairs

    labels = np.zeros((8, 8), np.uint32)
    labels[0:4, 2:6], labels[4:8, 2:5] = 1, 1  # one object cut by the face at row 4
    labels[4:8, 5:8] = 2  # another, touching the first one's upper half at a corner and one pixel of edge
    blocks = plan_blocks((8, 8), (4, 8), (4, 8), 0.0)
    offsets = np.array([[0], [1]])
    every = face_pairs(labels, blocks[0], (4, 8), offsets)
    assert sorted(map(tuple, every[:, :2])) == [(1, 2), (1, 3)]
    assert [tuple(p[:2]) for p in face_pairs(labels, blocks[0], (4, 8), offsets, mutual=True)] == [(1, 2)]


def test_blocks_cover_the_tile_grid():
    blocks = plan_blocks((100, 70), (64, 64), (32, 32), 0.5)
    assert [b.index for b in blocks] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    last = blocks[-1]
    assert last.out == (slice(64, 100), slice(64, 70)) and last.src == (slice(48, 100), slice(38, 70))
    assert Block((0,), (slice(10, 20),), (slice(4, 30),)).crop == (slice(6, 16),)


def test_a_given_block_is_rounded_up_to_what_the_models_predict():
    assert fit_block((40, 40), (32, 32), (8, 8)) == ((40, 40), None)
    size, note = fit_block((16, 64), (32, 32), (8, 8))
    assert size == (32, 64) and note == ("block [16, 64] rounded up to [32, 64]: a block holds at least one tile "
                                         "of the model ([32, 32]).")
    size, note = fit_block((64, 100), (32, 32), (8, 8))
    assert size == (64, 104) and "each side a multiple of [8, 8] (what the U-Net pools)" in note
    # Lucchi++'s plan (scale 0.5 in-plane, 256 px tiles): the README's --block 32,256,256, in the input's pixels
    size, note = fit_block((32, 256, 256), (32, 256, 256), (1, 16, 16), factors=(1.0, 0.5, 0.5))
    assert size == (32, 512, 512) and "[32, 512, 512] pixels of the image" in note and "multiple" not in note
    assert fit_block((32, 600, 600), (32, 256, 256), (1, 16, 16), factors=(1.0, 0.5, 0.5))[1] is None
    with pytest.raises(ValueError, match="2 spatial axes"):
        fit_block((8, 64, 64), (32, 32), (8, 8))


def test_blocks_chosen_from_the_tile_and_a_memory_bound():
    def fits(block):
        return np.prod(block) <= 300 * 300

    assert choose_block((1000, 1000), (64, 64), None, fits) == (320, 256)  # whole tiles, grown side by side
    assert choose_block((250, 290), (64, 64), None, fits) is None  # the whole image fits
    assert choose_block((1000, 1000), (512, 512), None, fits) == (512, 512)  # one tile is the least
    assert choose_block((8, 1000, 1000), (8, 64, 64), (1.0, 0.5, 0.5), lambda b: np.prod(b) <= 8 * 300 * 300) == \
        (8, 256, 256)  # tiles of 128 input pixels
    settings = dict(in_channels=1, n_out=2, width=16, batch_size=4)
    whole, half = (block_peak(b, (1000, 1000), (64, 64), None, **settings) for b in ((1000, 1000), (500, 500)))
    assert whole > half and block_peak((500, 500), (1000, 1000), (64, 64), None, **settings, baseline=10**9) == \
        half + 10**9


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_is_named_and_nothing_written(tmp_path):
    project = make_project(tmp_path / "project", dims=2)
    write_ome_tiff(tmp_path / "in" / "a.tif", np.ones((64, 64), np.uint8), axes="YX")
    address = f"tcp://127.0.0.1:{_free_port()}"
    with pytest.raises(ClusterError, match=f"No dask scheduler answered at {address} within 1 s"):
        predict_on_cluster(project, tmp_path / "in", tmp_path / "out", cluster=address, timeout=1)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # a dask cluster of two worker processes
def test_bad_block_and_settings_refused_before_writing(tmp_path, client):
    project = make_project(tmp_path / "project", dims=2)
    write_ome_tiff(tmp_path / "in" / "a.tif", np.random.default_rng(0).random((96, 96)), axes="YX")
    for settings, message in [(dict(block=(8, 32, 32)), "2 spatial axes"),
                              (dict(block=(32, 32), threshold="otsu"), "otsu"),
                              (dict(block=(32, 32), format="tiff"), "--format zarr")]:
        with pytest.raises(ValueError, match=message):
            predict_on_cluster(project, tmp_path / "in", tmp_path / "out", cluster=client, **settings)
        assert not (tmp_path / "out").exists()
    with pytest.raises(ClusterError, match="local:N"):
        with connect("laptop"):
            pass
    with pytest.raises(ClusterError, match="number of worker processes, e.g. local:2"):
        with connect("local:two"):
            pass


@pytest.mark.slow  # a dask cluster of two worker processes
def test_existing_results_refused_unless_overwrite(tmp_path, client):
    project = make_project(tmp_path / "project", dims=2)
    write_ome_tiff(tmp_path / "in" / "a.tif", np.random.default_rng(0).random((72, 72)), axes="YX")
    predict_on_cluster(project, tmp_path / "in", tmp_path / "out", cluster=client, block=(40, 40), tta="none")
    before = (tmp_path / "out" / "a.prob.ome.zarr" / "zarr.json").stat().st_mtime_ns
    with pytest.raises(FileExistsError, match="overwrite"):
        predict_on_cluster(project, tmp_path / "in", tmp_path / "out", cluster=client, block=(40, 40), tta="flips")
    assert (tmp_path / "out" / "a.prob.ome.zarr" / "zarr.json").stat().st_mtime_ns == before
    table = predict_on_cluster(project, tmp_path / "in", tmp_path / "out", cluster=client, block=(40, 40),
                               tta="flips", overwrite=True)
    assert table.loc[0, "status"] == "predicted"


@pytest.mark.slow  # a dask cluster of two worker processes
def test_folder_of_images_mapped_over_workers(tmp_path, client):
    project = make_project(tmp_path / "project", dims=2)
    rng = np.random.default_rng(3)
    for name in "abc":
        write_ome_tiff(tmp_path / "in" / f"{name}.tif", rng.random((48, 56)).astype(np.float32), axes="YX")
    table = predict_on_cluster(project, tmp_path / "in", tmp_path / "out", cluster=client, tta="none")
    predict_files(project, tmp_path / "in", tmp_path / "one", tta="none")
    assert sorted(table["image"]) == ["a", "b", "c"] and set(table["status"]) == {"predicted"}
    for name in "abc":
        ours = tifffile.imread(tmp_path / "out" / f"{name}.prob.ome.tif").astype(int)
        theirs = tifffile.imread(tmp_path / "one" / f"{name}.prob.ome.tif").astype(int)
        assert np.abs(ours - theirs).max() <= 1


def test_slurm_job_from_the_project_settings(tmp_path, monkeypatch):
    from nbseg.config import Config

    Config(data={"images": "raw"}, cluster={"queue": "gpu", "cores": 8, "memory": "32GB", "walltime": "02:00:00",
                                            "gpus": 1, "jobs": 3}).save(tmp_path)
    settings = slurm_settings(tmp_path)
    assert settings["n_workers"] == 3 and settings["job_extra_directives"] == ["--gres=gpu:1"]
    jobqueue = pytest.importorskip("dask_jobqueue")
    cluster = jobqueue.SLURMCluster(**{**settings, "n_workers": 0})  # no sbatch here: only the job script
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    for line in ("#SBATCH -p gpu", "#SBATCH --cpus-per-task=8", "#SBATCH -t 02:00:00", "#SBATCH --gres=gpu:1"):
        assert line in script
    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)  # as when the extra is not installed
    with pytest.raises(ClusterError, match=r"pip install 'nbseg\[cluster\]'"):
        with connect("slurm", project=tmp_path):
            pass


@pytest.mark.slow  # a dask cluster of two worker processes
def test_a_block_that_keeps_failing_is_named(tmp_path, client):
    from nbseg.io.zarr import write_ome_zarr

    project = make_project(tmp_path / "project", dims=2)
    image = write_ome_zarr(tmp_path / "in" / "bad.ome.zarr", np.random.default_rng(0).random((96, 96), np.float32),
                           axes="YX", chunks=(48, 48))
    (image / "s0" / "c" / "1" / "1").write_bytes(b"not a chunk")  # the reading of it fails on every try
    with pytest.raises(ClusterError, match=r"(block \[\d, \d\] of bad \(pixels \d+:\d+, \d+:\d+\)|bad) failed 3 "
                                           r"times; the last error"):
        predict_on_cluster(project, image, tmp_path / "out", cluster=client, block=(48, 48), tta="none")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["nbseg-predict.json"], "no result, no scratch"


@pytest.mark.slow  # a dask cluster of two worker processes
def test_a_killed_workers_blocks_are_redone(shared_data, tmp_path):
    # A worker process killed mid-run (SIGKILL, as the out-of-memory killer or a lost node does): the scheduler
    # gives its blocks to the other worker, the nanny starts a new one, and the result is still whole and exact
    import os
    import signal

    from dask.distributed import Client, LocalCluster

    path = _lucchi(shared_data, tmp_path, (slice(80, 81), slice(100, 340), slice(200, 440)))
    project = make_project(tmp_path / "project", dims=2)
    killed = {}

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        pids = client.run(os.getpid)

        def kill_one_busy_worker(done, total, name):
            if killed:
                return
            busy = {address: keys for address, keys in client.processing().items() if keys}
            if busy:  # a worker with blocks in hand; they must be done again elsewhere
                address, keys = next(iter(busy.items()))
                killed.update(address=address, blocks=len(keys), at=done)
                os.kill(pids[address], signal.SIGKILL)

        table = predict_on_cluster(project, path, tmp_path / "out", cluster=client, block=(40, 40), tta="none",
                                   precision="fp32", progress=kill_one_busy_worker)
        assert killed and killed["at"] < 36, "a worker was killed while it held blocks"
        assert killed["address"] not in client.run(os.getpid), "the killed worker is gone"
    assert table.loc[0, "blocks"] == 36
    prob = read_image(tmp_path / "out" / "crop.prob.ome.zarr").data[0]
    reference = predict_image(project, path, tta="none", precision="fp32", dtype=np.float32).foreground
    assert np.abs(prob - reference).max() <= 1e-4, "every block written, none lost with the worker"
