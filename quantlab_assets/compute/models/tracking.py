"""MLflow logging of a model run: parameters, metrics, artifacts and provenance (config hash, git SHA,
library versions). Uses an explicit `MlflowClient` for the given tracking URI, so no global MLflow state
leaks between runs or tests.

Parameters are the values a run used (its dataclasses, not their defaults); a nested parameter set
(`dataclasses.asdict` of BacktestParams) is logged one MLflow parameter per leaf, named by its path
("costs.commission_bps"), so runs can be compared on each.

MLflow cannot store a null metric; an undefined metric (an IC over constant predictions) is therefore
not logged as a number: its name goes into the tag `undefined_metrics`.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import subprocess
import tempfile
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any, Final

import joblib
import polars as pl

PACKAGES: Final = ("polars", "numpy", "scikit-learn", "xgboost", "lightgbm", "skfolio", "mlflow", "dagster")
REPO_ROOT: Final = Path(__file__).resolve().parents[3]


def config_hash(config: Mapping[str, Any]) -> str:
    """First 16 hex digits of the SHA-256 of the config as canonical JSON."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def flat_params(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`config` with every nested mapping replaced by its leaves, named '<key>.<leaf key>'."""
    flat: dict[str, Any] = {}
    for name, value in config.items():
        if isinstance(value, Mapping):
            flat.update(flat_params(value, f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = value
    return flat


def git_sha() -> str:
    """The commit of the checkout this code runs from, '-dirty' if it has changes, 'unknown' outside git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "absent"
    return versions


def initialise_store(tracking_uri: str) -> None:
    """Create (and migrate) the store behind `tracking_uri` if it does not exist yet. Not safe to run
    concurrently on one SQLite file: MLflow's migrations then race ('duplicate column name'); the caller
    holds a lock (MlflowTrackingResource.ensure_store)."""
    from mlflow.tracking import MlflowClient

    MlflowClient(tracking_uri=tracking_uri).search_experiments(max_results=1)


def _experiment_id(client: Any, experiment: str, artifact_root: str | None) -> str:
    """The id of `experiment`, created if missing; another process creating it at the same time is fine."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(experiment)
    if found:
        return found.experiment_id
    try:
        return client.create_experiment(experiment, artifact_location=artifact_root)
    except MlflowException:
        found = client.get_experiment_by_name(experiment)
        if found is None:
            raise
        return found.experiment_id


def log_model_run(
    tracking_uri: str,
    experiment: str,
    run_name: str,
    config: Mapping[str, Any],
    metrics: Mapping[str, float | None],
    models: Mapping[str, Any] | None = None,
    frames: Mapping[str, pl.DataFrame] | None = None,
    artifact_root: str | None = None,
) -> str:
    """Log one run; returns its run id. `models` are pickled with joblib, `frames` written as Parquet."""
    from mlflow.tracking import MlflowClient  # imported here: mlflow takes about a second to import

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment_id = _experiment_id(client, experiment, artifact_root)
    undefined = sorted(name for name, value in metrics.items() if value is None or not math.isfinite(value))
    tags = {
        "config_hash": config_hash(config),
        "git_sha": git_sha(),
        "undefined_metrics": ",".join(undefined) or "none",
        **{f"version.{name}": version for name, version in library_versions().items()},
    }
    run = client.create_run(experiment_id, run_name=run_name, tags=tags)
    run_id = run.info.run_id
    for name, value in flat_params(config).items():
        client.log_param(run_id, name, str(value)[:500])
    for name, value in metrics.items():
        if name not in undefined:
            client.log_metric(run_id, name, float(value))
    with tempfile.TemporaryDirectory() as scratch:
        for name, model in (models or {}).items():
            path = Path(scratch) / f"{name}.joblib"
            joblib.dump(model, path)
            client.log_artifact(run_id, str(path), artifact_path="models")
        for name, frame in (frames or {}).items():
            path = Path(scratch) / f"{name}.parquet"
            frame.write_parquet(path)
            client.log_artifact(run_id, str(path), artifact_path="tables")
        config_path = Path(scratch) / "config.json"
        config_path.write_text(json.dumps(config, sort_keys=True, indent=1, default=str))
        client.log_artifact(run_id, str(config_path))
    client.set_terminated(run_id)
    return run_id
