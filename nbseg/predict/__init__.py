"""Prediction with a trained project: what each module does.

The face (imported here): :func:`predict_files`, :func:`predict_image`, :class:`PredictOptions`,
:func:`load_ensemble`, :func:`out_of_fold_predictions`, :func:`result_paths`.

One image, in the order a prediction runs:

- :mod:`.options`: how to predict, as one frozen, checked object (TTA, tile, threshold, min size, ...).
- :mod:`.ensemble`: the project's models as one ensemble (loading, checks against an image, the models'
  plan: working scale, min size).
- :mod:`.tile_predictor`: the per-tile function: every model on every TTA variant of a batch of tiles, in
  forward passes of tiles and variants together, averaged, with an uncertainty channel.
- :mod:`.inference`: the models as prediction runs them (batch norms folded, channels-last, 3D
  convolutions kept on oneDNN) and how many tile images a forward pass takes.
- :mod:`.image`: one image through the sliding window x TTA x ensemble, at the models' working scale,
  memory-bounded; :class:`Prediction` holds the result.
- :mod:`.tta`: test-time augmentation (flips, quarter turns), each undone on the output.
- :mod:`.memory`: what a prediction needs, and the batch and tile that keep it under ``--max-memory``;
  :mod:`.sizes` reads and prints byte sizes; :mod:`.heap` keeps freed memory in the process meanwhile.
- :mod:`.oom`: out of memory, a smaller batch, then a smaller tile (the retry is
  :func:`nbseg.runtime.retry_smaller`, as training's).
- :mod:`.post`: probabilities to masks and objects (thresholds, Otsu, the sweep, the watershed).
- :mod:`.seeds`: the watershed's seed threshold, chosen on each model's validation images after training.

Files and folders:

- :mod:`.files`: :func:`predict_files`: inputs paired with results by name, the record that lets a run
  continue, the ranked table.
- :mod:`.outputs`: the result files' names (:func:`result_paths`), writing them, finding them again
  and reading a probability map back.
- :mod:`.objects`: one table row per object, and Fiji ROIs.
- :mod:`.out_of_fold`: each training image predicted by the fold model that did not train on it.
- :mod:`.seen`: which images the models trained on, validated with or held back as the test set, and the
  warning wherever images they have seen are scored (their scores are inflated).
- :mod:`.test_scores`: images predicted and scored against their masks in one call (the correction
  loop's rounds on the test set).

Correcting and retraining:

- :mod:`.suggest`: the images to correct next (most uncertain, or where models disagree, first) and the
  objects a model proposes for one image.

Sharing a model:

- :mod:`.export`: one TorchScript file; :mod:`.bioimageio_export` a bioimage.io package, with the texts
  of :mod:`.bioimageio_docs`; :mod:`.bioimageio_tasks` says what differs between a segmentation model's package
  and a denoiser's (the network module, the output, the texts).

Many or very large images: :mod:`.cluster` (a subpackage) predicts on a dask cluster.
"""
from .ensemble import load_ensemble
from .files import predict_files
from .image import Prediction, predict_image, uncertainty_table
from .options import PredictOptions
from .out_of_fold import out_of_fold_predictions
from .outputs import result_paths

__all__ = ["PredictOptions", "Prediction", "load_ensemble", "out_of_fold_predictions", "predict_files", "predict_image",
           "result_paths", "uncertainty_table"]
