"""Log a universe's backtest report to MLflow: every strategy's metrics, the metrics table and the HTML file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import polars as pl

from quantlab_assets.compute.backtest.engine import BacktestParams
from quantlab_assets.compute.models.tracking import log_model_run

EXPERIMENT = "quantlab_backtest"


def log_report_run(tracking_uri: str, universe: str, metrics: pl.DataFrame, report: Path,
                   artifact_root: str | None, params: BacktestParams = BacktestParams()) -> str:
    """One MLflow run per report: metrics named '<strategy>.<metric>', the table, the HTML; returns the run id."""
    from mlflow.tracking import MlflowClient  # imported here: mlflow takes about a second to import

    numeric = [col for col, dtype in metrics.schema.items() if dtype.is_numeric()]
    values = {f"{row['strategy']}.{col}": row[col] for row in metrics.iter_rows(named=True) for col in numeric}
    config = {"universe": universe, "strategies": ",".join(metrics["strategy"]), **dataclasses.asdict(params)}
    run_id = log_model_run(tracking_uri, EXPERIMENT, f"backtest_report|{universe}", config=config, metrics=values,
                           frames={"backtest_metrics": metrics}, artifact_root=artifact_root)
    MlflowClient(tracking_uri=tracking_uri).log_artifact(run_id, str(report), artifact_path="report")
    return run_id
