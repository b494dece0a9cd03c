"""Running out of memory: one retry (nbseg.runtime.retry_smaller) for training and prediction, tested
through predict_image itself: the batch, then the tile, shrink until the tiles fit, the memory is freed
between tries, and a CPU allocator failure is not called a GPU's."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from model_projects import make_model
from nbseg.model.unet import UNet
from nbseg.predict.image import predict_image


class BudgetedUNet(UNet):
    """A real U-Net behind a device of ``budget`` input bytes per call: a larger batch fails with the
    error a GPU (``gpu=True``) or the CPU allocator raises."""

    budget = 0
    gpu = True

    def forward(self, x, aligned: bool = False):
        if x.numel() * x.element_size() > self.budget:
            text = "CUDA out of memory. Tried to allocate" if self.gpu else \
                "DefaultCPUAllocator: can't allocate memory: you tried to allocate"
            raise (torch.OutOfMemoryError if self.gpu else RuntimeError)(f"{text} {x.numel() * 4} bytes")
        return super().forward(x, aligned=aligned)


def _ensemble(budget: int, cuda: bool = True):
    model = make_model(2)
    budgeted = BudgetedUNet(2, 1, 2, "S")
    budgeted.load_state_dict(model.state_dict())
    budgeted.eval().budget, budgeted.gpu = budget, cuda
    return [(budgeted, {"kind": "binary", "patch": [32, 32]})], [(model, {"kind": "binary", "patch": [32, 32]})]


IMAGE = (np.random.default_rng(3).random((64, 80)) * 255).astype(np.float32)
SETTINGS = dict(tta="none", device="cpu", precision="fp32", dtype=np.float32)


def test_predict_halves_the_batch_until_it_fits_and_predicts_the_same(monkeypatch):
    import nbseg.runtime

    freed = []
    monkeypatch.setattr(nbseg.runtime, "release_cached_memory", lambda: freed.append(1))
    budgeted, plain = _ensemble(2 * 32 * 32 * 4)  # two tiles of 32 x 32 float32 fit
    with pytest.warns(RuntimeWarning) as told:
        result = predict_image(budgeted, IMAGE, batch_size=8, tile=(32, 32), **SETTINGS)
    assert [str(w.message) for w in told] == ["Out of GPU memory; trying again with batch 8 -> 4.",
                                              "Out of GPU memory; trying again with batch 4 -> 2."]
    assert len(freed) == 2  # the cache is given back before each retry
    expected = predict_image(plain, IMAGE, batch_size=2, tile=(32, 32), **SETTINGS)
    np.testing.assert_allclose(result.stored, expected.stored, atol=1e-6)


def test_predict_halves_the_tile_when_one_tile_does_not_fit():
    budgeted, _ = _ensemble(16 * 16 * 4)
    with pytest.warns(RuntimeWarning, match=r"tile \[32, 32\] -> \[16, 16\]"):
        result = predict_image(budgeted, IMAGE, batch_size=1, tile=(32, 32), **SETTINGS)
    assert result.stored.shape[1:] == IMAGE.shape


@pytest.mark.parametrize("cuda, memory", [(True, "Out of GPU memory"), (False, r"Out of memory \(RAM\)")])
def test_predict_names_the_memory_that_ran_out(cuda, memory):
    budgeted, _ = _ensemble(8, cuda=cuda)
    with pytest.warns(RuntimeWarning, match=memory), \
            pytest.raises(torch.OutOfMemoryError, match=memory + " even with one tile of") as error:
        predict_image(budgeted, IMAGE, batch_size=2, tile=(16, 16), **SETTINGS)
    assert ("--device cpu" in str(error.value)) == cuda, error.value
