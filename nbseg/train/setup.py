"""What a training run trains with, built one way for a fold and for the learning-rate finder: the network
(from the ``train.init`` weights when fine-tuning), its optimiser and step (class weights, augmentation,
precision) and the patch sampler (class-balanced for multi-class sets). The finder thus sweeps the
training fit() runs, not a simpler one."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from . import distributed
from ..data.sampler import PatchSampler
from .init import load_init_weights
from .step import TrainStep, build_model


@dataclass(frozen=True)
class Objective:
    """What a run learns when it is not segmentation (:mod:`nbseg.denoise`: Noise2Void), for the same loop.

    Attributes
    ----------
    loss : callable(output, y) -> scalar tensor
    augmentation : callable(x, y, generator) -> (x, y)
    sampler : callable(samples, patch, rng) -> object with ``batch(n) -> (x, y)``
        ``x`` the network's input ``(n, C, [Z,] Y, X)``, ``y`` what ``loss`` reads.
    network : dict
        Further :class:`~nbseg.model.unet.UNet` options.
    """

    loss: Callable
    augmentation: Callable
    sampler: Callable
    network: dict = field(default_factory=dict)


@dataclass
class TrainingSetup:
    """One run's network, optimiser, step and sampler, and the random streams they draw from.

    Attributes
    ----------
    model : torch.nn.Module
    layout : torch.memory_format
        The layout the model's inputs use.
    optimizer : torch.optim.AdamW
    step : TrainStep
        One optimiser step on a batch: ``step(x, y) -> loss``.
    sampler : PatchSampler
        ``sampler.batch(n) -> (x, y)``: ``(n, C, [Z,] Y, X)`` patches and their targets.
    rng : numpy.random.Generator
        The sampler's stream (saved in checkpoints).
    generator : torch.Generator
        The augmentation's stream (saved in checkpoints).
    notes : list of str
        For the run's log: where the starting weights came from.
    """

    model: torch.nn.Module
    layout: object
    optimizer: torch.optim.Optimizer
    step: TrainStep
    sampler: PatchSampler
    rng: np.random.Generator
    generator: torch.Generator
    notes: list = field(default_factory=list)


def set_up_training(config, dataset, plan, samples, *, device, precision: str, seed: int,
                    init: bool = True, objective: Objective | None = None) -> TrainingSetup:
    """The network, optimiser, step and sampler a run trains with.

    Parameters
    ----------
    config : nbseg.config.Config
        ``train.weight_decay``, ``augment`` and ``foreground_fraction`` are read.
    dataset : nbseg.data.Dataset
        Gives the dimensions, channels and classes of the network.
    plan : nbseg.train.plan.Plan
        Network, patch, learning rate, class weights and the ``train.init`` source.
    samples : list of nbseg.data.Sample
        What the patches are drawn from (a fold's training part; all of them for the finder).
    device : torch.device
    precision : str
    seed : int
        Seeds torch (the network's first weights), the sampler and the augmentation.
    init : bool
        Start from ``plan.init``'s weights when fine-tuning; False when a checkpoint replaces them.
    objective : Objective, optional
        Another task's network options, loss, augmentation and sampler; default segmentation's.

    Returns
    -------
    TrainingSetup
    """
    train = config.train
    torch.manual_seed(seed)
    rng, generator = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    distributed.shard_streams(rng, generator)  # each process its own patches
    model, layout = build_model(dataset, plan, device, **(objective.network if objective else {}))
    optimizer = torch.optim.AdamW(model.parameters(), lr=plan.lr,  # plan.lr: fine-tuning's own
                                  weight_decay=train.weight_decay)
    step = TrainStep(model, optimizer, device=device, precision=precision, layout=layout, augment=train.augment,
                     generator=generator, class_weights=plan.class_weights, loss=objective and objective.loss,
                     augmentation=objective and objective.augmentation)
    if objective is not None:
        sampler = objective.sampler(samples, plan.patch, rng)
    else:
        balance = range(1, dataset.n_classes) if plan.class_weights else None  # multi-class: each class alike
        sampler = PatchSampler(samples, plan.patch, foreground_fraction=train.foreground_fraction, seed=rng,
                               classes=balance)
    notes = load_init_weights(model, plan.init) if init and plan.init else []
    return TrainingSetup(model, layout, optimizer, step, sampler, rng, generator, notes)


__all__ = ["Objective", "TrainingSetup", "set_up_training"]
