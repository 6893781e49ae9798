"""The canary verdicts fail where a leak or a dead model would show, and pass where none is."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.models import canaries
from quantlab_assets.compute.models.metrics import LABEL, PREDICTION

DATES, TICKERS = 120, 40


def _panel(seed: int) -> tuple[pl.DataFrame, np.random.Generator]:
    rng = np.random.default_rng(seed)
    dates = pl.date_range(dt.date(2020, 1, 1), dt.date(2020, 1, 1) + dt.timedelta(days=DATES - 1), eager=True)
    frame = pl.DataFrame({
        c.DATE: dates.gather(np.repeat(np.arange(DATES), TICKERS)),
        c.TICKER: np.tile([f"T{i:02d}" for i in range(TICKERS)], DATES),
        c.PLANTED_SIGNAL: rng.standard_normal(DATES * TICKERS),
    })
    return frame.with_columns((0.3 * pl.col(c.PLANTED_SIGNAL) + pl.Series(rng.standard_normal(frame.height))).alias(LABEL)), rng


def test_shuffled_label_canary_passes_noise_and_fails_a_leaked_label() -> None:
    panel, rng = _panel(1)
    independent = panel.with_columns(pl.Series(PREDICTION, rng.standard_normal(panel.height)))
    leaked = panel.with_columns((pl.col(LABEL) + pl.Series(rng.standard_normal(panel.height))).alias(PREDICTION))
    assert canaries.shuffled_label_canary(independent).passed
    verdict = canaries.shuffled_label_canary(leaked)
    assert not verdict.passed and verdict.mean_ic > verdict.bound


def test_a_constant_prediction_passes_no_canary() -> None:
    panel, _ = _panel(2)
    constant = panel.with_columns(pl.lit(0.5).alias(PREDICTION))
    assert canaries.shuffled_label_canary(constant) == canaries.ShuffledLabelCanary(None, None, False)
    planted = canaries.planted_signal_canary(constant, panel)
    assert planted.rank_ic is None and not planted.passed


def test_planted_signal_canary_scores_the_oracle_on_the_predicted_rows_only() -> None:
    panel, rng = _panel(3)
    # The oracle is strong on the first half of the dates and absent on the second, so the share
    # depends on which rows the oracle is scored on.
    cut = panel[c.DATE].unique().sort()[DATES // 2]
    panel = panel.with_columns(
        pl.when(pl.col(c.DATE) < cut).then(pl.col(LABEL)).otherwise(pl.Series(rng.standard_normal(panel.height))).alias(LABEL)
    )
    early = panel.filter(pl.col(c.DATE) < cut)
    predicted = early.with_columns((pl.col(c.PLANTED_SIGNAL) + 2 * pl.Series(rng.standard_normal(early.height))).alias(PREDICTION))
    verdict = canaries.planted_signal_canary(predicted, panel)
    on_all_rows = canaries.oracle_rank_ic(panel.with_columns(pl.col(c.PLANTED_SIGNAL).alias(PREDICTION)), panel)
    assert verdict.oracle_rank_ic > 1.5 * on_all_rows
    assert verdict.share == verdict.rank_ic / verdict.oracle_rank_ic
    random = early.with_columns(pl.Series(PREDICTION, rng.standard_normal(early.height)))
    assert verdict.passed and not canaries.planted_signal_canary(random, panel).passed
