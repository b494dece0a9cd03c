"""The terms users meet in the panels, explained in nbseg's words. Every control's tooltip comes from
here (the terms from :mod:`.glossary_terms`, the controls' help lines below), and ``docs/glossary.md`` is
generated from the same terms (``python -m nbseg.ui.glossary``)."""
from __future__ import annotations

from pathlib import Path

from .glossary_terms import TERMS, Term  # noqa: F401 - Term: the glossary's entries, imported from here too


# The controls' extra words that are not glossary terms but need saying on hover.
HELP = {
    "use_sample": "Fill the folders with the bundled sample and its masks.",
    "save_project": "Check the data, show 2D/3D and the preview, and save config.yaml in the project folder.",
    "preview_index": "Which image to preview.",
    "test_names": "The test images by name instead of a share, e.g. 'img3, img7' (file names without suffix); "
                  "leave empty to draw the Test share.",
    "predict_which": "Which images to predict: the test images (held back in 01_data, never trained on: honest "
                     "scores), or the folder below (new images; the project's own images were trained on).",
    "z": "Which Z slice to show (3D).",
    "alpha": "How strongly the labels are tinted over the image (0 = invisible, 1 = opaque).",
    "page": "Page of the overlay browser.",
    "lr_accept": "Write the learning rate above into config.yaml for training.",
    "lr_fine_tune": "Fine-tuning (05's 'Start from' a trained model) normally keeps its own rate, a third of the "
                    "default: weights that already segment need smaller steps, and a sweep's rate is for training "
                    "from scratch. Tick to fine-tune at this rate instead (CLI: --lr with --init).",
    "train": "Start training from scratch (the kernel's stop button ends it and keeps the best model).",
    "replace_model": "This project holds a trained model. Training again starts over and replaces it; tick to "
                     "do so. 'Resume from disk' continues its run instead; another "
                     "project folder keeps both (CLI: nbseg train --overwrite).",
    "init": "Start from random weights (scratch), or fine-tune a trained model: a bundled one, or another project "
            "or bioimage.io package. Fine-tuning keeps that model's network and classes and trains at a third of "
            "the default learning rate; it needs fewer labelled images.",
    "init_path": "The model to fine-tune: a project folder (its fold 0 model), a model file (.pt), or a bioimage.io "
                 "package exported by nbseg (.zip or rdf.yaml).",
    "predict": "Predict the chosen images with the chosen models.",
    "export": "Write results as OME-TIFF and the model as TorchScript into the project's export folder.",
    # 06's bioimage.io form: what each field means and why the model zoo asks for it
    "bioimageio_name": "Model name (required, 5-128 characters): the title people see on bioimage.io and in "
                       "deepImageJ, ilastik or napari's model list. Say what it segments, e.g. 'Nuclei in DAPI "
                       "images (mouse)': letters, digits, spaces and _ + - ( ) only.",
    "bioimageio_description": "Description (required): one or two sentences on what the model segments, in which "
                              "images and what it outputs, so others can judge if it fits their data.",
    "bioimageio_authors": "Authors (required): one per line as 'Name; Affiliation; github-user' (affiliation and "
                          "GitHub user optional). bioimage.io credits them and lists them as the people to ask "
                          "about the model; it checks that a GitHub user exists.",
    "bioimageio_license": "License (required): the SPDX identifier of the terms others may reuse the model under. "
                          "CC-BY-4.0 (reuse with credit) is the model zoo's usual choice; MIT, BSD-3-Clause and "
                          "Apache-2.0 are permissive; CC0-1.0 gives up all rights.",
    "bioimageio_cite_text": "Citation (optional): the paper or dataset people should cite when they use the model, "
                            "e.g. 'Doe et al. Nuclei in 3D. Nat Methods 2024.' The U-Net paper is always cited too.",
    "bioimageio_cite_link": "Its DOI (10.xxxx/...) or web address: bioimage.io needs one for every citation so the "
                            "reference can be found.",
    "bioimageio_tags": "Tags (comma-separated): words the model zoo is searched by, e.g. the structure, stain, "
                       "microscope and organism ('nuclei, dapi, fluorescence, mouse').",
    "bioimageio_training_data": "Training data: which images and masks the model learnt from (source, stain, "
                                "microscope, pixel size). A model works best on images like these; bioimage.io "
                                "shows it so users can compare with their own.",
    "bioimageio_output": "Where the package (.zip) is written; deepImageJ, ilastik, napari and bioimage.io's "
                         "upload page open it.",
    "bioimageio_overwrite": "Replace the package if the file exists already (otherwise it is kept and nothing is "
                            "written).",
    # 02's correction loop
    "correct_pool": "The folder of images to make masks for (no masks needed). The model ranks them and proposes "
                    "a segmentation of one at a time.",
    "correct_source": "What proposes the segmentations: a bundled model (nuclei), a trained project or bioimage.io "
                      "package (its path), or 'classic' (smoothing, a threshold and a watershed, set below). After "
                      "each retraining the new round's model proposes.",
    "correct_by": "Which images come next: the most uncertain prediction; where the models (folds) and flipped "
                  "copies (TTA) disagree most; the 8 that together look most like all the images (representative); "
                  "the same among the 16 most uncertain (diverse); among the 24 in which the model finds the "
                  "most objects (crowded); or among the 24 in which it finds the most foreground (dense, the "
                  "default: the surest sign of how much a corrected image holds).",
    "correct_rank": "Rank the images not yet decided and open the first with its proposed segmentation.",
    "correct_save": "Save the shown segmentation (as proposed, or as you corrected it) into the project's "
                    "corrections folder with a record of the decision, then open the next image.",
    "correct_leave": "Leave the shown image out of training (recorded: it is not proposed again).",
    "correct_retrain": "Fine-tune the current model on every saved image, in the background, for the minutes set; "
                       "then rank the remaining images again with the new model.",
    "correct_undo": "Take back the last edit (Undo) or do it again (Redo).",
    "correct_tool": "delete: click an object; paint / erase: drag the brush; add: drag a new object; polygon: click "
                    "corners, double-click to close; merge: click two objects; split: click the two ends of a cut "
                    "line; class: click an object to give it the class number; unlabelled: drag over a region "
                    "nobody should train on.",
    "brush_radius": "The brush's radius in pixels (paint, erase, add, unlabelled).",
    "correct_value": "The class the class tool gives an object; for paint, the object id to paint (0: the object "
                     "under the first point).",
    "correct_whole": "In a stack: edit the whole object on every slice (ticked), or only on the slice shown.",
    "correct_typed": "An edit typed as TOOL y,x; y,x ... [r=radius] [v=value], for when mouse events do not reach "
                     "the notebook, e.g. 'delete 40,52', 'paint 10,10; 10,30 r=4', 'split 5,20; 40,20'.",
    "correct_minutes": "How long each retraining runs (minutes of this machine); 2 is enough to adapt a model to "
                       "a few corrected images on a CPU.",
    "classic_sigma": "Gaussian smoothing in pixels before the threshold (more: smoother outlines, fewer specks).",
    "classic_threshold": "How the threshold is found: Otsu, Li or triangle (from the image), or a value you give "
                         "in the image's intensity units.",
    "classic_dark": "Tick when the objects are darker than the background (brightfield, H&E-stained nuclei).",
    "classic_watershed": "Split touching objects with a watershed from seeds at least this many pixels apart "
                         "(about an object's radius).",
    "classic_min_size": "Objects with fewer pixels than this are dropped (specks).",
    # 00's denoising
    "denoise_images": "The folder of noisy images to learn from and to denoise (2D images or 3D stacks, as in "
                      "01_data). The denoiser learns from these images themselves: no clean images needed.",
    "denoise_train": "Train a Noise2Void (N2V2) denoiser on the noisy images for the minutes set; the plot shows "
                     "its loss and validation score as it learns. 5 minutes is a good start on a CPU.",
    "denoise_replace": "This folder holds a trained denoiser. Training again replaces it; tick to do so. 'Denoise "
                       "images' uses the trained one as it is.",
    "denoise_output": "The folder the denoised copies go to (NAME.denoised.ome.tif); give it as Images in 01_data "
                      "to segment them. The noisy images are left as they are.",
    "denoise_run": "Denoise every noisy image with the trained denoiser into the folder above, then show each "
                   "next to its noisy image.",
    "denoise_which": "Which denoised image to compare with its noisy original.",
    "bioimageio_export": "Write the bioimage.io model package: the model, its test image and output, README with "
                         "the validation figures, and this form's fields; it is kept only if bioimage.io's own test "
                         "passes on it.",
}


def tip(key: str) -> str:
    """Tooltip text for ``key``: a glossary term ('Name: explanation') or a plain help line."""
    if key in TERMS:
        term = TERMS[key]
        return f"{term.name}: {term.text}"
    if key in HELP:
        return HELP[key]
    raise KeyError(f"no glossary term or help text {key!r}")


def glossary_markdown() -> str:
    """docs/glossary.md, generated from :data:`TERMS`."""
    lines = ["# Glossary", "",
             "The terms you meet in nbseg's notebooks, as the panels' tooltips explain them. "
             "Generated from `nbseg/ui/glossary.py` (`python -m nbseg.ui.glossary`); edit there, not here.", "",
             "| Term | What it means in nbseg | Where |", "|---|---|---|"]
    for term in sorted(TERMS.values(), key=lambda t: t.name.lower()):
        lines.append(f"| {term.name} | {term.text} | {term.where} |")
    return "\n".join(lines) + "\n"


def write_glossary(path=None) -> Path:
    path = Path(path or Path(__file__).resolve().parents[2] / "docs" / "glossary.md")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(glossary_markdown(), encoding="utf-8")
    return path


if __name__ == "__main__":
    print(write_glossary())
