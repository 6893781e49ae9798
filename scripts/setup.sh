#!/usr/bin/env bash
# Creates ./.venv and installs the lab with its test tools. Idempotent: a second run with an unchanged
# pyproject.toml does nothing. Torch is installed first as the CPU build 2.13.0: an unpinned torch would
# download a multi-GB CUDA build (a GPU machine can install its CUDA build of 2.13 instead).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ -f "$stamp" ]; then exit 0; fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e '.[dev]'
rm -f .venv/.installed-*
touch "$stamp"
echo "setup: .venv ready ($(.venv/bin/python -c 'import dagster, polars, torch; print("dagster", dagster.__version__, "polars", polars.__version__, "torch", torch.__version__)'))"
