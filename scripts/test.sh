#!/usr/bin/env bash
# Sets up the lab and runs the whole test suite (offline, deterministic).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pytest -n 2 "$@"
