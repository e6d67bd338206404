#!/usr/bin/env bash
# Idempotent set-up: a virtual environment in .venv with the CPU build of PyTorch, Blender 5.0 as a module
# and the project itself (editable). A second run only checks the stamp and returns in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
VENV=.venv
STAMP="$VENV/.setup-stamp"
# The stamp covers what is installed: pyproject.toml without its pytest section (test settings need no re-install).
WANT=$(awk '/^\[/ {skip = /^\[tool\.pytest/} !skip' pyproject.toml | cat - scripts/setup.sh | sha256sum | cut -c1-16)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
  exit 0
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV with $($PY --version)"
  "$PY" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"
# torch first and pinned: a bare 'torch' requirement would pull a multi-GB CUDA build.
$PIP install "torch==2.13.0"
$PIP install "bpy==5.0.1"
$PIP install -e ".[dev]"
# OpenAI CLIP's tokenizer and model code (for the released MoMask checkpoints). Without its dependencies:
# they name torchvision, which does not import beside the CPU torch; ftfy and regex come from pyproject.
$PIP install --no-deps "clip-anytorch==2.6.0"
echo "$WANT" > "$STAMP"
echo "setup: done ($VENV)"
