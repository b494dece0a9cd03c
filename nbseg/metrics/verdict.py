"""Whether a trained model is usable, judged from its validation Dice, and what to do when it is not:
the sentence the train panel and the CLI show after training, so a model that learnt nothing is never
reported as a success."""
from __future__ import annotations

from dataclasses import dataclass

# Below this validation Dice a model misses or invents about half of the foreground: its predictions
# are not a segmentation (a model that calls everything foreground scores the foreground share, e.g. 0.07)
POOR_DICE = 0.5


@dataclass(frozen=True)
class Verdict:
    """``ok``: every model reached :data:`POOR_DICE`; ``text``: one sentence for the user."""

    ok: bool
    text: str


def training_verdict(best_dice, *, poor: float = POOR_DICE) -> Verdict:
    """Judge the best validation Dice of each trained model (one per fold).

    Parameters
    ----------
    best_dice : sequence of float
        Best (smoothed) validation Dice per fold; -1 or NaN when a fold never validated.
    poor : float
        Dice below which a model counts as failed.
    """
    scores = [float(d) for d in best_dice]
    if not scores:
        return Verdict(False, "No model was trained: check that the project has training images with masks.")
    shown = ", ".join(f"{d:.3f}" if d >= 0 else "none" for d in scores)
    failed = [d for d in scores if not d >= poor]  # NaN and -1 (never validated) fail too
    if not failed:
        return Verdict(True, f"Best validation Dice {shown}.")
    return Verdict(False, (
        f"Training failed: best validation Dice {shown}, below {poor:g}, so the model does not segment "
        "yet. Train longer (more minutes or epochs; 'Resume from disk' continues), and check the labels "
        "(notebook 03_label_qc: masks that match the images, objects labelled in every image)."))


__all__ = ["POOR_DICE", "Verdict", "training_verdict"]
