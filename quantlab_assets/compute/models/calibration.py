"""Calibration of out-of-fold probabilities of a binary outcome: Brier score, log loss, expected
calibration error, AUC, and the reliability curve, per fold and across folds with a confidence interval.

ECE: predictions cut into `bins` equal-width probability bins; the row-weighted mean over non-empty bins
of |mean outcome - mean probability|. The reliability curve is that table (bin, rows, mean probability,
observed frequency). AUC is null where a fold holds one outcome only. Across folds: the mean of each
score and a 95 % Student-t interval over the folds (null with fewer than two folds; cut at the score's
range, which an interval from a few folds can pass) — one split's score
is no evidence of a difference (seed 002's "10 % lower validation loss").
"""

from __future__ import annotations

from typing import Final

import numpy as np
import polars as pl

from quantlab_assets.compute.stats import t_interval

PROBABILITY: Final = "probability"
OUTCOME: Final = "outcome"
SCORES: Final = ("brier", "log_loss", "ece", "auc")
# Where each score can lie: an interval from two or three folds can reach past it, and is cut there.
_RANGE: Final = {"brier": (0.0, 1.0), "log_loss": (0.0, np.inf), "ece": (0.0, 1.0), "auc": (0.0, 1.0)}
_CLIP = 1e-7


def _fold_scores(probability: np.ndarray, outcome: np.ndarray, bins: int) -> dict[str, float | None]:
    # Imported here: sklearn takes about 0.3 s to import, and every Dagster run process imports this module.
    from sklearn.metrics import roc_auc_score

    p = np.clip(probability, _CLIP, 1 - _CLIP)
    curve = reliability_curve(probability, outcome, bins)
    ece = float((curve["rows"] * (curve["observed"] - curve["mean_probability"]).abs()).sum() / len(probability))
    return {
        "rows": len(probability), "base_rate": float(outcome.mean()), "mean_probability": float(probability.mean()),
        "probability_std": float(probability.std()), "brier": float(np.mean((probability - outcome) ** 2)),
        "log_loss": float(-np.mean(outcome * np.log(p) + (1 - outcome) * np.log(1 - p))), "ece": ece,
        "auc": float(roc_auc_score(outcome, probability)) if len(np.unique(outcome)) == 2 else None,
    }


def reliability_curve(probability: np.ndarray, outcome: np.ndarray, bins: int = 10) -> pl.DataFrame:
    """Per non-empty equal-width bin: bin index, rows, mean probability, observed frequency of the outcome."""
    index = np.minimum((probability * bins).astype(np.int64), bins - 1)
    return (
        pl.DataFrame({"bin": index, PROBABILITY: probability, OUTCOME: outcome.astype(np.float64)})
        .group_by("bin")
        .agg(pl.len().alias("rows"), pl.col(PROBABILITY).mean().alias("mean_probability"),
             pl.col(OUTCOME).mean().alias("observed"))
        .sort("bin")
    )


def calibration_by_fold(predictions: pl.DataFrame, probability: str, outcome: str, fold: str, bins: int = 10) -> pl.DataFrame:
    """One row per fold: rows, base rate, mean and std of the probability, Brier, log loss, ECE, AUC."""
    rows = []
    for (fold_id,), part in predictions.sort(fold).group_by(fold, maintain_order=True):
        rows.append({fold: fold_id, **_fold_scores(part[probability].to_numpy(), part[outcome].to_numpy(), bins)})
    return pl.DataFrame(rows)


def across_folds(by_fold: pl.DataFrame, level: float = 0.95) -> dict[str, float | int | None]:
    """Mean of each score over the folds where it is defined, with its Student-t interval and the fold count."""
    summary: dict[str, float | int | None] = {"folds": by_fold.height}
    for name in SCORES:
        mean, ci_low, ci_high = t_interval(by_fold[name].drop_nulls().to_numpy(), level)
        low, high = _RANGE[name]
        summary |= {name: mean, f"{name}_ci_low": None if ci_low is None else max(low, ci_low),
                    f"{name}_ci_high": None if ci_high is None else min(high, ci_high)}
    return summary
