"""Segmentation on denoised images (nbseg.denoise.segment): `nbseg train --denoise` carries the denoiser into the
project and trains on the denoised images (cached, reused by --resume, remade for another denoiser), `nbseg predict`
applies it, notebooks 04-06 do as the commands do, exports refuse such a project, and `nbseg denoise predict
--cluster` gives what one process gives."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from nbseg.cli.main import main
from nbseg.io.images import read_image, write_ome_tiff

TRAIN = ["--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2", "--patch", "32,32", "--device", "cpu"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread):
    yield


def _noisy_blobs(root, n=3, seed=0):
    """``n`` noisy 64x64 images of round objects (Poisson and Gaussian noise, 0.5 µm pixels) and their masks."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    yy, xx = np.mgrid[:64, :64]
    for i in range(n):
        mask = np.zeros((64, 64), np.uint16)
        for k, (cy, cx) in enumerate(rng.integers(10, 54, (4, 2)), 1):
            mask[(yy - cy) ** 2 + (xx - cx) ** 2 < 36] = k
        clean = np.where(mask > 0, 0.8, 0.1)
        noisy = (rng.poisson(clean * 20) / 20 + rng.normal(0, 0.05, clean.shape)) * 1000 + 100
        write_ome_tiff(root / "images" / f"n{i}.ome.tif", noisy.astype(np.float32), axes="YX", pixel_sizes=(0.5, 0.5))
        tifffile.imwrite(root / "masks" / f"n{i}.tif", mask)
    return root / "images", root / "masks"


