"""Bad input gives a clear message naming the file and the fix, and writes nothing."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile

from nbseg.cli.main import main
from nbseg.config import Config, DataConfig
from nbseg.data import DataError, load_dataset
from nbseg.data.normalize import IntensityError
from nbseg.data.pairs import PairingError
from nbseg.data.split import SplitError, make_folds
from nbseg.data.targets import LabelError
from nbseg.io.images import ImageReadError, image_files, read_image, read_mask
from nbseg.model.unet import PatchSizeError, check_patch_size
from nbseg.train.plan import plan_training
from nbseg.train.trainer import fit


def write_pairs(root, images, masks, names=None):
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    names = names or [f"img{i}" for i in range(len(images))]
    for name, image, mask in zip(names, images, masks):
        if image is not None:
            tifffile.imwrite(root / "images" / f"{name}.tif", image)
        if mask is not None:
            tifffile.imwrite(root / "masks" / f"{name}.tif", mask)
    return DataConfig(images=root / "images", masks=root / "masks")


def blobs(shape, seed=0):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 50, shape).astype(np.uint8)
    mask = np.zeros(shape, np.uint16)
    mask[(slice(None),) * (len(shape) - 2) + (slice(4, 12), slice(4, 12))] = 1
    image[mask > 0] += 150
    return image, mask


def assert_nothing_written(project):
    assert not project.exists(), f"{project} was written despite the error"


def test_mismatched_shapes(tmp_path):
    image, _ = blobs((32, 32))
    cfg = write_pairs(tmp_path, [image], [np.zeros((30, 32), np.uint8)])
    with pytest.raises(DataError, match=r"img0\.tif.*\(30, 32\).*\(32, 32\)"):
        load_dataset(cfg)


def test_unpaired_files_are_all_listed(tmp_path):
    image, mask = blobs((32, 32))
    cfg = write_pairs(tmp_path, [image, image, None], [mask, None, mask], names=["a", "b", "c"])
    with pytest.raises(PairingError, match=r"images without a mask.*b\.tif.*masks without an image.*c\.tif"):
        load_dataset(cfg)


def test_mask_values_outside_classes(tmp_path):
    image, mask = blobs((32, 32))
    mask[0, 0] = 5
    cfg = write_pairs(tmp_path, [image], [mask])
    cfg = cfg.model_copy(update={"labels": "multiclass", "n_classes": 3})
    with pytest.raises(LabelError, match=r"img0\.tif holds label 5 but the project has 3 classes"):
        load_dataset(cfg)


def test_float_labels(tmp_path):
    path = tmp_path / "m.tif"
    tifffile.imwrite(path, np.full((8, 8), 0.5, np.float32))
    with pytest.raises(ImageReadError, match=r"m\.tif holds float values.*whole numbers"):
        read_mask(path)


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty holds no image file"):
        image_files(tmp_path / "empty")


def test_truncated_file(tmp_path):
    image, _ = blobs((64, 64))
    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, image)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ImageReadError, match=r"cut\.tif.*truncated"):
        read_image(path)


def test_non_image_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(ImageReadError, match=r"notes\.txt is not a supported image file"):
        read_image(path)
    fake = tmp_path / "fake.tif"
    fake.write_text("not a tiff")
    with pytest.raises(ImageReadError, match=r"fake\.tif"):
        read_image(fake)


@pytest.mark.parametrize("shape, dims", [((6, 32, 32), 2), ((32, 32), 3)])
def test_dimension_setting_disagrees_with_data(tmp_path, shape, dims):
    image, mask = blobs(shape)
    cfg = write_pairs(tmp_path, [image], [mask]).model_copy(update={"dims": dims, "axes": "ZYX" if len(shape) == 3 else None})
    with pytest.raises(DataError, match=rf"settings say the data is {dims}D"):
        load_dataset(cfg)


def test_patch_larger_than_image_is_padded_and_said(tmp_path):
    image, mask = blobs((40, 40))
    cfg = write_pairs(tmp_path, [image], [mask])
    dataset = load_dataset(cfg)
    plan, _ = plan_training(Config(data=cfg, model={"size": "S", "patch": [64, 64]}), dataset, device="cpu")
    assert plan.patch == [64, 64] and "padded" in plan.reasons["patch"]
    planned, _ = plan_training(Config(data=cfg), dataset, device="cpu")  # planned: clipped to the image
    assert planned.patch == [40, 40] and "padded" not in planned.reasons["patch"]
    assert "cut to the smallest image's 40 px" in planned.reasons["patch"]  # why it is not 128


def test_patch_not_divisible():
    with pytest.raises(PatchSizeError, match=r"\[100, 128\].*Y=100 is not divisible by 8.*\[96, 128\] or \[104, 128\]"):
        check_patch_size([100, 128], size="M")


@pytest.mark.parametrize("bad", ["constant", "nan"])
def test_constant_or_nan_image(tmp_path, bad):
    image = np.full((32, 32), 7, np.float32)
    if bad == "nan":
        image[3, 3] = np.nan
    _, mask = blobs((32, 32))
    cfg = write_pairs(tmp_path, [image], [mask])
    with pytest.raises(IntensityError, match=r"img0\.tif channel 0 (is constant|holds NaN)"):
        load_dataset(cfg)


def test_fewer_images_than_folds(tmp_path):
    with pytest.raises(SplitError, match=r"5 folds need at least 5 images, but there are 2"):
        make_folds(["a", "b"], folds=5)


def test_rgb_where_grey_expected(tmp_path):
    grey, mask = blobs((32, 32))
    rgb = np.stack([grey] * 3, axis=-1)
    cfg = write_pairs(tmp_path, [grey, rgb], [mask, mask])
    with pytest.raises(DataError, match=r"different channel counts.*img1\.tif.*--channels 0"):
        load_dataset(cfg)


def test_cli_reports_error_and_writes_nothing(tmp_path, capsys):
    image, _ = blobs((32, 32))
    write_pairs(tmp_path, [image], [np.zeros((30, 32), np.uint8)])
    project = tmp_path / "project"
    code = main(["train", "--images", str(tmp_path / "images"), "--masks", str(tmp_path / "masks"),
                 "--project", str(project), "--epochs", "1"])
    assert code == 2
    assert "img0.tif" in capsys.readouterr().err
    assert_nothing_written(project)


def test_fit_writes_nothing_on_bad_folds(tmp_path):
    image, mask = blobs((32, 32))
    cfg = write_pairs(tmp_path, [image, image], [mask, mask])
    project = tmp_path / "project"
    with pytest.raises(SplitError):
        fit(Config(data=cfg, train={"folds": 3, "epochs": 1}), project)
    assert_nothing_written(project)


def test_unknown_config_key_suggests_the_right_one():
    with pytest.raises(ValueError, match=r"unknown setting 'epoch'.*Did you mean 'epochs'"):
        Config.model_validate({"data": {"images": "x"}, "train": {"epoch": 3}})


def test_patch_dims_disagree_with_data_dims():
    with pytest.raises(ValueError, match=r"data is 3D but patch size \[64, 64\] is 2D"):
        Config.model_validate({"data": {"images": "x", "dims": 3}, "model": {"patch": [64, 64]}})
