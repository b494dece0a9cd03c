"""Prediction: files and folders (:mod:`.files`), one image (:mod:`.image`), the models and the
per-tile function (:mod:`.ensemble`), the sliding window (:mod:`.tiling`), test-time augmentation
(:mod:`.tta`), thresholds and objects (:mod:`.post`), out-of-fold predictions and export; the
settings of a prediction as one checked object (:mod:`.options`)."""
from .ensemble import load_ensemble
from .files import predict_files
from .image import Prediction, predict_image, uncertainty_table
from .options import PredictOptions
from .out_of_fold import out_of_fold_predictions
from .outputs import result_paths

__all__ = ["PredictOptions", "Prediction", "load_ensemble", "out_of_fold_predictions", "predict_files", "predict_image",
           "result_paths", "uncertainty_table"]
