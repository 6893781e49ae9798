#!/usr/bin/env bash
# Sets up the lab and runs the main pipeline end to end on the embedded default universe (synthetic,
# offline), one `dagster asset materialize` per step, each step's log under $DAGSTER_HOME:
#   universe table -> raw -> cleaned bars (+ quarantine) -> labels, every month from 2005-01 to the current
#   month as one single-run backfill -> the FFD diagnostic (the smallest stationary d per instrument on the
#   training span; the features apply the lab's fixed d) -> features and market state
#   -> regime models (filtered HMM, clusters, labels) -> purged CV folds -> out-of-fold base models
#   -> stacked alpha, scorecard, meta-labels -> the seven strategies' weights and backtests
#   -> backtest metrics and the HTML report. Then prints what was stored.
# (main_job, which the daily schedule runs, is the monthly assets; every per-universe step reads all
# stored months.)
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
export dagster DAGSTER_HOME
materialize() {  # materialize LOG ARGS...: one `dagster asset materialize`, its log kept, its tail shown on failure
  local log="$DAGSTER_HOME/$1.log"; shift
  $dagster asset materialize -m quantlab_assets.definitions "$@" >"$log" 2>&1 || { tail -60 "$log"; exit 1; }
}
export -f materialize
each_at_once() {  # each_at_once PREFIX SELECTION KEY...: one materialisation per 'KEY|universe', $jobs at a time
  local prefix=$1 selection=$2; shift 2
  printf '%s\n' "$@" | xargs -P "$jobs" -I{} bash -c 'materialize "$0{}" --select "$1" --partition "{}|$2"' \
    "$prefix" "$selection" "$universe"
}
range="$first|$universe...$last|$universe"
jobs=$(nproc)
echo "== universe [$universe]"
materialize universe --select universe --partition "$universe"
echo "== bars and labels [$range] (logs in $DAGSTER_HOME/*.log)"
materialize bars --select raw_ohlcv,cleaned_bars,rejected_bars,labels --partition-range "$range"
echo "== FFD diagnostic on the training span [$universe]"
materialize ffd_orders --select ffd_orders --partition "$universe"
echo "== features and market state [$range]"
materialize features --select features,market_state --partition-range "$range"
echo "== regimes: filtered HMM, clusters, labels [$universe]"
materialize regimes --select regime_hmm,regime_hmm_params,regime_clusters,regime_labels --partition "$universe"
echo "== Model 2: purged CV folds [$universe]"
materialize cv_folds --select cv_folds --partition "$universe"
# The six base-model partitions are independent, single-threaded fits: as many at once as there are
# cores, slowest first.
echo "== Model 2: out-of-fold predictions, $jobs at a time [$universe]"
each_at_once oof_ oof_predictions,base_model_fits xgboost_63d xgboost_21d lightgbm_63d lightgbm_21d ridge_63d ridge_21d
echo "== Model 2: stacked alpha, scorecard, meta-labels, live alpha, triple-barrier classifier [$universe]"
materialize stack --select stacked_alpha,model_scorecard,meta_labels,live_alpha,barrier_probabilities --partition "$universe"
echo "== portfolios and backtests, $jobs at a time [$universe]"
each_at_once backtest_ target_weights,backtest,backtest_positions,backtest_trades \
  qp_optimal top_n_equal equal_weight buy_and_hold_benchmark sniper audited reckless
echo "== backtest metrics and the HTML report [$universe]"
materialize report --select backtest_metrics,backtest_report --partition "$universe"
.venv/bin/python -W ignore -m quantlab_assets.report_status --universe "$universe"
