"""The study's files (seed 000): scorecard.json, metrics.jsonl and metadata.json, written atomically."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import polars as pl
import torch

from quantlab_assets.compute.hedging.config import HedgingConfig
from quantlab_assets.compute.models.tracking import git_sha, library_versions
from quantlab_assets.compute.storage import HEDGING_STUDY_FOLDER as STUDY_FOLDER
from quantlab_assets.compute.storage import write_text_atomic


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: an undefined number is null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def run_metadata(config: HedgingConfig, fingerprints: dict[str, str], device: dict[str, str]) -> dict[str, Any]:
    return {
        "git_sha": git_sha(), "torch_version": torch.__version__, "versions": library_versions(),
        "environment_fingerprints": fingerprints, "config_hash": config.hash(), "config": config.as_dict(),
        "device": device,
    }


def write_study_files(directory: Path, metrics: pl.DataFrame, diagnostics: pl.DataFrame, success: pl.DataFrame,
                      metadata: dict[str, Any]) -> dict[str, Path]:
    paths = {name: directory / name for name in ("scorecard.json", "metrics.jsonl", "metadata.json")}
    scorecard = {
        "config_hash": metadata["config_hash"], "git_sha": metadata["git_sha"],
        "primary_metric": "crisis CVaR-95 of the loss -P&L (lower is better)",
        "criterion": "crisis CVaR-95 improvement vs ERM >= 10 % with turnover increase <= 20 %, t interval across seeds",
        "success": success.to_dicts(), "diagnostics": diagnostics.to_dicts(),
    }
    write_text_atomic(json.dumps(_finite(scorecard), indent=1, sort_keys=True), paths["scorecard.json"])
    write_text_atomic("".join(json.dumps(_finite(row), sort_keys=True) + "\n" for row in metrics.to_dicts()), paths["metrics.jsonl"])
    write_text_atomic(json.dumps(_finite(metadata), indent=1, sort_keys=True, default=str), paths["metadata.json"])
    return paths
