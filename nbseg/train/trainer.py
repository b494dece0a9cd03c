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
from ..data.split import hold_back_test, load_or_make_split, without_test
from ..project import ProjectLayout, write_json
from .fold import FoldRun
from .plan import Plan, plan_training
from .warm_start import warm_start_phases


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


class TrainedModelExists(FileExistsError):
    """Training would start over in a project that holds a trained model nobody said to replace."""


def check_replace(project, *, replace: bool, resume: bool = False,
                  how: str = "pass overwrite=True (CLI: --overwrite)",
                  resume_how: str = "use resume=True (CLI: --resume)") -> None:
    """Refuse to start training over in ``project`` when it holds a trained model, unless ``replace``.

    `nbseg train` and notebook 05 call it before anything is written; ``resume`` (continuing the run
    whose checkpoint is on disk) replaces nothing and passes.

    Parameters
    ----------
    project : str or Path
    replace : bool
        The user said to replace the trained model (CLI ``--overwrite``, 05's 'Replace the trained model').
    resume : bool
    how, resume_how : str
        How the user replaces the model, or continues its run, in the caller's words.

    Raises
    ------
    TrainedModelExists
        Naming the model files and the three ways on.
    """
    layout = ProjectLayout(project)
    if replace or resume or not layout.status()["models"]:
        return
    names = ", ".join(p.relative_to(layout.root).as_posix() for p in layout.model_files())
    raise TrainedModelExists(
        f"{layout.root} holds a trained model already ({names}); training again starts over and replaces it. "
        f"To replace it, {how}; to continue its run instead, {resume_how}; to keep it, train into another "
        "project folder.")


@distributed.in_session  # under torchrun: one process group for the run
def fit(config: Config, project, *, callbacks=(), resume: bool = False, dataset=None,
        plan: Plan | None = None, fingerprint=None) -> TrainResult:
    """Train the model(s) that ``config`` describes; write everything under ``project``.

    One run, or the explicit list of runs a warm-started 3D network makes
    (:func:`nbseg.train.warm_start.warm_start_phases`: a 2D phase, then the 3D network from it).

    Parameters
    ----------
    config : nbseg.config.Config
    project : str or Path
        Folder for config, split, checkpoints, models and history.
    callbacks : sequence of nbseg.callbacks.Callback
    resume : bool
        Continue from the checkpoints in ``project`` instead of starting over.
    dataset : nbseg.data.Dataset, optional
        Already loaded data (the notebooks keep it in memory between steps). Its test images
        (``data.test_fraction`` / ``data.test_images``, :func:`nbseg.data.split.training_data`) are left out
        of everything here: the plan, every fold's training and validation.
    plan : nbseg.train.plan.Plan, optional
        The plan already shown to the user; planned from the data when not given.
    fingerprint : nbseg.data.fingerprint.Fingerprint, optional
        The data's fingerprint that ``plan`` came from (saved as ``fingerprint.json``).

    Returns
    -------
    TrainResult
        With ``interrupted`` True if the run was stopped (KeyboardInterrupt); the best model is kept.
    """
    given = dataset or load_dataset(config.data)
    # the test images are held back before anything is planned from the data: nothing is chosen with them
    dataset = training_dataset(config, project, given)
    if given.test is None and dataset.test:  # a plan given with the data was made with the test images too
        plan = fingerprint = None
    plan, fingerprint, notes = _planned(config, dataset, plan, fingerprint)
    if plan.warm_start and not plan.init:  # a 2D phase, then the 3D network from it (nbseg.train.warm_start)
        return _run_phases(warm_start_phases(config, project, plan, resume=resume), config, project,
                           callbacks=callbacks, resume=resume, dataset=dataset, fingerprint=fingerprint)
    return _train(config, Path(project), dataset, plan, fingerprint, notes, callbacks=callbacks, resume=resume)


def training_dataset(config, project, dataset):
    """``dataset`` without the test images ``config.data`` asks for, which it names in ``test``
    (:func:`nbseg.data.split.hold_back_test`: chosen once, by rank 0, and recorded in ``split.json``).

    What `nbseg train`, `nbseg lr-find` and notebooks 04-05 plan, sweep and train on; a dataset whose
    ``test`` is set already is returned as it is.
    """
    if dataset.test is not None:
        return dataset
    test = distributed.run_on_main(hold_back_test, project, dataset.names, config.data, seed=config.train.seed)
    return without_test(dataset, test)


def _planned(config, dataset, plan, fingerprint, adjust_plan=None) -> tuple:
    """``(plan, fingerprint, notes)``: the plan given, else one made (and adjusted) here, whose lines are
    shown when training begins."""
    notes = list(dataset.notes)
    if plan is None:  # nobody has shown the plan yet: the progress callbacks do
        plan, fingerprint = plan_training(config, dataset, fingerprint=fingerprint)
        plan = adjust_plan(plan) if adjust_plan else plan
        notes += fingerprint.notes + plan.lines()
    return distributed.from_main(plan), fingerprint, notes  # planned from free memory: rank 0's for all


def _run_phases(phases, config, project, *, callbacks, resume: bool, dataset, fingerprint) -> TrainResult:
    """Train each phase in turn, each planned from ``fingerprint`` (the data's, computed once); stop after
    one that was interrupted. Returns the last phase's result."""
    if distributed.is_main():  # `nbseg train --project P --resume` finds the settings while the 2D phase runs
        config.save(project)
    for phase in phases:
        phase_plan, _, notes = _planned(phase.config, dataset, None, fingerprint, phase.adjust_plan)
        result = _train(phase.config, phase.project, dataset, phase_plan, fingerprint, notes, callbacks=callbacks,
                        resume=resume)
        if result.interrupted:
            return result
    if distributed.is_main():  # the person's settings, not the phase's (a later --resume plans the same again)
        config.save(project)
    return result


def _train(config, project: Path, dataset, plan, fingerprint, notes, *, callbacks, resume: bool) -> TrainResult:
    """One run: the data at the plan's working scale, the split, the project's settings, then each fold."""
    # everything is checked before anything is written, so bad input leaves no half-made project
    dataset = rescale_dataset(dataset, plan.scale, plan.spacing)  # the working scale (a copy; often the same)
    notes += [n for n in dataset.notes if n not in notes]  # e.g. images resampled to a common pixel size
    folds = distributed.run_on_main(load_or_make_split, project, dataset.names, folds=config.train.folds,
                                    val_fraction=config.data.val_fraction, seed=config.train.seed,
                                    test=dataset.test or ())
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
