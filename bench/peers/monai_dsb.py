"""MONAI on the DSB2018 fluorescence split: bench/peers/monai_unet.py with 2D defaults and instance
output (connected components). Same options; see that file for what the peer does."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from monai_unet import main  # noqa: E402

if __name__ == "__main__":
    argv = sys.argv[1:]
    argv += [] if "--dims" in argv else ["--dims", "2"]
    argv += [] if "--instances" in argv else ["--instances"]
    sys.exit(main(argv))