def _denoiser(images, project, seed=0):
    assert main(["denoise", "train", "--images", str(images), "--project", str(project), "--seed", str(seed),
                 *TRAIN]) == 0
    return project


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Noisy images, a denoiser, and a segmentation project trained with --denoise."""
    root = tmp_path_factory.mktemp("denoise_segment")
    images, masks = _noisy_blobs(root)
    dn = _denoiser(images, root / "dn")
    seg = root / "seg"
    assert main(["train", "--images", str(images), "--masks", str(masks), "--project", str(seg), "--denoise", str(dn),
                 "--seed", "0", *TRAIN[:1], "6", *TRAIN[2:3], "8", *TRAIN[4:]]) == 0  # a model whose output varies
    return {"root": root, "images": images, "masks": masks, "dn": dn, "seg": seg}


def _probabilities(folder, stem="n0"):
    return read_image(folder / f"{stem}.prob.ome.tif").data.astype(float)


def test_train_with_denoise_carries_the_denoiser_and_trains_on_denoised_images(trained):
    from nbseg.data import load_dataset
    from nbseg.data.fingerprint import fingerprint
    from nbseg.config import DataConfig
    from nbseg.denoise import denoise_image

    seg, dn = trained["seg"], trained["dn"]
    copy = seg / "denoiser" / "models" / "fold0.pt"
    assert copy.read_bytes() == (dn / "models" / "fold0.pt").read_bytes()
    assert (seg / "denoiser" / "config.yaml").exists()
    record = json.loads((seg / "denoiser" / "source.json").read_text())
    assert record["source"] == str(dn.resolve()) and len(record["sha256"]) == 64
    for i in range(3):  # the cache: the raw images denoised, pixel sizes kept
        raw = read_image(trained["images"] / f"n{i}.ome.tif")
        cached = read_image(seg / "denoised_images" / f"n{i}.ome.tif")
        assert np.allclose(cached.data, denoise_image(dn, raw, device="cpu"), atol=1e-3)
        assert cached.pixel_sizes == pytest.approx(raw.pixel_sizes)
    # what training measured is the denoised images', not the raw ones'
    recorded = json.loads((seg / "fingerprint.json").read_text())["intensity"]["background"]["std"]
    measured = {name: fingerprint(load_dataset(DataConfig(images=folder, masks=trained["masks"])))
                .intensity["background"]["std"] for name, folder in (("raw", trained["images"]),
                                                                      ("denoised", seg / "denoised_images"))}
    assert recorded == pytest.approx(measured["denoised"], rel=1e-3)
    assert abs(recorded - measured["raw"]) > 0.05  # a tiny denoiser changes the images, if not yet for the better


def test_lr_find_sweeps_on_the_denoised_images(trained, tmp_path, capsys):
    project = tmp_path / "p"
    assert main(["lr-find", "--images", str(trained["images"]), "--masks", str(trained["masks"]), "--project",
                 str(project), "--denoise", str(trained["dn"]), "--steps", "4", "--batch-size", "2", "--patch", "32,32",
                 "--device", "cpu"]) == 0
    said = capsys.readouterr().out
    assert "Training on the images denoised by" in said and "proposed learning rate" in said, said
    assert sorted(p.name for p in (project / "denoised_images").glob("*.ome.tif")) == [f"n{i}.ome.tif" for i in range(3)]
    assert (project / "denoiser" / "models" / "fold0.pt").exists()  # nbseg train goes on with the same one


def test_predict_applies_the_project_denoiser(trained, tmp_path, capsys):
    from nbseg.denoise import denoise_files
    from nbseg.predict.files import predict_files

    seg = trained["seg"]
    assert main(["predict", str(seg), str(trained["images"]), "--output", str(tmp_path / "out"), "--tta", "none"]) == 0
    assert "Denoising first with the denoiser this project was trained with" in capsys.readouterr().out
    copies = sorted(p.name for p in (tmp_path / "out" / "denoised").glob("*.tif"))
    assert copies == [f"n{i}.ome.tif" for i in range(3)]
    denoised = denoise_files(trained["dn"], [trained["images"]], tmp_path / "dn_out", device="cpu")
    predict_files(seg, denoised, tmp_path / "by_hand", tta="none")
    predict_files(seg, [trained["images"]], tmp_path / "raw", tta="none")
    for i in range(3):
        got = _probabilities(tmp_path / "out", f"n{i}")
        assert np.array_equal(got, _probabilities(tmp_path / "by_hand", f"n{i}.denoised"))
        raw = _probabilities(tmp_path / "raw", f"n{i}")
        assert np.abs(got - raw).mean() > 0.5  # of 0-255


def test_notebooks_05_and_06_use_the_denoiser_the_project_carries(trained, tmp_path):
    """The panels go the command's way: 06 denoises the images first (the same probabilities as nbseg predict),
    05 trains on the denoised copies (what it measures is theirs)."""
    import shutil

    from nbseg.ui import PredictPanel, TrainPanel

    project = tmp_path / "seg"
    shutil.copytree(trained["seg"], project)
    panel = PredictPanel(project)
    assert panel.error is None, panel.errors.message.value
    panel.tta.value = "none"
    panel.which.value, panel.inputs.value = "folder", str(trained["images"])
    panel.predict_button.click()
    assert panel.error is None, panel.errors.message.value
    assert "Denoising first with the denoiser this project was trained with" in panel.status.text
    assert main(["predict", str(project), str(trained["images"]), "--output", str(tmp_path / "cli"), "--tta",
                 "none"]) == 0
    for i in range(3):
        got, expected = (_probabilities(folder, f"n{i}") for folder in (project / "predictions", tmp_path / "cli"))
        assert np.array_equal(got, expected)
    from nbseg.config import Config
    from nbseg.ui.session import training_data

    assert Path(training_data(Config.load(project), project).images) == project / "denoised_images"  # 04's sweep too
    (project / "fingerprint.json").unlink()
    panel = TrainPanel(project)
    panel.budget.value, panel.epochs.value, panel.steps.value = "epochs", 1, 2
    panel.replace.value = True
    panel.train_button.click()
    assert panel.error is None, panel.errors.message.value
    written = json.loads((project / "fingerprint.json").read_text())["intensity"]["background"]["std"]
    assert written == pytest.approx(json.loads((trained["seg"] / "fingerprint.json").read_text())["intensity"][
        "background"]["std"], rel=1e-3), "the denoised copies, not the raw images"


def test_notebook_00s_folder_trains_a_project_that_carries_its_denoiser(trained, tmp_path, capsys):
    """00 denoises into a folder (and says which denoiser made it); a project trained on that folder carries the
    denoiser without denoising twice: new raw images are denoised first, the folder's own copies are not."""
    from nbseg.denoise import denoise_files
    from nbseg.denoise.segment import record_copies

    folder, project = tmp_path / "denoised", tmp_path / "seg"
    denoise_files(trained["dn"], [trained["images"]], folder, suffix="", device="cpu")
    record_copies(trained["dn"], folder)  # what 00's Denoise images and nbseg denoise predict do
    assert main(["train", "--images", str(folder), "--masks", str(trained["masks"]), "--project", str(project),
                 "--seed", "0", *TRAIN]) == 0
    said = capsys.readouterr().out
    assert f"The images in {folder} were denoised by" in said
    assert (project / "denoiser" / "models" / "fold0.pt").exists() and not (project / "denoised_images").exists()
    assert main(["predict", str(project), str(trained["images"]), "--output", str(tmp_path / "raw"), "--tta",
                 "none"]) == 0
    assert "Denoising first" in capsys.readouterr().out
    assert main(["predict", str(project), str(folder), "--output", str(tmp_path / "own"), "--tta", "none"]) == 0
    assert "its copies already: segmented as they are" in capsys.readouterr().out
    assert not (tmp_path / "own" / "denoised").exists()
    for i in range(3):  # the same denoised images either way
        got, expected = (_probabilities(tmp_path / out, f"n{i}") for out in ("own", "raw"))
        assert np.allclose(got, expected, atol=1)
    # 00 run again with another denoiser into the folder: the project goes with the one that made its images
    from nbseg.denoise.segment import made_by, training_denoiser

    other = _denoiser(trained["images"], tmp_path / "dn2", seed=1)
    denoise_files(other, [trained["images"]], folder, suffix="", device="cpu", overwrite=True)
    record_copies(other, folder)
    carried = training_denoiser(project, images=folder)
    assert made_by(folder, carried) and not made_by(folder, trained["dn"])
    # --denoise none is kept: the folder's denoiser is not carried again, until one is given
    assert training_denoiser(project, "none", images=folder) is None
    assert training_denoiser(project, images=folder) is None and not (project / "denoiser").exists()
    assert made_by(folder, training_denoiser(project, other, images=folder))
    assert made_by(folder, training_denoiser(project, images=folder))


