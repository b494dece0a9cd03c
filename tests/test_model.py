"""UNet: one class for 2D and 3D; unpooled Z for thin stacks; the model file round-trips safely."""
from __future__ import annotations

import pytest
import torch

from nbseg.config import Config
from nbseg.model.unet import UNet, check_patch_size, load_model_file, pool_z_for, save_model_file


@pytest.mark.parametrize("dims, shape", [(2, (2, 1, 64, 48)), (3, (1, 2, 16, 32, 32))])
@pytest.mark.parametrize("size", ["S", "M", "L"])
def test_output_has_input_shape_and_classes(dims, shape, size):
    if size == "L":
        shape = shape[:2] + tuple(max(s, 32) for s in shape[2:])
    model = UNet(dims, shape[1], 3, size)
    assert model(torch.zeros(shape)).shape == (shape[0], 3) + shape[2:]


def test_thin_stack_is_not_pooled_in_z():
    assert not pool_z_for(5)
    model = UNet(3, 1, 2, "S", pool_z=False)
    assert model(torch.zeros(1, 1, 5, 32, 32)).shape == (1, 2, 5, 32, 32)
    check_patch_size([5, 32, 32], size="S")  # Z need not divide when it is not pooled


def test_model_file_round_trip(tmp_path):
    model = UNet(2, 1, 2, "S")
    path = save_model_file(tmp_path / "m.pt", model, meta={"percentiles": [1.0, 99.8], "kind": "binary"})
    loaded, meta = load_model_file(path)
    x = torch.randn(1, 1, 32, 32)
    model.eval()
    assert torch.allclose(model(x), loaded(x)) and meta["kind"] == "binary"


def test_corrupt_model_file_is_named(tmp_path):
    (tmp_path / "m.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"m\.pt is not a readable nbseg model file"):
        load_model_file(tmp_path / "m.pt")


def test_config_yaml_round_trip(tmp_path):
    cfg = Config(data={"images": "raw", "masks": "labels", "dims": 3}, model={"size": "S", "patch": [16, 64, 64]},
                 train={"minutes": 5, "folds": 3})
    path = cfg.save(tmp_path)
    assert Config.load(path) == cfg and Config.load(tmp_path) == cfg
