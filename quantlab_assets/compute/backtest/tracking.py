"""Log a universe's backtest report to MLflow: every strategy's metrics, the parameters its backtest used,
the metrics table and the HTML file."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl

from quantlab_assets.compute.backtest.engine import BacktestParams
from quantlab_assets.compute.models.tracking import flat_params, log_model_run

EXPERIMENT = "quantlab_backtest"
NOT_RECORDED = "not recorded"


def used_params(used: Mapping[str, BacktestParams | None]) -> dict[str, Any]:
    """The backtest parameters as MLflow parameters: 'costs.commission_bps', ... when every strategy used the
    same, else '<strategy>.costs.commission_bps', ... (None: the strategy's parameters were not recorded)."""
    distinct = set(used.values())
    if len(distinct) == 1 and None not in distinct:
        return flat_params(dataclasses.asdict(next(iter(distinct))))
    return {f"{strategy}.{name}": value for strategy, params in used.items()
            for name, value in (flat_params(dataclasses.asdict(params)) if params else {"backtest": NOT_RECORDED}).items()}


def log_report_run(tracking_uri: str, universe: str, metrics: pl.DataFrame, report: Path,
                   artifact_root: str | None, used: Mapping[str, BacktestParams | None]) -> str:
    """One MLflow run per report: metrics named '<strategy>.<metric>', the parameters each strategy's backtest
    used (`used_params`), the table, the HTML; returns the run id."""
    from mlflow.tracking import MlflowClient  # imported here: mlflow takes about a second to import

    numeric = [col for col, dtype in metrics.schema.items() if dtype.is_numeric()]
    values = {f"{row['strategy']}.{col}": row[col] for row in metrics.iter_rows(named=True) for col in numeric}
    config = {"universe": universe, "strategies": ",".join(metrics["strategy"]), **used_params(used)}
    run_id = log_model_run(tracking_uri, EXPERIMENT, f"backtest_report|{universe}", config=config, metrics=values,
                           frames={"backtest_metrics": metrics}, artifact_root=artifact_root)
    MlflowClient(tracking_uri=tracking_uri).log_artifact(run_id, str(report), artifact_path="report")
    return run_id
