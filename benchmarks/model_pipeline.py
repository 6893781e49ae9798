"""Model 2 end to end on a synthetic panel, run the way the lab runs it: wall time per stage, peak RSS,
and the leakage canaries at full size.

Stages, in order:

1. prepare (this process): generate the market and clean it, labels, features, CV folds. They are written
   to Parquet in a temporary directory, as the IO manager stores them, and every worker reads them back
   like an asset reads its parents.
2. out of fold: the six partitions of `oof_predictions` (Ridge, XGBoost, LightGBM x 21d, 63d) at the
   production parameters (seed 004: 400 trees, one thread per fit), `--workers` at a time, slowest
   first, each in a fresh process: what `scripts/run_main.sh` does with one `dagster asset materialize`
   per partition, as many at once as there are cores.
3. stack + calibrate + combine, then the scorecard (this process).

The pipeline's wall time is the sum of those three stages. Afterwards, in the same pool and not counted
in it, the canaries run at full size:

- shuffled: Ridge and XGBoost on all features with the label shuffled across all rows (seed 7); each must
  give |mean daily IC| within 3 standard errors of 0;
- planted: each base model on three ordinary features plus the market's planted signal; its OOF rank IC
  must reach half the oracle's (the planted signal itself scored on the same rows).

Both verdicts are `compute/models/canaries.py`, the same functions the tests apply on a small market.

It also reports each production model's rank IC beside the oracle's on the same rows (the planted
signal is not a feature of the production models: a finding about the features, not a pass/fail).

    .venv/bin/python benchmarks/model_pipeline.py                                  # 500 x 5,000: the run in benchmarks/README.md
    .venv/bin/python benchmarks/model_pipeline.py --instruments 20 --days 800 --trees 20 --no-canaries --output /tmp/smoke.json  # smoke run

Results are printed and written to benchmarks/results/model_pipeline.json (or `--output`).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import polars as pl

from harness import git_commit, panel_params, peak_rss_mib, rss_mib
from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.cleaning import clean_bars
from quantlab_assets.compute.data.raw import as_raw_frame
from quantlab_assets.compute.data.synthetic import generate_synthetic_market
from quantlab_assets.compute.features.compute import compute_features
from quantlab_assets.compute.labels.compute import compute_labels
from quantlab_assets.compute.models import canaries, cv, oof
from quantlab_assets.compute.models.base_models import LIGHTGBM, MODELS, RIDGE, XGBOOST, BaseModelParams, LightGBMParams, XGBoostParams
from quantlab_assets.compute.models.metrics import score_predictions
from quantlab_assets.compute.models.scorecard import build_scorecard
from quantlab_assets.compute.models.stacking import stack_and_combine

RESULTS_PATH: Final = Path(__file__).resolve().parent / "results" / "model_pipeline.json"
HORIZONS: Final = (21, 63)
# Slowest first (as scripts/run_main.sh orders them), so the pool's last task is a short one.
OOF_ORDER: Final = ((XGBOOST, 63), (XGBOOST, 21), (LIGHTGBM, 63), (LIGHTGBM, 21), (RIDGE, 63), (RIDGE, 21))
PIPELINE: Final = "pipeline"
SHUFFLED: Final = "shuffled"
PLANTED: Final = "planted"
SHUFFLE_SEED: Final = 7


def model_params(trees: int) -> BaseModelParams:
    return BaseModelParams(xgboost=XGBoostParams(n_estimators=trees), lightgbm=LightGBMParams(n_estimators=trees))


def run_oof_task(workdir: str, kind: str, model: str, horizon: int, trees: int) -> dict[str, Any]:
    """One partition of `oof_predictions` (or a canary) in a fresh worker process; its figures."""
    started = time.perf_counter()
    root = Path(workdir)
    labels = pl.read_parquet(root / "labels.parquet")
    features = pl.read_parquet(root / "features.parquet")
    folds = pl.read_parquet(root / "folds.parquet")
    oracle = pl.read_parquet(root / "oracle.parquet")
    if kind == PLANTED:
        features = features.join(oracle, on=[c.DATE, c.TICKER], how="left").select(c.DATE, c.TICKER, *canaries.PLANTED_CANARY_INPUTS)
    panel = oof.design_panel(features, labels, horizon)
    del features
    if kind == SHUFFLED:
        panel = canaries.with_shuffled_labels(panel, SHUFFLE_SEED)
    result = oof.fit_oof(panel, folds, model, horizon, model_params(trees))
    figures: dict[str, Any] = {
        "kind": kind, "model": model, "horizon": horizon, "rows": panel.frame.height, "inputs": len(panel.inputs),
        "fold_fit_seconds": [round(s, 1) for s in result.fit_seconds],
    }
    if kind == PIPELINE:
        result.predictions.write_parquet(root / f"oof_{model}_{horizon}d.parquet")
        figures["rank_ic"] = score_predictions(result.predictions)["rank_ic"][0]
        figures["oracle_rank_ic"] = canaries.oracle_rank_ic(result.predictions, oracle)
    elif kind == SHUFFLED:
        figures |= dataclasses.asdict(canaries.shuffled_label_canary(result.predictions))
    else:
        figures |= dataclasses.asdict(canaries.planted_signal_canary(result.predictions, oracle))
    figures["seconds"] = round(time.perf_counter() - started, 1)
    figures["peak_rss_mib"] = round(peak_rss_mib())
    return figures


def run_pool(workdir: Path, tasks: list[tuple[str, str, int]], trees: int, workers: int) -> list[dict[str, Any]]:
    """`tasks` (kind, model, horizon) in `workers` fresh processes at a time (spawned: polars' thread pool
    must not be forked); results in task order."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context, max_tasks_per_child=1) as pool:
        futures = [pool.submit(run_oof_task, str(workdir), kind, model, horizon, trees) for kind, model, horizon in tasks]
        for future in concurrent.futures.as_completed(futures):
            done = future.result()
            print(f"  {done['kind']:9s} {done['model']:9s} {done['horizon']:2d}d  {done['seconds']:7.1f} s"
                  f"  peak RSS {done['peak_rss_mib']:6d} MiB  folds {done['fold_fit_seconds']}", flush=True)
        return [future.result() for future in futures]


