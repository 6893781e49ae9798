#!/usr/bin/env bash
# Sets up the lab and runs the main pipeline on the embedded default universe (synthetic, offline):
# the universe table; raw -> cleaned bars (+ quarantine) -> labels for every month from 2005-01 to the
# current month as one single-run backfill; the FFD orders fitted on the training span; the features
# over the same months with the market state; with QUANTLAB_RUN_REGIMES=1 also the regime models (filtered
# HMM, clusters, labels; about a minute more here, most of it a second CLI process). Then prints what was stored. (main_job, which the daily schedule runs, is all
# the monthly assets at once; on a fresh instance the FFD orders must exist before the features.)
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
dagster=.venv/bin/dagster
materialize() {  # materialize LOG ARGS...: one `dagster asset materialize`, its log kept, its tail shown on failure
  local log="$DAGSTER_HOME/$1.log"; shift
  $dagster asset materialize -m quantlab_assets.definitions "$@" >"$log" 2>&1 || { tail -60 "$log"; exit 1; }
}
range="$first|$universe...$last|$universe"
echo "== universe [$universe]"
materialize universe --select universe --partition "$universe"
echo "== bars and labels [$range] (logs in $DAGSTER_HOME/*.log)"
materialize bars --select raw_ohlcv,cleaned_bars,rejected_bars,labels --partition-range "$range"
echo "== FFD orders fitted on the training span [$universe]"
materialize ffd_orders --select ffd_orders --partition "$universe"
echo "== features and market state [$range]"
materialize features --select features,market_state --partition-range "$range"
if [ "${QUANTLAB_RUN_REGIMES:-0}" = 1 ]; then
  echo "== regimes: filtered HMM, clusters, labels [$universe]"
  materialize regimes --select regime_hmm,regime_hmm_params,regime_clusters,regime_labels --partition "$universe"
fi
.venv/bin/python -W ignore -m quantlab_assets.report_status --universe "$universe"
