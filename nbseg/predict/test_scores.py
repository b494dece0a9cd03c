"""A project's scores on images it never trained on, predicted as ``nbseg predict`` does.

Notebook 02's correction loop scores the project's test images (held back in 01) after each retraining, so
its table of rounds says what each round gained on images no round trained on or chose anything with.
"""
from __future__ import annotations

from pathlib import Path


def score_images(project, images, masks, output_dir, *, options=None) -> dict:
    """Predict ``images`` with ``project``'s models and score the results against ``masks``.

    Parameters
    ----------
    project : str, Path or list
        A trained project folder, model file(s), or ``load_ensemble``'s result.
    images : sequence of str or Path
        Image files, each with a mask of the same name in ``masks``.
    masks : str or Path
        The folder of their masks (label images, for a project trained on instances).
    output_dir : str or Path
        Where the predictions are written (as ``nbseg predict`` writes them; earlier ones are replaced).
    options : nbseg.predict.options.PredictOptions, optional
        Default: flips TTA and, for an instances project, objects (``nbseg predict --instances``).

    Returns
    -------
    dict
        The pooled summary of :func:`nbseg.metrics.evaluation.evaluate`: ``images`` and ``dice`` (the
        foreground's, pooled over pixels), and for objects ``f1@0.5`` (pooled over objects) with its counts.

    Raises
    ------
    ValueError
        Naming the images without a mask.
    """
    from ..io.images import file_stem, files_by_stem, read_mask
    from ..metrics.evaluation import evaluate
    from .ensemble import ensemble_info, load_ensemble
    from .files import predict_files
    from .options import PredictOptions
    from .outputs import result_paths

    ensemble = load_ensemble(project)
    info = ensemble_info(ensemble)
    options = options or PredictOptions(tta="flips", instances=info.kind == "instances")
    truth = files_by_stem(masks, "mask")
    missing = [Path(p).name for p in images if file_stem(p) not in truth]
    if missing:
        raise ValueError(f"No mask in {masks} for {', '.join(missing)}: only images with a mask of the same name "
                         "can be scored. Give their masks, or leave those images out.")
    predict_files(ensemble, list(images), output_dir, options, overwrite=True)
    preds, gts = {}, {}
    for path in images:
        stem = file_stem(path)
        found = result_paths(output_dir, stem, instances=options.instances)
        preds[stem] = read_mask(found["labels"] if options.instances else found["mask"])
        gts[stem] = read_mask(truth[stem], dims=preds[stem].ndim)
    kind = "multiclass" if info.kind == "multiclass" else ("instances" if options.instances else "binary")
    return evaluate(preds, gts, kind=kind, n_classes=info.n_classes if kind == "multiclass" else None).summary


__all__ = ["score_images"]
