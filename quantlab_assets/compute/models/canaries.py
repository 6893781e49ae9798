"""The two leakage canaries of Model 2 (seed 001's lesson), as verdicts on out-of-fold predictions.

- Shuffled labels: with the label permuted across all rows (dates and instruments) it is independent of
  every input, so the per-date ICs are independent draws around 0 and their mean must lie within
  `bound_se` standard errors (sd of the daily ICs / sqrt(dates with an IC)). A fold that trains on its
  test rows, or a prediction joined to another row's label, does not stay inside.
- Planted signal: on the synthetic market, a model given the planted signal among its inputs must reach
  a share of the oracle's rank IC: the planted signal itself scored as the prediction on exactly the
  rows the model predicted.

The tests run both on a small market, `benchmarks/model_pipeline.py` at 500 x 5,000.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.models.metrics import LABEL, PREDICTION, per_date_scores, score_predictions
from quantlab_assets.compute.models.oof import DesignPanel

# Three ordinary features and the planted signal: what a model sees in the planted-signal canary.
PLANTED_CANARY_INPUTS: Final = ("ret_21d", "rsi_14", "vol_21d", c.PLANTED_SIGNAL)
NOISE_BOUND_SE: Final = 3.0
REQUIRED_ORACLE_SHARE: Final = 0.5


@dataclass(frozen=True)
class ShuffledLabelCanary:
    mean_ic: float | None
    bound: float | None
    passed: bool


@dataclass(frozen=True)
class PlantedSignalCanary:
    rank_ic: float | None
    oracle_rank_ic: float | None
    share: float | None
    passed: bool


def with_shuffled_labels(design: DesignPanel, seed: int) -> DesignPanel:
    """The design panel with its label permuted across all rows (the inputs unchanged)."""
    return design.with_frame(design.frame.with_columns(pl.col(LABEL).shuffle(seed=seed)))


def shuffled_label_canary(predictions: pl.DataFrame, bound_se: float = NOISE_BOUND_SE) -> ShuffledLabelCanary:
    """Out-of-fold predictions of shuffled labels: |mean daily IC| <= `bound_se` standard errors. Fewer
    than two dates with a defined IC (e.g. a constant prediction) cannot pass."""
    daily_ic = per_date_scores(predictions.lazy()).collect()["ic"].drop_nulls()
    if daily_ic.len() < 2:
        return ShuffledLabelCanary(mean_ic=None, bound=None, passed=False)
    mean_ic = float(daily_ic.mean())
    bound = bound_se * float(daily_ic.std()) / math.sqrt(daily_ic.len())
    return ShuffledLabelCanary(mean_ic=mean_ic, bound=bound, passed=abs(mean_ic) <= bound)


def oracle_rank_ic(predictions: pl.DataFrame, planted_signal: pl.DataFrame) -> float | None:
    """The rank IC of the planted signal (frame: date, ticker, planted_signal) on exactly the rows of
    `predictions`."""
    on_rows = predictions.drop(PREDICTION).join(
        planted_signal.select(c.DATE, c.TICKER, pl.col(c.PLANTED_SIGNAL).alias(PREDICTION)), on=[c.DATE, c.TICKER]
    )
    return score_predictions(on_rows)["rank_ic"][0]


def planted_signal_canary(predictions: pl.DataFrame, planted_signal: pl.DataFrame,
                          required_share: float = REQUIRED_ORACLE_SHARE) -> PlantedSignalCanary:
    """Out-of-fold predictions of a model that saw the planted signal: its rank IC must reach
    `required_share` of the oracle's on the same rows; an undefined or non-positive oracle cannot pass."""
    rank_ic = score_predictions(predictions)["rank_ic"][0]
    oracle = oracle_rank_ic(predictions, planted_signal)
    if rank_ic is None or oracle is None or oracle <= 0:
        return PlantedSignalCanary(rank_ic=rank_ic, oracle_rank_ic=oracle, share=None, passed=False)
    share = rank_ic / oracle
    return PlantedSignalCanary(rank_ic=rank_ic, oracle_rank_ic=oracle, share=share, passed=share >= required_share)
