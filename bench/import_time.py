"""Import time: wall time of ``python -c "import M"`` in a fresh interpreter, minus a bare
``python -c pass``, median of several runs; nbseg, its heavier modules, and the peers for scale
(``monai``; ``deepflash2.learner`` in its own venv, since ``import deepflash2`` alone loads nothing).

    python bench/import_time.py [--repeats 7] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DF2_PYTHON = ROOT / "bench" / "_work" / "venv-df2" / "bin" / "python"
MODULES = ("nbseg", "nbseg.cli", "nbseg.train", "nbseg.predict", "nbseg.metrics", "torch", "monai")


def wall(python: str, code: str) -> float:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="0")
    started = time.perf_counter()
    subprocess.run([python, "-c", code], check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)
    return time.perf_counter() - started


def measure(module: str, repeats: int, python: str = sys.executable) -> dict:
    wall(python, f"import {module}")  # warm the file cache and write .pyc files
    times = []
    for _ in range(repeats):
        base = wall(python, "pass")
        times.append(max(wall(python, f"import {module}") - base, 0.0))
    return {"module": module, "median_s": round(statistics.median(times), 3), "min_s": round(min(times), 3),
            "max_s": round(max(times), 3)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, help="runs per module (default 7; quick 3)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 7)
    rows = []
    for module in MODULES:
        try:
            rows.append(measure(module, repeats))
        except subprocess.CalledProcessError as err:
            rows.append({"module": module, "error": (err.stderr or b"").decode(errors="replace")[-500:]})
    if DF2_PYTHON.exists():
        try:
            # the package itself is nearly empty; its learner is what a user imports to train
            rows.append(measure("deepflash2.learner", repeats, str(DF2_PYTHON)))
        except subprocess.CalledProcessError as err:
            rows.append({"module": "deepflash2.learner", "error": (err.stderr or b"").decode(errors="replace")[-500:]})
    for row in rows:
        print(f"{row['module']:<16} " + (f"median {row['median_s']:.3f} s (min {row['min_s']:.3f}, max {row['max_s']:.3f})"
                                         if "median_s" in row else f"error: {row['error']}"))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"repeats": repeats, "python": sys.version.split()[0], "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
