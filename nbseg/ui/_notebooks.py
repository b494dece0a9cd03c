"""Writes notebooks/00_denoise.ipynb (optional) and 01_data.ipynb ... 07_threshold_export.ipynb and the README's
Open-in-Colab badges (``python -m nbseg.ui._notebooks``). Edit the cells here and re-run, so the notebooks keep
the same setup and structure, and each installs the nbseg it was written for."""
from __future__ import annotations

import re
from pathlib import Path

from .. import __version__
from ..colab import colab_url

ROOT = Path(__file__).resolve().parents[2]  # the repository, when run from a checkout
BADGES = re.compile(r"(<!-- colab-badges -->\n).*?(<!-- /colab-badges -->)", re.S)

SETUP = '''# Setup, only inside Google Colab: install the nbseg this notebook was written for (when it is missing)
# and turn on Colab's widget manager. Colab's own PyTorch is kept. Elsewhere, install nbseg yourself (README).
NBSEG_VERSION = "{version}"
try:
    from google.colab import output as colab_output
except ImportError:
    colab_output = None
if colab_output is not None:
    import importlib, importlib.util, subprocess, sys
    if importlib.util.find_spec("nbseg") is None:
        from importlib.metadata import version
        # Colab's torch and ipywidgets satisfy nbseg; pinned here, pip keeps them (a widget package would pull
        # ipywidgets 8, which Colab's widget manager does not run)
        keep = [f"{{name}}=={{version(name)}}" for name in ("torch", "ipywidgets")]
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"nbseg[ui]=={{NBSEG_VERSION}}", *keep],
                       check=True)
        importlib.invalidate_caches()
    colab_output.enable_custom_widget_manager()'''

PROJECT = '''from nbseg.ui import teaching as nbp
from nbseg.ui import {panel}

SAMPLE = nbp.default_sample()          # "nuclei2d" or "nuclei3d" (or set NBSEG_SAMPLE before starting)
PROJECT = nbp.default_project(SAMPLE)  # the project folder: every notebook reads and writes here
print(f"Project folder: {{PROJECT.resolve()}}   quick mode: {{nbp.quick_mode()}}")'''

AUTORUN = '''# Teaching run (NBSEG_QUICK=1 or NBSEG_AUTORUN=1): press the panel's buttons from code, top to bottom.
if nbp.autorun():
    panel.press_all(strict=True)'''

