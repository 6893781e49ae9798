"""Model 2 end to end on a synthetic panel: wall time per stage, peak RSS, and the honest scores.

Stages (one process, in order): generate the market and clean it; labels; features; CV folds; for
each horizon (21d, 63d) and base model (Ridge, XGBoost, LightGBM) the out-of-fold predictions over the
5 purged walk-forward folds at the production parameters (seed 004: 400 trees); the nested stack,
isotonic calibration and inverse-variance combination; the scorecard. It also reports the two leakage
canaries at this size: Ridge and XGBoost OOF IC on labels shuffled across rows against the 3-SE noise
bound, and each model's rank IC against the oracle IC of the planted signal on the same rows.

    .venv/bin/python benchmarks/model_pipeline.py --instruments 50 --days 5000      # the run in benchmarks/README.md
    .venv/bin/python benchmarks/model_pipeline.py --instruments 20 --days 800 --trees 20 --output /tmp/smoke.json

Results are printed and written to benchmarks/results/model_pipeline.json (or `--output`).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from harness import git_commit, panel_params, peak_rss_mib, rss_mib
from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.cleaning import clean_bars
from quantlab_assets.compute.data.raw import as_raw_frame
from quantlab_assets.compute.data.synthetic import generate_synthetic_market
from quantlab_assets.compute.features.compute import compute_features
from quantlab_assets.compute.labels.compute import compute_labels
from quantlab_assets.compute.models import cv, oof
from quantlab_assets.compute.models.base_models import MODELS, BaseModelParams, LightGBMParams, XGBoostParams
from quantlab_assets.compute.models.metrics import LABEL, PREDICTION, per_date_scores, score_predictions
from quantlab_assets.compute.models.scorecard import build_scorecard
from quantlab_assets.compute.models.stacking import stack_and_combine

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "model_pipeline.json"


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    stages: dict[str, float] = {}

    def timed(name: str, function: Any) -> Any:
        started = time.perf_counter()
        value = function()
        stages[name] = round(time.perf_counter() - started, 2)
        print(f"{name:28s} {stages[name]:8.1f} s   RSS {rss_mib():7.0f} MiB", flush=True)
        return value

    params = panel_params(args.instruments, args.days)
    market = timed("generate", lambda: generate_synthetic_market(params))
    raw = as_raw_frame(market.bars, source="synthetic", source_file="synthetic(benchmark)")
    bars = timed("clean", lambda: clean_bars(raw, market.universe[c.TICKER], window=(params.start, params.end),
                                             as_of=params.end).cleaned)
    labels = timed("labels", lambda: compute_labels(bars, market.universe))
    features = timed("features", lambda: compute_features(bars, market.universe).frame)
    folds = timed("cv_folds", lambda: cv.make_folds(labels))
    model_params = BaseModelParams(xgboost=XGBoostParams(n_estimators=args.trees), lightgbm=LightGBMParams(n_estimators=args.trees))
    predictions: dict[int, dict[str, pl.DataFrame]] = {}
    canaries: dict[str, Any] = {}
    oracle = market.oracle.select(c.DATE, c.TICKER, c.PLANTED_SIGNAL)
    for horizon in (21, 63):
        panel = oof.design_panel(features, labels, horizon)
        predictions[horizon] = {}
        for model in MODELS:
            result = timed(f"oof {model} {horizon}d", lambda: oof.fit_oof(panel, folds, model, horizon, model_params))
            predictions[horizon][model] = result.predictions
            with_oracle = result.predictions.join(oracle, on=[c.DATE, c.TICKER])
            canaries[f"{model}_{horizon}d"] = {
                "rank_ic": score_predictions(result.predictions)["rank_ic"][0],
                "oracle_rank_ic": score_predictions(with_oracle.with_columns(pl.col(c.PLANTED_SIGNAL).alias(PREDICTION)))["rank_ic"][0],
            }
        shuffled = panel.with_frame(panel.frame.with_columns(pl.col(LABEL).shuffle(seed=7)))
        for model in ("ridge", "xgboost"):
            daily = per_date_scores(timed(f"shuffled {model} {horizon}d", lambda: oof.fit_oof(
                shuffled, folds, model, horizon, model_params)).predictions.lazy()).collect()
            canaries[f"shuffled_{model}_{horizon}d"] = {
                "mean_ic": daily["ic"].mean(), "bound_3se": 3 * daily["ic"].std() / np.sqrt(daily["ic"].count())}
    stacked = timed("stack + calibrate + combine", lambda: stack_and_combine(predictions, folds))
    card = timed("scorecard", lambda: build_scorecard(predictions, stacked.alpha, labels))
    overall = card.filter(pl.col(cv.FOLD_ID).is_null()).select("model", cv.HORIZON_DAYS, "ic", "rank_ic", "icir", "prediction_std")
    print(overall)
    return {
        "commit": git_commit(), "instruments": args.instruments, "days": args.days, "trees": args.trees,
        "rows": labels.height, "features": len(oof.feature_columns(features)), "cpu_count": os.cpu_count(),
        "stages_seconds": stages, "total_seconds": round(sum(stages.values()), 1), "peak_rss_mib": round(peak_rss_mib()),
        "canaries": canaries, "scorecard_all_folds": overall.to_dicts(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instruments", type=int, default=50)
    parser.add_argument("--days", type=int, default=5000)
    parser.add_argument("--trees", type=int, default=400, help="XGBoost and LightGBM trees (production: 400)")
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    args = parser.parse_args(argv)
    results = run_benchmark(args)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "scorecard_all_folds"}, indent=1, default=str))


if __name__ == "__main__":
    main()
