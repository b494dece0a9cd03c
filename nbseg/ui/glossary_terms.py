"""The glossary's terms: what each word the panels use means, in nbseg's words, and where it appears.
:mod:`.glossary` adds the controls' help lines, makes the tooltips and writes ``docs/glossary.md``."""
from __future__ import annotations

from dataclasses import dataclass


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
                      "set is never used for training or for choosing settings. With fewer than 13 images (one fold), "
                      "each image holds back a band of that share instead, so every image trains.",
                      "01_data: Validation share"),
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
    # ----------------------------------------------------------- 00 denoising (optional, before 01)
    "denoising": T("Denoising / restoration", "Removing the grain (noise) of low-light images while keeping the "
                   "structures, so that segmentation sees the nuclei rather than the speckle. nbseg writes a "
                   "denoised copy of each image (NAME.denoised.ome.tif) that 01_data can use as its images; the "
                   "raw files are left as they are.", "00_denoise"),
    "n2v": T("Noise2Void (N2V, N2V2)", "A way to learn denoising from the noisy images alone, without clean "
             "images: the network predicts each pixel from its neighbours only. Random camera noise differs from "
             "pixel to pixel and cannot be guessed from the neighbours, the cell's structure can, so what the "
             "network learns is the structure. N2V2 is the improved version nbseg trains (no chequerboard "
             "artefacts). Rule: it removes noise that is independent from pixel to pixel, not blur or stripes.",
             "00_denoise: Train denoiser"),
    "blind_spot": T("Blind spot", "The pixels hidden from the network while it learns: about 1 in 500 in each "
                    "patch, each replaced by the median of its neighbours. The network must guess them from their "
                    "surroundings, and its error there is the loss; it never sees the value it must predict.",
                    "00_denoise: plot"),
    "care": T("CARE (content-aware restoration)", "Restoration learnt from pairs of images of the same sample: a "
              "noisy (low-light, fast) one and a clean (high-light, slow) one. It can do more than Noise2Void, "
              "but needs those pairs; Noise2Void needs only the noisy images. CLI: nbseg denoise train --images "
              "noisy/ --targets clean/ (pairs matched by name).", "nbseg denoise train --targets"),
    "psnr": T("PSNR (peak signal-to-noise ratio)", "How close an image is to a reference, in decibels: higher is "
              "closer; +3 dB is about half the squared error, +10 dB a tenth. While training without clean images "
              "nbseg reports it against the noisy values themselves ('val PSNR vs noisy'), which reads lower than "
              "against clean images. nbseg evaluate --kind restoration gives it against clean images.",
              "00_denoise: plot; nbseg evaluate"),
    "ssim": T("SSIM (structural similarity)", "How alike two images look in local brightness, contrast and "
              "structure, from 0 (unrelated) to 1 (identical); closer to what the eye sees than PSNR. Needs a clean "
              "reference image (nbseg evaluate --kind restoration).", "nbseg evaluate"),
    "seed_threshold": T("Seed threshold", "How objects are split: each region where the model is at least this "
                        "sure of an object's interior (0 to 1) seeds one object, which then grows to the object's "
                        "edge. Higher splits touching objects more readily; too high breaks one object into pieces. "
                        "nbseg chooses it after training on the validation images (best F1@0.5) and keeps it with the "
                        "model; nbseg train prints it. CLI: nbseg predict --seed-threshold 0.8.",
                        "06_predict: Instances; nbseg predict --seed-threshold"),
    "denoise_difference": T("Difference view", "Denoised minus noisy, per pixel: blue where denoising lowered the "
                            "value, red where it raised it. Good denoising leaves fine, even grain here (the noise "
                            "it removed); outlines of cells or nuclei in it mean structure was removed too.",
                            "00_denoise: compare"),
}