NOTEBOOKS = {
    "00_denoise": {
        "panel": "DenoisePanel",
        "title": "# 0 · Denoising (optional): a cleaner copy of noisy images before segmenting them",
        "intro": """Images taken with little light (live imaging, fast or gentle acquisition) are **grainy**, and
segmentation fails there first. This optional step learns to remove the grain from **your own noisy images**:
no clean images are needed. Skip it when your images are not noisy.

* **Noise2Void** (N2V2): during training a few pixels of each patch, the **blind spots**, are hidden and the
  network guesses them from their neighbours. Random camera noise cannot be guessed from the neighbours, the
  cells can, so the network learns the cells and leaves the noise out.
* **Practise on** a bundled sample with low-light noise added, or choose your own **noisy images** (a folder of
  2D images or 3D stacks). **Minutes**: 5 is a good start on a CPU; more helps.
* **Train denoiser** shows its loss, and its validation score as a **PSNR against the noisy images** (higher
  is better; it reads lower than a PSNR against clean images would).
* **Denoise images** writes a denoised copy of each image, then shows it **side by side** with the noisy one (one
  slider moves both through a stack) and their **difference**: it should look like fine, even grain, the noise
  that was removed; outlines of nuclei there mean structure was removed too.

Hover over any control to see what it means.""",
        "panel_code": """# The denoiser's own folder (its settings, model and history), and the denoised images' folder
DENOISER = PROJECT.parent / f"{PROJECT.name}_denoiser"
DENOISED = PROJECT.parent / f"{PROJECT.name}_denoised"
panel = DenoisePanel(DENOISER, output=DENOISED, sample_name=SAMPLE, project=PROJECT)
panel""",
        "after": """The denoised images are in the folder `DENOISED` names, under the noisy images' own names (`NAME.ome.tif`:
float32, in the images' own intensities, with their axes and pixel sizes; the noisy files are left as they
are). To segment them, open **01_data** and give that folder as **Images**: masks you already have for `NAME`
pair with them by name, as with the noisy images. The folder says which denoiser made it (`denoised-by.json`):
a project trained on it keeps that denoiser, so 06 denoises new noisy images first. The command line does the
same: `nbseg denoise train` and `nbseg denoise predict` (docs/denoising.md). Next: **01_data**.""",
    },
    "01_data": {
        "panel": "DataPanel",
        "title": "# 1 · Data: images, masks and the project folder",
        "intro": """nbseg learns to segment your images from examples: **raw images** and, for each, a **mask**
(Seg1) that says which pixels belong to the structure (0 = background, 1, 2, ... = classes or objects).
Masks are matched to images by **file name**.

Everything you decide is saved in a **project folder** (`config.yaml`, and later the split, models,
predictions and `logs/ui.log`), so each of the next notebooks can be opened on its own, in a fresh kernel
or a new Colab session.

* No data yet? Pick a **bundled sample**: `nuclei2d` (24 images of nuclei) or `nuclei3d` (2 embryo stacks).
* Optional: **Seg2** (a second segmentation, used where you draw a merging mask in 02) and **excluding
  masks** (regions the training ignores).
* If a file's axes are ambiguous, give them (e.g. `ZYX`, `CYX`); choose **channels** to use only some.
* **Test share** holds back a seeded part of the images (a fifth by default) as the **test set**: never
  trained on, never used to choose anything (validation, early stopping, the threshold), so their scores
  in 06-07 say how the model does on images it has not seen. It is kept in `split.json`; give names
  instead under *or test images*, or 0 for none.
* **No masks yet?** Leave *Masks* empty: notebook **02_correct** makes them with you. Masks labelled only in
  part (some slices, some objects) hold a **not labelled** value: give it, and training ignores those pixels.
* **In Google Colab**: press **Keep project on Google Drive**. A Colab runtime loses its disk when it
  disconnects, and each notebook there runs in a runtime of its own; on Drive the project (and training's
  checkpoints) survive, and the next notebooks find it there (they ask to mount Drive). Keep your images
  on Drive too.

Hover over any control to see what it means.""",
        "panel_code": "panel = DataPanel(PROJECT, sample_name=SAMPLE)\npanel",
        "after": """Press **Check data & save project**. nbseg reads every pair, tells whether the data is
**2D or 3D**, how the labels are read (binary, classes or instances), and shows a preview with the mask
drawn over the image (a 3D view too for stacks), and which images are held back as the **test set**.
Next: **02_correct** to make or correct masks,
**03_label_qc** to check them, or **04_lr_finder**.""",
    },
    "02_correct": {
        "panel": "CorrectPanel",
        "title": "# 2 · Masks: start from nothing, correct and retrain",
        "intro": """Making masks is the slow part. Here a model (or a classic workflow) **proposes** a
segmentation and you **correct** it, which is much quicker than drawing from scratch; then the model
**retrains** on what you saved and proposes better, round after round.

* **Proposals from**: the bundled **nuclei** model (2D), a trained project or bioimage.io package, or the
  **classic** workflow (smoothing, a threshold and a watershed, with a live preview).
* **Rank images** puts first 8 images, among the 24 where the model finds the most foreground, that together
  look most like all of yours (**dense**, the default: chosen on data by `bench/suggest_protocol.py`); or the same
  among the 24 where it finds the most objects (**crowded**), or the 8 that look most like all of yours of any
  kind, or the one the model is least sure of, or where its copies disagree.
* Correct on the image with the **tools**: delete an object (click), paint and erase (drag the brush), add
  one (drag, or click polygon corners and double-click), merge two, split one along a cut line, change an
  object's class, or mark a region **not labelled** (training ignores it). **Undo** and **Redo**. Without
  mouse events, type an edit (`delete 40,52`).
* **Save & next** keeps the image as shown (proposed or corrected) in the project at once, with a record of
  what you decided; **Leave out** skips it. A new kernel or Colab session goes on at the next image.
* **Retrain** fine-tunes the current model on every saved image for a few minutes, in the background,
  and ranks the rest again; the **Rounds** table shows each round: its images, your edits, its validation
  Dice and, when 01 held back a **test set**, its F1@0.5 and Dice there (`test_f1`, `test_dice`: images no
  round trains on, so these say what each round gained).""",
        "panel_code": "panel = CorrectPanel(PROJECT)\npanel",
        "after": """Saved masks are in the project's `corrections/` folder; after a retraining the project's
images and masks are the saved ones (plus any masks you had), so the next notebooks use them. Already have
masks for every image? Skip this notebook, or use it later to fix what the model gets wrong. Next:
**03_label_qc**.""",
    },
    "03_label_qc": {
        "panel": "LabelQCPanel",
        "title": "# 2 · Label quality: look at the masks before training on them",
        "intro": """A model learns the mistakes in its masks too. This notebook helps you find them:

* the **QC table** flags doubtful masks (empty, odd sizes, wrong label kind, duplicates, outliers);
  the **overlay browser** shows them page by page, sorted by those flags;
* masks from **several experts** become one **ground truth** by **STAPLE** (weighs each expert by
  estimated reliability) or **majority vote**, with each expert's score;
* **Seg1/Seg2 merge**: where you draw a **merging mask**, Seg2 replaces Seg1;
* **excluding masks**: draw polygons around regions the loss should ignore: click their corners on
  the image and double-click the last one (or type the corners as y,x pairs).""",
        "panel_code": "panel = LabelQCPanel(PROJECT)\npanel",
        "after": """Saved excluding and merging masks are written into the project's `labels/` folder and
entered in `config.yaml`, so training (04) uses them. Next: **04_lr_finder**.""",
    },
    "04_lr_finder": {
        "panel": "LRPanel",
        "title": "# 3 · Learning rate: a short sweep that suggests one",
        "intro": """The **learning rate** is how big a step each training update takes. Too small and
training crawls; too large and the loss jumps or diverges.

The **LR finder** trains briefly while raising the learning rate from 1e-6 towards 1, records the loss,
stops once the loss explodes, and suggests the rate where the loss **falls fastest** (the red line). The
model is put back as it was: the sweep only looks.""",
        "panel_code": "panel = LRPanel(PROJECT)\npanel",
        "after": """Press **Run LR sweep**, look at the curve, then **Use suggested rate** to save it into
`config.yaml` (you may type another value first). The rate is for training from scratch: fine-tuning a
trained model (05's **Start from**) keeps its own, smaller rate unless you tick **Use this rate for
fine-tuning too**; the line above the button says which rate training will use. Next: **05_train**.""",
    },
    "05_train": {
        "panel": "TrainPanel",
        "title": "# 4 · Training the U-Net",
        "intro": """Training shows the U-Net many **patches** (pieces of your images) with their masks and
nudges its weights to lower the **loss**. After each **epoch** it scores the held-back **validation**
images with **Dice** (overlap, 0..1) and keeps the best model.

* **Model size** S/M/L: smaller trains faster, larger may learn harder structures.
* **Patch size**: must contain the structure; each pooled side divisible by 8 (16 for L) — checked as
  you type.
* **Epochs** or **minutes**, **batch size**, **folds** (K ≥ 2 trains an ensemble of K models).

Training runs in the kernel in the foreground: the kernel's **stop button (■)** ends it cleanly and keeps
the best model; **Resume from disk** continues later, even in a new session. Watch the plot: if the
training loss falls while the validation loss rises, the model is **overfitting**.""",
        "panel_code": "panel = TrainPanel(PROJECT)\npanel",
        "after": """Models are in the project's `models/` folder (`fold0.pt`, ...), the per-epoch history
in `history/`. Once a model is there, **Train** starts over only with **Replace the trained model** ticked
(**Resume from disk** continues its run instead). Next: **06_predict**.""",
    },
    "06_predict": {
        "panel": "PredictPanel",
        "title": "# 5 · Prediction: probability and uncertainty maps",
        "intro": """**Inference** runs the trained model(s) over new images, in overlapping **tiles**, and
gives a **probability map**: per pixel, how likely it belongs to the structure.

* **Models**: one, or all folds as an **ensemble** (their maps are averaged).
* **TTA** (test-time augmentation): also predict flipped/rotated copies and average — smoother maps.
* **Uncertainty** marks where models and TTA copies disagree; images are **ranked by uncertainty**, so
  you can check (or annotate next) the doubtful ones first.
* **Images**: the **test images** held back in 01 by default (never trained on, so their scores are
  honest), or a folder of new images. Images the models trained on, or validated with, get a **warning**:
  scores of them are inflated.""",
        "panel_code": "panel = PredictPanel(PROJECT)\npanel",
        "after": """Maps are saved in the project's `predictions/` folder. Next: **07_threshold_export**.""",
    },
    "07_threshold_export": {
        "panel": "ExportPanel",
        "title": "# 6 · Threshold, objects, scores and export",
        "intro": """A probability map becomes a mask by a **threshold**: pixels above it are foreground.
Move the slider and watch the overlay, or take **Otsu**'s threshold chosen from the histogram. The
**threshold sweep** scores every threshold on the **validation** images (each predicted by the model that
did not train on it), never on the test images: a threshold chosen on them would flatter their scores.
For a **multi-class** model the slider thresholds the probability of any class (1 minus the background's),
each kept pixel takes its most probable class, the metrics give Dice and IoU per class and the exported
mask holds the class numbers.

**Instances** splits the mask into separate objects: for a model trained on instance labels, a
**watershed** grown from the predicted object interiors separates touching objects; otherwise each
connected part of the mask is one object; a table measures each (centroid, size in pixels and µm,
bounding box, mean intensity) beside a histogram of the sizes. The **metrics** table gives Dice, IoU
and F1 at IoU 0.5 per image, for the test and new images among those predicted; if there are only
images the models trained on or validated with, it scores those with a **warning**: their scores are
inflated. **Export** writes the results as **OME-TIFF** (Fiji, napari, QuPath read
them), each image's objects as `NAME.objects.csv`, and the model as **TorchScript**, which runs without
nbseg.

To **share the model**, open *Share the model on bioimage.io* at the bottom: a form, prefilled from the
project, asks for the name, authors, license, citation, tags and training data (hover over a field to see
what it means and why bioimage.io asks for it) and writes a **bioimage.io model package** that deepImageJ,
ilastik and napari open; it is kept only if bioimage.io's own test passes on it.""",
        "panel_code": "panel = ExportPanel(PROJECT)\npanel",
        "after": """Everything is in the project's `export/` folder. To segment more images later, open
**06_predict** with the same project folder.""",
    },
}


