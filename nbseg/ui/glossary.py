"""The terms users meet in the panels, explained in nbseg's words. Every control's tooltip comes from
here, and ``docs/glossary.md`` is generated from the same dictionary (``python -m nbseg.ui.glossary``)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Term:
    name: str
    text: str
    where: str  # the notebook(s) and control where it appears


T = Term
TERMS: dict[str, Term] = {
    # ----------------------------------------------------------- 01 data
    "project": T("Project folder", "One folder per segmentation task. nbseg keeps the settings (config.yaml), the "
                 "train/validation split, checkpoints, models, predictions and logs/ui.log in it, so any notebook "
                 "can be opened later in a fresh kernel and pick up from disk.", "01_data: Project folder"),
    "raw_image": T("Raw image", "The microscope image to segment: TIFF, OME-TIFF, PNG; CZI, ND2 or LIF through bioio "
                   "once their reader is installed (pip install 'nbseg[czi]', 'nbseg[nd2]' or 'nbseg[lif]'). "
                   "Give the folder that holds them; masks are matched to images by file name.", "01_data: Images"),
    "mask": T("Segmentation mask (Seg1)", "An image of the same size as its raw image in which each pixel says what it "
              "belongs to: 0 = background, 1, 2, ... = classes or objects. Same file name as the image. These are "
              "the labels the model learns from.", "01_data: Masks (Seg1)"),
    "ground_truth": T("Ground truth", "The masks taken as correct for training and scoring. With several experts' "
                      "masks, nbseg builds one by STAPLE or majority vote (03_label_qc).", "01_data, 03_label_qc"),
    "annotation": T("Annotation / image segmentation", "Marking which pixels belong to the structure. Segmentation "
                    "assigns every pixel a label; the U-Net learns to do it from your annotated examples.",
                    "01_data"),
    "seg2": T("Seg2", "Optional second segmentation of the same images, e.g. one that works during mitosis where Seg1 "
              "works in interphase. It replaces Seg1 only inside the merging mask.", "01_data: Seg2; 03_label_qc"),
    "merging_mask": T("Merging mask", "Drawn shapes where Seg2 overwrites Seg1. Rule: it has the same shape as the "
                      "image; nonzero pixels take Seg2, the rest keep Seg1.", "03_label_qc: Merge"),
    "excluding_mask": T("Excluding mask", "Regions left out of training, e.g. badly labelled areas. Rule: the loss "
                        "ignores every nonzero pixel of it (they count neither as object nor background).",
                        "01_data: Excluding masks; 03_label_qc: Draw"),
    "unlabelled": T("Not labelled value", "The mask value that means 'nobody labelled this pixel', for masks labelled "
                    "on some slices of a stack or in part of an image. Rule: those pixels count in neither the loss, "
                    "the validation Dice, the plan nor patch sampling; no default, because 255 is foreground in many "
                    "masks (CLI: --unlabelled V).", "01_data: Not labelled value; 03_label_qc"),
    "roi": T("ROI (region of interest)", "A drawn region, here a polygon whose corners you click on the image "
             "(double-click closes it) or type as y,x pixel pairs; it becomes a merging or excluding mask.",
             "03_label_qc: Corners"),
    "sample": T("Bundled sample", "Example data shipped inside nbseg: nuclei2d (24 fluorescence images, 256x256) or "
                "nuclei3d (2 embryo stacks, 51x120x122), both with instance masks.", "01_data: Sample"),
    "axes": T("Axes", "The order of the file's dimensions when the file does not say, e.g. YX, CYX, ZYX, ZCYX, YXC. "
              "Leave empty to read them from the file.", "01_data: Axes"),
    "channels": T("Channels", "Which colour channels to feed the model, e.g. 0 or 0,2. Leave empty to use all.",
                  "01_data: Channels"),
    "dims": T("Image dimension (2D or 3D)", "2D images are trained with 2D convolutions, 3D stacks with 3D ones. "
              "nbseg detects it from the files; set it when a 3-axis file is ambiguous.", "01_data: Dimension"),
    "tensor": T("Tensor", "A multi-dimensional array of numbers; nbseg feeds the model tensors shaped (batch, "
                "channels, [Z,] Y, X).", "01_data: preview"),
    "labels_kind": T("Label kind", "binary (0/1 or 0/255), multiclass (0..K-1), or instances (one number per object, "
                     "trained as background/interior/boundary so touching objects come apart). auto guesses it.",
                     "01_data: Labels"),
    "instances": T("Instance labels (semantic vs instance)", "Semantic segmentation says which class a pixel is; "
                   "instance segmentation also says which object: every nucleus gets its own number.",
                   "01_data: Labels; 06: Instances"),
    "classes": T("Classes", "How many label categories, background included: 2 for object/background.",
                 "01_data: Labels"),
    "val_fraction": T("Training / validation / test set", "Training images teach the model; the validation share "
                      "(here 0.2 = 20%) picks the best epoch and settings; a test set is kept apart. Rule: the test "
                      "set is never used for training or for choosing settings.", "01_data: Validation share"),
    "test_fraction": T("Test set", "Images held back before training (here a seeded share, e.g. 0.2 = 20%, kept "
                       "in split.json once drawn): never trained on, never used for validation, early stopping or "
                       "the threshold. Only their scores (or those of new images) say how the model does on data it "
                       "has not seen; scores of trained-on or validation images are inflated, and notebooks 06-07 "
                       "and nbseg evaluate say so. CLI: nbseg train --test-fraction 0.2 (or --test-images a,b).",
                       "01_data: Test share; 06_predict: Images"),
    "class_imbalance": T("Class-imbalanced dataset", "When objects cover few pixels, random patches show mostly "
                         "background; nbseg centres a share of patches on objects (foreground fraction 0.5) so rare "
                         "classes are seen often enough.", "05_train"),
    # ----------------------------------------------------------- 02 label QC
    "qc_flags": T("QC flags", "Warnings about a mask: empty, tiny objects, objects touching the border, a mask that "
                  "disagrees with another expert. Sort by them to look at doubtful masks first.",
                  "03_label_qc: Sort by"),
    "staple": T("STAPLE", "Estimates the true mask and each expert's reliability (sensitivity, specificity) from "
                "several experts' masks; reliable experts weigh more.", "03_label_qc: Combine experts"),
    "majority": T("Majority vote", "Each pixel gets the label most experts gave. Simple, but blind to which expert is "
                  "more skilled.", "03_label_qc: Combine experts"),
    # ----------------------------------------------------------- 03/04 model and training
    "model": T("Model / segmentation model / neural network", "A function with millions of adjustable numbers that "
               "turns an image into a per-pixel prediction; training adjusts the numbers to your masks.",
               "04_lr_finder, 05_train"),
    "unet": T("U-Net", "The network nbseg trains: an encoder that pools the image down to see context, a decoder that "
              "upsamples back to full size, and skip connections that keep fine detail.", "05_train: Model size"),
    "layer": T("Layer / neuron / convolutional layer / kernel / feature maps", "A layer transforms its input; in a "
               "convolutional layer small kernels (3x3 or 3x3x3 weights) slide over the image and each produces a "
               "feature map. Each output value is one neuron.", "05_train: Model size"),
    "activation": T("Activation function / pooling", "After each convolution a ReLU keeps positive values (the "
                    "activation); pooling halves the image size so deeper layers see a wider area.",
                    "05_train: Model size"),
    "receptive_field": T("Receptive field / same convolution", "How many pixels around a pixel the model can see. "
                         "nbseg uses 'same' (padded) convolutions, so outputs keep the input's size.",
                         "05_train: Patch size"),
    "capacity": T("Capacity / residual block", "How much a model can learn, roughly its number of weights. Larger "
                  "models can learn harder structures but train slower and may overfit small data.",
                  "05_train: Model size"),
    "model_size": T("Model size S/M/L", "S: 4 levels, 16-128 channels, fastest; M: 4 levels, 32-256 channels; L: 5 "
                    "levels, 32-512 channels. Smaller trains faster; larger may learn harder structures.",
                    "05_train: Model size"),
    "patch": T("Patch size", "The piece of image the model sees at once, Y,X (2D) or Z,Y,X (3D). Rules: it must "
               "contain the structure of interest; each pooled side is divisible by 8 (S, M) or 16 (L), a Z below 8 "
               "is not pooled; in 2D there is no Z entry; larger patches cost memory and time.",
               "05_train: Patch size"),
    "batch_size": T("Batch size / minibatch", "How many patches are processed together in one training step. "
                    "Larger batches give smoother steps but need more memory (default 8).", "05_train: Batch size"),
    "step": T("Training step", "One batch forward, the loss, back-propagation and one weight update.",
              "05_train: Steps per epoch"),
    "epoch": T("Epoch (number of epochs)", "Here: a fixed number of training steps (steps per epoch), followed by "
               "validation; the best epoch's model is kept.", "05_train: Epochs"),
    "minutes": T("Training time", "A time budget in minutes instead of a number of epochs; the learning-rate "
                 "schedule stretches over it.", "05_train: Minutes"),
    "steps_per_epoch": T("Steps per epoch", "Training steps between two validations (default: planned, 32 for 2D images).",
                         "05_train: Steps per epoch"),
    "lr": T("Learning rate", "How big a step gradient descent takes on each update. Too small: slow; too large: the "
            "loss jumps or diverges. The LR finder suggests one (default 3e-3).", "04_lr_finder, 05_train"),
    "working_scale": T("Working scale", "The resolution the network trains and predicts at, as a share of the "
                       "images' own: 0.5 halves width and height, so large objects fit the network's view and each "
                       "step sees four times the area. Results are brought back to the images' size. Planned from "
                       "the objects' size and how well the labels survive it.", "05_train: Working scale"),
    "label_offset": T("Label offset", "How far, in fractions of a pixel, the masks sit from the structures they "
                      "mark (a drawing tool's pixel convention, or an annotator who always draws on one side of a "
                      "membrane). Flips cannot teach a network a constant offset, so nbseg measures it; when the "
                      "images agree on one of a quarter pixel or more, the network moves its input by it first "
                      "(plan line input_shift; model.input_shift: [0, 0] turns it off).", "05_train: plan"),
    "lr_finder": T("LR finder", "A short sweep that trains with a learning rate rising from 1e-6 to 1 and records "
                   "the loss; it stops when the loss exceeds 4x its best and suggests the rate where the loss falls "
                   "fastest. The model is put back as it was.", "04_lr_finder: Run sweep"),
    "hyperparameter": T("Hyperparameter / parameters / weights and bias", "Parameters (weights and biases) are "
                        "learnt by training; hyperparameters (learning rate, batch size, patch size, epochs) are "
                        "chosen by you before training.", "04_lr_finder, 05_train"),
    "loss": T("Loss function / loss value", "A number saying how wrong the prediction is; training lowers it. nbseg "
              "uses Dice loss + cross-entropy, which is differentiable so gradients exist.", "05_train: plot"),
    "gradient_descent": T("Gradient descent / back-propagation", "Back-propagation computes how each weight changes "
                          "the loss (the gradient); gradient descent moves each weight a learning-rate-sized step "
                          "downhill.", "04_lr_finder"),
    "augmentation": T("Augmentation", "Random flips, 90-degree rotations, small warps and intensity changes of the "
                      "training patches; the label is transformed with the image. It teaches the model to ignore "
                      "such changes.", "05_train: Augment"),
    "overfitting": T("Overfitting / generalization / regularization", "Overfitting: training loss falls while "
                     "validation loss rises: the model memorises instead of generalizing to new images. Weight "
                     "decay, augmentation and early stopping regularize.", "05_train: plot"),
    "early_stopping": T("Early stopping (patience)", "Stop when the validation Dice has not improved for this many "
                        "epochs. Empty: never stop early.", "05_train: Patience"),
    "folds": T("Folds / ensemble training", "1 trains one model. K >= 2 splits the images into K parts and trains "
               "K models, each validated on another part; predicting with all of them and averaging is an "
               "ensemble.", "05_train: Folds; 06_predict: Models"),
    "transfer_learning": T("Transfer learning", "Starting from weights trained on other images instead of random "
                           "ones; 'Resume' continues this project's own checkpoint.", "05_train: Resume"),
    "resume": T("Resume", "Continue training from the checkpoint saved after each epoch in the project folder "
                "(checkpoints/), e.g. after the kernel was restarted or stopped.", "05_train: Resume"),
    "gpu": T("GPU", "A graphics card runs the many small multiplications of a U-Net in parallel, often 10-50x faster "
             "than a CPU. nbseg uses one when present (device auto).", "05_train: device"),
    # ----------------------------------------------------------- 05/06 prediction and results
    "inference": T("Inference / prediction", "Running the trained model on images, tile by tile, to get a "
                   "probability map.", "06_predict: Predict"),
    "probability_map": T("Probability map / logits", "Per pixel, the model's probability (0..1) that it belongs to "
                         "the structure. Logits are the raw outputs before softmax turns them into "
                         "probabilities.", "06_predict: viewer"),
    "tta": T("TTA, test-time augmentation", "Predict on flipped/rotated copies of the image and average the "
             "results after undoing the flips: smoother, more reliable maps, at 2-8x the prediction time.",
             "06_predict: TTA"),
    "tile": T("Tiles", "Large images are predicted in overlapping tiles of this size that are blended together, so "
              "memory stays bounded. Each side follows the patch-size rule.", "06_predict: Tile size"),
    "uncertainty": T("Uncertainty", "Where the models of the ensemble and the TTA copies disagree (their spread). "
                     "High uncertainty marks images or regions worth checking or annotating next.",
                     "06_predict: ranking"),
    "threshold": T("Thresholding value", "The probability above which a pixel counts as foreground, 0..1 (0.5 by "
                   "default). Lower finds more, higher finds less.", "07_threshold_export: Threshold"),
    "otsu": T("Otsu threshold", "A threshold chosen automatically from the histogram of the probability map: the "
              "value that best separates its two peaks.", "07_threshold_export: Otsu"),
    "binary": T("Thresholded binary image", "The mask after thresholding: 1 where the probability is above the "
                "threshold, 0 elsewhere.", "07_threshold_export: preview"),
    "sweep": T("Threshold sweep", "Scores the thresholds 0.05..0.95 against the ground truth and marks the best; "
               "only where masks for the predicted images exist.", "07_threshold_export: Sweep"),
    "dice": T("Dice", "Overlap of prediction P and truth T: 2|P∩T| / (|P|+|T|), from 0 (none) to 1 (perfect).",
              "05_train plot, 06 metrics"),
    "iou": T("IoU", "Intersection over union |P∩T| / |P∪T|, 0..1; always at most Dice.", "06 metrics"),
    "ap": T("F1 / AP at an IoU threshold", "Objects are matched when their IoU exceeds a threshold (e.g. 0.5); F1 "
            "and average precision count matched, missed and extra objects.", "06 metrics"),
    "metric_vs_loss": T("Metric vs loss", "A metric scores results for people; a loss must be differentiable for "
                        "training. Counting objects (AP) has no gradient, so it is a metric, not a loss.",
                        "06 metrics"),
    "export_model": T("Model weights / exported model file", "The .pt file in models/ holds weights plus what is "
                      "needed to reuse them (normalisation, classes, patch); the TorchScript export runs without "
                      "nbseg, in Python or C++.", "07_threshold_export: Export"),
    "ome_tiff": T("OME-TIFF", "TIFF with standard metadata (axes, pixel sizes) that Fiji, napari and QuPath "
                  "read.", "07_threshold_export: Export"),
}

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
                  "or the same among the 16 most uncertain (diverse).",
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
