"""`nbseg notebooks DEST`: copy the notebooks that came with the installed nbseg into a folder, to open
them in JupyterLab (no checkout of the repository needed)."""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

NAMES = ("00_denoise", "01_data", "02_correct", "03_label_qc", "04_lr_finder", "05_train", "06_predict",
         "07_threshold_export")  # 00 is optional: a denoised copy of noisy images for 01


def notebook_folder() -> Path:
    """Where the notebooks are: ``nbseg/notebooks`` in an installed wheel, else ``notebooks/`` of the checkout
    nbseg runs from.

    Raises
    ------
    FileNotFoundError
        Neither holds them (says where it looked).
    """
    package = Path(__file__).resolve().parents[1]
    candidates = (package / "notebooks", package.parent / "notebooks")
    for folder in candidates:
        if all((folder / f"{name}.ipynb").is_file() for name in NAMES):
            return folder
    raise FileNotFoundError(f"The notebooks are in neither {candidates[0]} nor {candidates[1]}: reinstall nbseg "
                            "(pip install --force-reinstall \"nbseg[ui]\") or open notebooks/ in a checkout.")


def copy_notebooks(dest, *, overwrite: bool = False) -> list[Path]:
    """Copy the notebooks into ``dest`` (created); returns the copies.

    Raises
    ------
    FileExistsError
        A notebook of the same name is in ``dest`` and ``overwrite`` is False (your edits are kept).
    """
    dest = Path(dest)
    source = notebook_folder()
    targets = [dest / f"{name}.ipynb" for name in NAMES]
    kept = [t for t in targets if t.exists()]
    if kept and not overwrite:
        raise FileExistsError(f"{len(kept)} notebook(s) already in {dest} (e.g. {kept[0].name}); they are kept. "
                              "Pick another folder, or pass --overwrite to replace them.")
    dest.mkdir(parents=True, exist_ok=True)
    for target in targets:
        shutil.copyfile(source / target.name, target)
    return targets


def register(subparsers) -> None:
    """Add the ``notebooks`` command to ``nbseg``'s sub-command parsers."""
    parser = subparsers.add_parser(
        "notebooks", help="copy the notebooks into a folder, to open them in JupyterLab",
        description="Copy the notebooks 00_denoise (optional), 01_data ... 07_threshold_export that came with this "
                    "nbseg into DEST. Then: jupyter lab DEST. Their projects are written in DEST/projects/.",
        epilog="example:\n  nbseg notebooks my-notebooks\n  jupyter lab my-notebooks",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dest", metavar="DEST", help="folder for the notebooks (created)")
    parser.add_argument("--overwrite", action="store_true", help="replace notebooks already in DEST")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    for path in copy_notebooks(args.dest, overwrite=args.overwrite):
        print(path)
    print(f"Next: jupyter lab {args.dest}")
    return 0
