"""Measurement: seed 001's collapse reproduced (zero-initialised heads) against the healthy forecaster.

    .venv/bin/python benchmarks/quantile_collapse.py --build /tmp/quantile_inputs   # the figures in docs/studies.md

`--build DIR` first stores, through Dagster, the inputs the test fixture `model_inputs` builds (universe
`synthetic`, 2005-01 .. 2008-06 as of 2008-06-30: features, labels, cv_folds) under DIR/data; without
it, `--data-dir` names a data dir that already holds them (e.g. `dagster_home/data` after
`scripts/run_main.sh`). Then the quantile forecaster trains out of fold on the CPU, with a small
encoder (d_model 16, 1 layer, seq_len 21), 3 epochs and 16 dates per batch, and seed 001 phase 3's
loss weights and optimisation, in three configurations: `healthy` (torch's default init), `collapsed`
(head_init zero) and `collapsed_10x_aux` (the same with 10x the RankIC, IC and variance weights).
Printed and written to benchmarks/results/quantile_collapse.json per configuration: the last epoch's
median std, head weight-gradient norm, whole-head gradient norm and encoder gradient norm (min and max
over folds x horizons), the encoder activation std, the train loss per epoch, the collapse check's
verdict and the scorecard per horizon (IC null where undefined).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import dagster as dg
import polars as pl

from harness import git_commit
from quantlab_assets.compute.torch_runtime.device import choose_device
from quantlab_assets.compute.torch_runtime.inputs import input_panel
from quantlab_assets.compute.torch_runtime.quantile import HORIZONS, QuantileConfig
from quantlab_assets.compute.torch_runtime.quantile_training import (
    HORIZON,
    QuantileTrainingConfig,
    cross_sectional_targets,
    fit_oof_quantile,
    quantile_collapse_problems,
    quantile_scorecard,
)

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "quantile_collapse.json"
AUX = {"weight_rank_ic": 5.0, "weight_ic": 2.5, "weight_variance": 10.0}
CONFIGURATIONS = {"healthy": {"head_init": "default"}, "collapsed": {"head_init": "zero"},
                  "collapsed_10x_aux": {"head_init": "zero", **AUX}}


def build_inputs(root: Path) -> Path:
    from quantlab_assets.defs.assets.data import cleaned_bars, raw_ohlcv, universe
    from quantlab_assets.defs.assets.features import features, ffd_orders
    from quantlab_assets.defs.assets.labels import labels
    from quantlab_assets.defs.assets.models import cv_folds
    from quantlab_assets.defs.io_managers import PartitionedParquetIOManager
    from quantlab_assets.defs.resources import DataQualityResource, MarketDataResource

    data, home = root / "data", root / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    assets = [universe, raw_ohlcv, cleaned_bars, labels, ffd_orders, features, cv_folds]
    resources = {"io_manager": PartitionedParquetIOManager(base_dir=str(data)),
                 "market_data": MarketDataResource(as_of="2008-06-30"), "data_quality": DataQualityResource()}
    months = {"dagster/asset_partition_range_start": "2005-01-01|synthetic",
              "dagster/asset_partition_range_end": "2008-06-01|synthetic"}
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        runs = [dict(selection=["universe"], partition_key="synthetic"),
                dict(selection=["raw_ohlcv", "cleaned_bars", "rejected_bars", "labels"], tags=months),
                dict(selection=["ffd_orders", "cv_folds"], partition_key="synthetic"),
                dict(selection=["features"], tags=months)]
        for run in runs:
            assert dg.materialize(assets, instance=instance, resources=resources, **run).success
    return data


def measure(data: Path, universe: str) -> dict[str, object]:
    features = pl.read_parquet(data / "features" / universe / "*.parquet")
    labels = pl.read_parquet(data / "labels" / universe / "*.parquet")
    folds = pl.read_parquet(data / "cv_folds" / f"{universe}.parquet")
    panel, names = input_panel(features, cross_sectional_targets(labels, HORIZONS), 21)
    training = QuantileTrainingConfig(max_epochs=3, patience=3, dates_per_batch=16)
    results: dict[str, object] = {"commit": git_commit(), "windows": int(panel.starts.shape[0]), "features": len(names)}
    for name, overrides in CONFIGURATIONS.items():
        model = QuantileConfig(n_features=len(names), d_model=16, n_heads=2, n_layers=1, dim_ff=32, seq_len=21,
                               head_hidden=16, **overrides)
        start = time.perf_counter()
        result = fit_oof_quantile(panel, folds, model, training, choose_device(allow_cuda=False))
        last = result.diagnostics.group_by("fold_id", HORIZON).agg(pl.all().sort_by("epoch").last())
        spread = last.group_by(HORIZON).agg(
            *(pl.col(k).min().alias(f"{k}_min") for k in ("prediction_std", "weight_grad_norm", "grad_norm", "encoder_grad_norm", "representation_std")),
            *(pl.col(k).max().alias(f"{k}_max") for k in ("prediction_std", "weight_grad_norm", "grad_norm", "encoder_grad_norm")),
        ).sort(HORIZON)
        results[name] = {
            "seconds": round(time.perf_counter() - start, 1), "folds": sorted(result.best_epochs),
            "last_epoch": spread.to_dicts(),
            "train_loss": result.diagnostics.group_by("epoch").agg(pl.col("train_loss").mean()).sort("epoch")["train_loss"].to_list(),
            "collapse_problems": len(quantile_collapse_problems(result.diagnostics, 1e-6, 1e-10)),
            "scorecard": quantile_scorecard(result.predictions).select(
                HORIZON, "n_dates", "n_dates_ic_defined", "ic", "rank_ic", "prediction_std", "mean_daily_prediction_std").to_dicts(),
        }
        print(name, json.dumps(results[name], indent=1, default=str))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", type=Path, help="store the fixture's inputs under this directory first")
    parser.add_argument("--data-dir", type=Path, help="a data dir holding features, labels and cv_folds")
    parser.add_argument("--universe", default="synthetic")
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    args = parser.parse_args()
    if (args.build is None) == (args.data_dir is None):
        parser.error("give exactly one of --build and --data-dir")
    data = build_inputs(args.build) if args.build else args.data_dir
    results = measure(data, args.universe)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
