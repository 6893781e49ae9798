#!/usr/bin/env bash
# Sets up the lab and runs the main job on the embedded default universe (synthetic, offline):
# the universe table, then raw -> cleaned bars (+ quarantine) for every month from 2005-01 to the
# current month, as one single-run backfill. Then prints what was stored.
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
echo "== universe [$universe]"
$dagster asset materialize -m quantlab_assets.definitions --select universe --partition "$universe" >"$DAGSTER_HOME/last_universe_run.log" 2>&1 \
  || { tail -40 "$DAGSTER_HOME/last_universe_run.log"; exit 1; }
echo "== main_job [$first .. $last | $universe] (log: $DAGSTER_HOME/last_main_run.log)"
$dagster job execute -m quantlab_assets.definitions -j main_job \
  --tags "{\"dagster/asset_partition_range_start\": \"$first|$universe\", \"dagster/asset_partition_range_end\": \"$last|$universe\"}" \
  >"$DAGSTER_HOME/last_main_run.log" 2>&1 || { tail -60 "$DAGSTER_HOME/last_main_run.log"; exit 1; }
.venv/bin/python -m quantlab_assets.report_status --universe "$universe"