def build(name: str):
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    spec = NOTEBOOKS[name]
    cells = [
        new_markdown_cell(spec["title"] + "\n\n" + spec["intro"]),
        new_code_cell(SETUP.format(version=__version__)),
        new_markdown_cell("The project folder and the sample. Change `PROJECT` to your own folder to work on "
                          "your data; keep it the same in every notebook."),
        new_code_cell(PROJECT.format(panel=spec["panel"])),
        new_code_cell(spec["panel_code"]),
        new_markdown_cell(spec["after"]),
        new_code_cell(AUTORUN),
    ]
    nb = new_notebook(cells=cells, metadata={
        "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    })
    for cell in nb.cells:  # stable ids keep diffs small
        cell["id"] = f"{name}-{nb.cells.index(cell)}"
    nbformat.validate(nb)
    return nb


def badges() -> str:
    """The README's table of notebooks with an Open-in-Colab badge each (from nbseg.colab.REPOSITORY)."""
    rows = ["| notebook | open in Colab |", "|---|---|"]
    for name in NOTEBOOKS:
        badge = "https://colab.research.google.com/assets/colab-badge.svg"
        rows.append(f"| `notebooks/{name}.ipynb` | [![Open {name} in Colab]({badge})]({colab_url(name)}) |")
    return "\n".join(rows) + "\n"


def write_badges(readme=None) -> Path:
    """Replace what stands between ``<!-- colab-badges -->`` and ``<!-- /colab-badges -->`` in the README."""
    readme = Path(readme or ROOT / "README.md")
    text = readme.read_text(encoding="utf-8")
    if not BADGES.search(text):
        raise ValueError(f"{readme} has no '<!-- colab-badges -->' ... '<!-- /colab-badges -->' block: add the two "
                         "markers where the Open-in-Colab badges belong, then run this again.")
    readme.write_text(BADGES.sub(lambda m: m.group(1) + badges() + m.group(2), text), encoding="utf-8")
    return readme


def write_all(folder=None) -> list[Path]:
    import nbformat

    folder = Path(folder or ROOT / "notebooks")
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in NOTEBOOKS:
        path = folder / f"{name}.ipynb"
        nbformat.write(build(name), path)
        paths.append(path)
    return paths


if __name__ == "__main__":
    for p in write_all():
        print(p)
    print(write_badges())
