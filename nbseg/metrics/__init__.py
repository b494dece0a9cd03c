"""Scores of one image (:mod:`.scores`: Dice/IoU, instance F1 and AP, Rand/VI) and of a set of
predictions against ground truth (:mod:`.evaluation`), and the object edits between two label images
(:mod:`.edits`)."""
from .edits import count_edits
from .evaluation import Evaluation, evaluate, evaluate_folders, evaluate_image
from .scores import AP_THRESHOLDS, dice_iou, instance_scores, mean_average_precision, rand_vi

__all__ = ["AP_THRESHOLDS", "Evaluation", "count_edits", "dice_iou", "evaluate", "evaluate_folders",
           "evaluate_image", "instance_scores", "mean_average_precision", "rand_vi"]