def run_benchmark(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    stages: dict[str, float] = {}

    def timed(name: str, function: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        value = function()
        stages[name] = round(time.perf_counter() - started, 2)
        print(f"{name:28s} {stages[name]:8.1f} s   RSS {rss_mib():7.0f} MiB", flush=True)
        return value

    def prepare() -> pl.DataFrame:
        params = panel_params(args.instruments, args.days)
        market = generate_synthetic_market(params)
        raw = as_raw_frame(market.bars, source="synthetic", source_file="synthetic(benchmark)")
        bars = clean_bars(raw, market.universe[c.TICKER], window=(params.start, params.end), as_of=params.end).cleaned
        labels = compute_labels(bars, market.universe)
        compute_features(bars, market.universe).frame.write_parquet(workdir / "features.parquet")
        cv.make_folds(labels).write_parquet(workdir / "folds.parquet")
        market.oracle.select(c.DATE, c.TICKER, c.PLANTED_SIGNAL).write_parquet(workdir / "oracle.parquet")
        labels.write_parquet(workdir / "labels.parquet")
        return labels

    labels = timed("prepare (market, clean, labels, features, folds)", prepare)
    print(f"out of fold: {len(OOF_ORDER)} partitions, {args.workers} at a time", flush=True)
    pipeline_tasks = [(PIPELINE, model, horizon) for model, horizon in OOF_ORDER]
    partitions = timed("out of fold (6 partitions)", lambda: run_pool(workdir, pipeline_tasks, args.trees, args.workers))
    folds = pl.read_parquet(workdir / "folds.parquet")
    predictions = {h: {m: pl.read_parquet(workdir / f"oof_{m}_{h}d.parquet") for m in MODELS} for h in HORIZONS}
    stacked = timed("stack + calibrate + combine", lambda: stack_and_combine(predictions, folds, labels))
    card = timed("scorecard", lambda: build_scorecard(predictions, stacked.alpha, labels))
    pipeline_seconds = round(sum(stages.values()), 1)
    main_peak = round(peak_rss_mib())
    overall = card.filter(pl.col(cv.FOLD_ID).is_null()).select("model", cv.HORIZON_DAYS, "n_rows", "ic", "rank_ic", "icir", "prediction_std")
    print(overall)
    print(f"pipeline: {pipeline_seconds:.0f} s; peak RSS: this process {main_peak} MiB, "
          f"largest partition {max(p['peak_rss_mib'] for p in partitions)} MiB", flush=True)

    canaries: list[dict[str, Any]] = []
    if args.canaries:
        canary_tasks = [(SHUFFLED, model, h) for model in (XGBOOST, RIDGE) for h in HORIZONS]
        canary_tasks += [(PLANTED, model, h) for model, h in OOF_ORDER]
        print(f"canaries: {len(canary_tasks)} runs, {args.workers} at a time", flush=True)
        started = time.perf_counter()
        canaries = run_pool(workdir, canary_tasks, args.trees, args.workers)
        print(f"canaries took {time.perf_counter() - started:.0f} s", flush=True)
    return {
        "commit": git_commit(), "instruments": args.instruments, "days": args.days, "trees": args.trees,
        "workers": args.workers, "cpu_count": os.cpu_count(), "rows": labels.height,
        "features": len(oof.feature_columns(pl.scan_parquet(workdir / "features.parquet").head(0).collect())),
        "stages_seconds": stages, "pipeline_seconds": pipeline_seconds,
        "peak_rss_mib": {"main": main_peak, "partitions": {f"{p['model']}_{p['horizon']}d": p["peak_rss_mib"] for p in partitions}},
        "partitions": partitions, "canaries": canaries, "canaries_passed": all(cn["passed"] for cn in canaries),
        "scorecard_all_folds": overall.to_dicts(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instruments", type=int, default=500)
    parser.add_argument("--days", type=int, default=5000)
    parser.add_argument("--trees", type=int, default=400, help="XGBoost and LightGBM trees (production: 400)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="partitions fitted at once (scripts/run_main.sh: one per core)")
    parser.add_argument("--no-canaries", dest="canaries", action="store_false", help="time the pipeline only")
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="model_pipeline_") as workdir:
        results = run_benchmark(args, Path(workdir))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k not in ("scorecard_all_folds", "partitions", "canaries")},
                     indent=1, default=str))
    if args.canaries and not results["canaries_passed"]:
        raise SystemExit("a leakage canary failed: see 'canaries' in " + str(args.output))


if __name__ == "__main__":
    main()
