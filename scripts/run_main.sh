#!/usr/bin/env bash
# Sets up the lab and runs the core research pipeline end to end on the embedded default universe (synthetic,
# offline) as ONE Dagster action: an asset backfill of the `core_research` group for one universe and a month
# range (quantlab_assets/pipeline.py), recorded on the instance of $DAGSTER_HOME like a backfill launched from
# the UI. Dagster runs it in dependency order, one run per step of the graph:
#   universe table and raw bars -> cleaned bars (+ quarantine), labels, features and market state, every month
#   from 2005-01 to the current month -> the FFD diagnostic, purged CV folds, regime models (filtered HMM,
#   clusters, labels) and the triple-barrier classifier -> the six out-of-fold base models, side by side
#   (and their all-rows fits) -> stacked alpha, scorecard, meta-labels, live alpha -> the nine strategies' weights
#   and backtests, side by side -> backtest metrics and the HTML report; today's target portfolio and orders,
#   recorded in the decision ledger, and the live track record. Then prints what was stored.
# Progress lines go to the terminal; Dagster's own logs of the runs to $DAGSTER_HOME/pipeline.log.
# Usage: bash scripts/run_main.sh [UNIVERSE] [FIRST_MONTH] [LAST_MONTH]   (months as YYYY-MM-01)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
universe=${1:-synthetic}
first=${2:-2005-01-01}
last=${3:-$(date -u +%Y-%m-01)}
export DAGSTER_HOME=${DAGSTER_HOME:-$PWD/dagster_home}
mkdir -p "$DAGSTER_HOME"
[ -f "$DAGSTER_HOME/dagster.yaml" ] || cp dagster.yaml "$DAGSTER_HOME/dagster.yaml"
echo "== core_research [$universe $first..$last] as one asset backfill (Dagster's logs: $DAGSTER_HOME/pipeline.log)"
PYTHONWARNINGS=ignore .venv/bin/python -m quantlab_assets.pipeline core_research \
  --universe "$universe" --first "$first" --last "$last" 2>"$DAGSTER_HOME/pipeline.log"
.venv/bin/python -W ignore -m quantlab_assets.report_status --universe "$universe"
