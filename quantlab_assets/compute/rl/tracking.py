"""MLflow runs of the RL assets: one per trained policy (its config, span metrics, validation curve and model zip),
one per evaluation (every strategy x span's key metrics, the table and the HTML report)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl

from quantlab_assets.compute.models.tracking import log_model_run

EXPERIMENT = "quantlab_rl"
LOGGED_METRICS = ("sharpe", "sharpe_ci_low", "sharpe_ci_high", "cagr", "max_drawdown", "dsr", "sharpe_minus_equal_weight")


def _attach(tracking_uri: str, run_id: str, path: Path, folder: str) -> None:
    from mlflow.tracking import MlflowClient  # imported here: mlflow takes about a second to import

    MlflowClient(tracking_uri=tracking_uri).log_artifact(run_id, str(path), artifact_path=folder)


def log_policy_run(tracking_uri: str, key: str, config: Mapping[str, Any], metrics: Mapping[str, float | None],
                   curve: pl.DataFrame, model_path: Path, artifact_root: str | None) -> str:
    run_id = log_model_run(tracking_uri, EXPERIMENT, f"rl_policy|{key}", config=config, metrics=metrics,
                           frames={"validation_curve": curve}, artifact_root=artifact_root)
    _attach(tracking_uri, run_id, model_path, "policy")
    return run_id


def log_evaluation_run(tracking_uri: str, universe: str, config: Mapping[str, Any], metrics: pl.DataFrame, report: Path,
                       artifact_root: str | None) -> str:
    """Metrics named '<strategy>.<span>.<metric>'."""
    values = {f"{row['strategy']}.{row['span']}.{k}": row[k] for row in metrics.to_dicts() for k in LOGGED_METRICS}
    run_id = log_model_run(tracking_uri, EXPERIMENT, f"rl_evaluation|{universe}", config=config, metrics=values,
                           frames={"rl_evaluation": metrics}, artifact_root=artifact_root)
    _attach(tracking_uri, run_id, report, "report")
    return run_id