def test_a_project_without_a_denoiser_is_unchanged_and_takes_one_given(trained, tmp_path, capsys):
    from model_projects import make_project
    from nbseg.denoise import denoise_files
    from nbseg.predict.files import predict_files

    plain = make_project(tmp_path / "plain")
    images = trained["images"]
    assert main(["predict", str(plain), str(images), "--output", str(tmp_path / "out"), "--tta", "none"]) == 0
    assert "Denoising" not in capsys.readouterr().out and not (tmp_path / "out" / "denoised").exists()
    predict_files(plain, [images], tmp_path / "raw", tta="none")
    assert np.array_equal(_probabilities(tmp_path / "out"), _probabilities(tmp_path / "raw"))
    assert main(["predict", str(plain), str(images), "--output", str(tmp_path / "dn_out"), "--tta", "none",
                 "--denoise", str(trained["dn"])]) == 0
    assert f"Denoising first with {trained['dn']}" in capsys.readouterr().out
    predict_files(plain, denoise_files(trained["dn"], [images], tmp_path / "by_hand"), tmp_path / "seg_hand", tta="none")
    assert np.array_equal(_probabilities(tmp_path / "dn_out"), _probabilities(tmp_path / "seg_hand", "n0.denoised"))


def test_resume_reuses_the_cache_and_another_denoiser_remakes_it(trained, tmp_path):
    import shutil

    seg = tmp_path / "seg"
    shutil.copytree(trained["seg"], seg)
    cache = seg / "denoised_images"
    before = {p.name: p.stat().st_mtime_ns for p in cache.glob("*.tif")}
    args = ["train", "--images", str(trained["images"]), "--masks", str(trained["masks"]), "--project", str(seg)]
    assert main(args + ["--resume", *TRAIN[:1], "2", *TRAIN[2:]]) == 0  # no --denoise: the project's own
    assert {p.name: p.stat().st_mtime_ns for p in cache.glob("*.tif")} == before
    old = read_image(cache / "n0.ome.tif").data
    other = _denoiser(trained["images"], tmp_path / "dn2", seed=5)
    assert main(args + ["--overwrite", "--denoise", str(other), *TRAIN]) == 0
    assert (seg / "denoiser" / "models" / "fold0.pt").read_bytes() == (other / "models" / "fold0.pt").read_bytes()
    assert not np.allclose(read_image(cache / "n0.ome.tif").data, old)  # made anew by the other denoiser
    assert main(args + ["--overwrite", "--denoise", "none", *TRAIN]) == 0
    assert not (seg / "denoiser").exists() and not cache.exists()


