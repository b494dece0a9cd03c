"""The model and the training step that fit() and the learning-rate finder share.

One step: draw a batch, augment it when the config says so, move it to the device in the
memory layout the device prefers, forward under the chosen precision (a GradScaler for fp16),
backward, optimiser step. Keeping it in one place means the LR sweep sees the same training
that fit() runs, and a run that learns something else (``nbseg.denoise``: Noise2Void) steps the same
way with its own loss and augmentation.
"""
from __future__ import annotations

import torch

from . import distributed
from ..data.augment import augment_batch
from ..model.loss import dice_ce_loss
from ..model.unet import UNet
from ..runtime import autocast, memory_format


def build_model(dataset, plan, device, **network) -> tuple[torch.nn.Module, torch.memory_format]:
    """The U-Net for ``dataset`` that ``plan`` describes, on ``device``, and the memory layout its
    inputs should use.

    Parameters
    ----------
    dataset : nbseg.data.Dataset
        Gives the spatial dimensions, input channels and classes.
    plan : nbseg.train.plan.Plan
        Model size, Z pooling, and whether a 2D network runs over the slices of a stack.
    device : torch.device
    **network
        Further :class:`~nbseg.model.unet.UNet` options (N2V2's ``top_skip=False, pool="maxblur"``).
    """
    model = UNet(dataset.spatial_dims, dataset.in_channels, dataset.n_classes, plan.size, pool_z=plan.pool_z,
                 slices=plan.slices, norm=plan.norm, input_shift=plan.input_shift, **network)
    layout = memory_format(device, plan.model_dims)  # the layout the convolutions run fastest in
    model = distributed.sync_batchnorm(model.to(device).to(memory_format=layout))  # several GPUs: one batch norm
    # a slice model folds Z into the batch itself, so its 5D inputs stay in the standard layout
    return model, layout if dataset.spatial_dims == plan.model_dims else torch.contiguous_format


def segmentation_augment(x, y, generator):
    """Segmentation's augmentation of a batch ``x`` (N, C, [Z,] Y, X) and its targets ``y`` (N, [Z,] Y, X)."""
    flat = x.ndim == 5 and x.shape[2] == 1  # one-slice patches of a stack augment as 2D images
    if flat:
        x, y = x[:, :, 0], y[:, 0]
    x, y = augment_batch(x, y, generator=generator)
    return (x[:, :, None], y[:, None]) if flat else (x, y)


class TrainStep:
    """One optimiser step on a batch; call it with numpy arrays ``x`` (N, C, [Z,] Y, X) and ``y``.

    ``loss(output, y)`` and ``augmentation(x, y, generator)`` default to segmentation's (Dice + cross-entropy,
    :func:`segmentation_augment`); another task gives its own, and ``y`` is then what its loss reads.
    """

    def __init__(self, model, optimizer, *, device, precision: str, layout, augment: bool, generator,
                 class_weights=None, loss=None, augmentation=None):
        # several processes: DDP averages the gradients in backward(), so every replica steps alike
        self.model, self.optimizer, self.device = distributed.wrap(model, device), optimizer, device
        self.align = model.align  # before the flips of augmentation, which would turn the shift around
        self.precision, self.layout, self.augment, self.generator = precision, layout, augment, generator
        self.class_weights = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        self.scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
        self.loss, self.augmentation = loss or self._segmentation_loss, augmentation or segmentation_augment

    def _segmentation_loss(self, output, y):
        return dice_ce_loss(output, y, class_weights=self.class_weights)

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = float(lr)

    def __call__(self, x, y) -> float:
        x, y = self.align(torch.from_numpy(x)), torch.from_numpy(y)
        if self.augment:
            x, y = self.augmentation(x, y, self.generator)
        x = x.to(self.device, non_blocking=True).contiguous(memory_format=self.layout)
        y = y.to(self.device, non_blocking=True)
        with autocast(self.device, self.precision):
            loss = self.loss(self.model(x, aligned=True), y)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        return float(loss.detach())
