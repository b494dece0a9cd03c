"""fit(): a plain PyTorch training loop over a project folder — one model, or one per fold.

Every epoch writes the training state atomically, so `resume=True` continues a killed run, and
the best model (by validation Dice) is kept in ``models/fold{k}.pt`` for prediction. One fold's loop is
:class:`nbseg.train.fold.FoldRun`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import distributed
from ..config import Config
from ..data import load_dataset
from ..data.resample import rescale_dataset
from ..data.split import load_or_make_split
from ..project import ProjectLayout, write_json
from .fold import FoldRun
from .plan import Plan, plan_training
from .warm_start import fit_warm_started


@dataclass
class TrainResult:
    """What fit() produced: one :class:`FoldResult` per fold."""

    project: Path
    folds: list = field(default_factory=list)

    model_paths = property(lambda self: [f.model_path for f in self.folds])
    best_dice = property(lambda self: [f.best_dice for f in self.folds])
    histories = property(lambda self: [f.history for f in self.folds])
    stopped = property(lambda self: [f.stopped for f in self.folds])

    @property
    def interrupted(self) -> bool:
        return "interrupted" in self.stopped


@distributed.in_session  # under torchrun: one process group for the run
def fit(config: Config, project, *, callbacks=(), resume: bool = False, dataset=None,
        plan: Plan | None = None, fingerprint=None, adjust_plan=None) -> TrainResult:
    """Train the model(s) that ``config`` describes; write everything under ``project``.

    Parameters
    ----------
    config : nbseg.config.Config
    project : str or Path
        Folder for config, split, checkpoints, models and history.
    callbacks : sequence of nbseg.callbacks.Callback
    resume : bool
        Continue from the checkpoints in ``project`` instead of starting over.
    dataset : nbseg.data.Dataset, optional
        Already loaded data (the notebooks keep it in memory between steps).
    plan : nbseg.train.plan.Plan, optional
        The plan already shown to the user; planned from the data when not given.
    fingerprint : nbseg.data.fingerprint.Fingerprint, optional
        The data's fingerprint that ``plan`` came from (saved as ``fingerprint.json``).
    adjust_plan : callable, optional
        Plan -> Plan, applied to the plan made here before it is shown: how a caller that chains runs
        sets what only it knows (the warm start's 3D phase, its lr).

    Returns
    -------
    TrainResult
        With ``interrupted`` True if the run was stopped (KeyboardInterrupt); the best model is kept.
    """
    project = Path(project)
    # everything is checked before anything is written, so bad input leaves no half-made project
    dataset = dataset or load_dataset(config.data)
    notes = list(dataset.notes)
    if plan is None:  # nobody has shown the plan yet: the progress callbacks do
        plan, fingerprint = plan_training(config, dataset, fingerprint=fingerprint)
        plan = adjust_plan(plan) if adjust_plan else plan
        notes += fingerprint.notes + plan.lines()
    plan = distributed.from_main(plan)  # planned from free memory: every process trains rank 0's plan
    if plan.warm_start and not plan.init:  # two phases, each a fit of its own (nbseg.train.warm_start)
        return fit_warm_started(fit.__wrapped__, config, project, plan, callbacks=callbacks, resume=resume,
                                dataset=dataset, fingerprint=fingerprint)
    dataset = rescale_dataset(dataset, plan.scale, plan.spacing)  # the working scale (a copy; often the same)
    notes += [n for n in dataset.notes if n not in notes]  # e.g. images resampled to a common pixel size
    folds = distributed.run_on_main(load_or_make_split, project, dataset.names, folds=config.train.folds,
                                    val_fraction=config.data.val_fraction, seed=config.train.seed)
    layout = ProjectLayout(project)
    if distributed.is_main():  # one writer: the other processes train the same model
        config.save(project)
        if fingerprint is not None:
            fingerprint.save(layout.fingerprint)
        write_json(layout.plan, plan.to_dict())
    result = TrainResult(project)
    for k, fold in enumerate(folds):
        outcome = FoldRun(config, project, dataset, plan, fold=k, n_folds=len(folds), split=fold, callbacks=callbacks,
                          notes=notes, resume=resume).run()
        result.folds.append(outcome)
        if outcome.stopped == "interrupted":
            break
    return result
