"""Every `nbseg ...` command the README shows runs as written, on the bundled 2D sample copied into the
folders the README names (raw/, labels/, new_images/, ground_truth/, expert1/ ...). Only the training
budgets shrink (README's 10 minutes, the default sweep and the default epochs would take long): each
change is listed in TINY. Commands beyond one machine (`--cluster`, torchrun) are in docs/scaling.md's
tests, not here."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from nbseg.denoise.noise import low_light, scale_to_unit

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "nbseg" / "samples" / "nuclei2d"
# README command (as written, comment removed) -> what runs instead: only budgets change
TINY = {
    "nbseg train --images raw/ --masks labels/ --project myproject --minutes 10":
        "nbseg train --images raw/ --masks labels/ --project myproject --minutes 0.1",
    "nbseg lr-find --images raw/ --masks labels/ --project myproject":
        "nbseg lr-find --images raw/ --masks labels/ --project myproject --steps 8",
    "nbseg train --images raw/ --masks labels/ --project mine --init myproject":
        "nbseg train --images raw/ --masks labels/ --project mine --init myproject --minutes 0.1",
    "nbseg train --images corrected/images --masks corrected/masks --project round1 --init nuclei --minutes 2":
        "nbseg train --images corrected/images --masks corrected/masks --project round1 --init nuclei --minutes 0.1",
    "nbseg train --images raw/ --masks partial/ --unlabelled 65535 --project partly --minutes 10":
        "nbseg train --images raw/ --masks partial/ --unlabelled 65535 --project partly --minutes 0.1",
    "nbseg denoise train --images noisy/ --project dn --minutes 5":
        "nbseg denoise train --images noisy/ --project dn --minutes 0.1",
}
ONE_MACHINE = ("--cluster", "torchrun")


def readme_commands() -> list[str]:
    """The `nbseg ...` lines of the README's bash blocks, in order, comments removed."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            command = re.sub(r"\s+#.*$", "", line).strip()
            if command.startswith("nbseg ") and not any(m in command for m in ONE_MACHINE):
                lines.append(command)
    return lines


def _folders(tmp: Path) -> None:
    """The README's folders, from the sample: 8 training pairs, 2 new images with their ground truth,
    4 noisy images and their clean versions, and three 'experts' whose masks are the sample's."""
    images, masks = sorted((SAMPLE / "images").glob("*.tif")), sorted((SAMPLE / "masks").glob("*.tif"))
    for folder, files in (("raw", images[:8]), ("labels", masks[:8]), ("new_images", images[8:10]),
                          ("ground_truth", masks[8:10])):
        (tmp / folder).mkdir()
        for f in files:
            shutil.copy(f, tmp / folder / f.name)
    for kind, files in (("images", images[:2]), ("masks", masks[:2])):  # two corrected images
        (tmp / "corrected" / kind).mkdir(parents=True)
        for f in files:
            shutil.copy(f, tmp / "corrected" / kind / f.name)
    (tmp / "partial").mkdir()  # every second nucleus not labelled (65535)
    for f in masks[:8]:
        mask = tifffile.imread(f).astype(np.uint16)
        tifffile.imwrite(tmp / "partial" / f.name, np.where(np.isin(mask, np.arange(1, mask.max() + 1, 2)),
                                                            65535, mask).astype(np.uint16))
    for folder in ("noisy", "clean"):  # the denoising lines: the images with low-light noise, and as they are
        (tmp / folder).mkdir()
    for i, f in enumerate(images[:4]):
        tifffile.imwrite(tmp / "clean" / f.name, scale_to_unit(tifffile.imread(f)))
        tifffile.imwrite(tmp / "noisy" / f.name, low_light(tifffile.imread(f), rng=i))
    for k, folder in enumerate(("expert1", "expert2", "expert3")):  # binary masks, as experts draw them
        (tmp / folder).mkdir()
        for f in masks[:3]:
            mask = tifffile.imread(f) > 0
            mask[:, : 2 * k] = False  # experts differ a little
            tifffile.imwrite(tmp / folder / f.name, mask.astype(np.uint8))


def test_readme_lists_the_commands_this_test_shrinks():
    commands = readme_commands()
    assert len(commands) >= 10
    assert set(TINY) <= set(commands), "README changed: update TINY to its commands"


@pytest.mark.slow
@pytest.mark.release
def test_every_readme_command_runs_as_written(tmp_path):
    _folders(tmp_path)
    failed = []
    for command in readme_commands():
        run = TINY.get(command, command)
        args = [sys.executable, "-m", "nbseg", *shlex.split(run)[1:]]
        done = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                              env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)})
        if done.returncode != 0:
            failed.append(f"{command}\n  -> exit {done.returncode}: {(done.stderr or done.stdout)[-600:]}")
    assert not failed, "README commands that fail as written:\n" + "\n".join(failed)