def test_exports_refuse_a_project_that_carries_a_denoiser(trained, tmp_path):
    from nbseg.predict.bioimageio_export import export_bioimageio
    from nbseg.predict.export import export_torchscript

    with pytest.raises(ValueError, match="denoised by its denoiser.*bioimage.io package cannot carry.*nbseg predict"):
        export_bioimageio(trained["seg"], tmp_path / "x.zip", authors=["A"])
    with pytest.raises(ValueError, match="TorchScript file cannot carry"):
        export_torchscript(trained["seg"], tmp_path / "x.pt")
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def client():
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        yield client


@pytest.mark.slow  # a dask cluster of two worker processes
def test_cluster_denoising_matches_one_process(trained, tmp_path, client, capsys):
    from nbseg.denoise import denoise_files
    from nbseg.denoise.cluster import denoise_on_cluster

    dn, images = trained["dn"], trained["images"]
    local = denoise_files(dn, [images], tmp_path / "local", device="cpu")
    whole = denoise_on_cluster(dn, [images], tmp_path / "whole", cluster=client, device="cpu")
    assert [p.name for p in whole] == [p.name for p in local]
    for a, b in zip(local, whole):
        assert np.array_equal(read_image(a).data, read_image(b).data)
    assert main(["denoise", "predict", str(dn), str(images), "--output", str(tmp_path / "blocks"), "--cluster",
                 client.scheduler.address, "--block", "32,32", "--device", "cpu"]) == 0
    for a in local:
        blocked = read_image(tmp_path / "blocks" / a.name.replace(".ome.tif", ".ome.zarr"))
        assert blocked.pixel_sizes == pytest.approx(read_image(a).pixel_sizes)
        assert np.allclose(np.asarray(blocked.data), read_image(a).data, rtol=1e-5, atol=1e-3)
    assert "block [1, 1]" in capsys.readouterr().err


@pytest.mark.slow  # a dask cluster of two worker processes
def test_predict_on_a_cluster_denoises_there_too(trained, tmp_path, client):
    assert main(["predict", str(trained["seg"]), str(trained["images"]), "--output", str(tmp_path / "cluster"),
                 "--tta", "none", "--cluster", client.scheduler.address]) == 0
    assert main(["predict", str(trained["seg"]), str(trained["images"]), "--output", str(tmp_path / "local"),
                 "--tta", "none"]) == 0
    for i in range(3):
        assert np.array_equal(_probabilities(tmp_path / "cluster", f"n{i}"),
                              _probabilities(tmp_path / "local", f"n{i}"))
