#!/usr/bin/env bash
# Create bench/_work/venv-df2 with deepflash2 0.3.0 (its own venv: it pins its own torch/fastai).
# Idempotent: a stamp file marks a finished install. Prints the install time in seconds.
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${DF2_VENV:-$HERE/_work/venv-df2}"
PYTHON="${PYTHON:-python3}"
STAMP="$VENV/.df2-installed"
if [ -f "$STAMP" ]; then
  echo "deepflash2 venv ready: $VENV ($(cat "$STAMP"))"
  exit 0
fi
start=$(date +%s)
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --upgrade pip wheel
"$VENV/bin/python" -m pip install torch==2.14.1 torchvision==0.29.1 deepflash2==0.3.0 tifffile
took=$(( $(date +%s) - start ))
echo "installed in ${took}s, $(du -sh "$VENV" | cut -f1)" > "$STAMP"
echo "deepflash2 venv ready: $VENV (installed in ${took}s)"
