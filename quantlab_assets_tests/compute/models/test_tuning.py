"""The hyper-parameter search: no trial sees a row of the test span or a training row within the embargo
of its test rows, trials are data (the default first, pruned ones kept), and the search is deterministic."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import numpy as np
import polars as pl
import pytest

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.models.barrier import HITS_UPPER
from quantlab_assets.compute.models.base_models import XGBoostParams
from quantlab_assets.compute.models.classifier import TunedParams
from quantlab_assets.compute.models.oof import DesignPanel
from quantlab_assets.compute.models.tuning import (
    TuningParams,
    best_params,
    tuned_params,
    search_barrier_classifier,
    xgboost_log_loss,
)

DAYS = 700
TICKERS = 6
VALIDATION_END = dt.date(2012, 6, 29)
EPOCH = dt.date(1970, 1, 1)


@pytest.fixture(scope="module")
def panel() -> tuple[DesignPanel, pl.DataFrame]:
    """Business days from 2011 with a 10-day barrier and 21-day labels; feature `day` is the row's date
    as a day number, so a scorer can see which dates it was given."""
    rng = np.random.default_rng(0)
    dates = pl.date_range(dt.date(2011, 1, 3), dt.date(2014, 12, 31), "1d", eager=True)
    dates = dates.filter(dates.dt.weekday() <= 5)[:DAYS]
    frame = pl.DataFrame({c.DATE: dates.to_list() * TICKERS,
                          c.TICKER: [f"T{i}" for i in range(TICKERS) for _ in range(DAYS)]}).sort(c.DATE, c.TICKER)
    signal = rng.normal(size=frame.height)
    frame = frame.with_columns(
        ((pl.col(c.DATE) - EPOCH).dt.total_days().cast(pl.Float64)).alias("day"),
        pl.Series("signal_1", signal),
        pl.Series(HITS_UPPER, (signal + rng.normal(size=frame.height) > 0).astype(np.int8)),
    )
    position = frame.select(pl.col(c.DATE).rank("dense").cast(pl.Int64) - 1)[c.DATE].to_numpy()
    day_list = dates.to_list()
    labels = frame.select(c.DATE, c.TICKER).with_columns(
        pl.Series("label_21d", rng.normal(size=frame.height)),
        pl.Series("label_end_21d", [day_list[p + 21] if p + 21 < DAYS else None for p in position], dtype=pl.Date),
        pl.Series("tb_end", [day_list[p + 10] if p + 10 < DAYS else None for p in position], dtype=pl.Date),
    ).with_columns(pl.when(pl.col("label_end_21d").is_null()).then(None).otherwise(pl.col("label_21d")).alias("label_21d"))
    return DesignPanel(frame, ("day", "signal_1")), labels


def test_no_trial_sees_the_test_span_and_training_rows_stay_an_embargo_before_test_rows(panel) -> None:
    design, labels = panel
    seen: list[tuple[float, float, float, float]] = []

    def watching(params: XGBoostParams, x_train, y_train, x_test, y_test) -> float:
        seen.append((x_train[:, 0].min(), x_train[:, 0].max(), x_test[:, 0].min(), x_test[:, 0].max()))
        return xgboost_log_loss(params, x_train, y_train, x_test, y_test)

    result = search_barrier_classifier(design, labels, VALIDATION_END, TuningParams(n_trials=3, n_folds=2, max_estimators=50),
                                       fit_score=watching)
    assert len(seen) >= 3
    research_days = sorted(set(design.frame.filter(pl.col(c.DATE) <= VALIDATION_END)["day"].to_list()))
    # A row may train or test only if its 21d label and its barrier end by validation_end.
    resolved = labels.filter((pl.col("label_end_21d") <= VALIDATION_END) & (pl.col("tb_end") <= VALIDATION_END))
    last_allowed = (resolved[c.DATE].max() - EPOCH).days
    for train_first, train_last, test_first, test_last in seen:
        assert train_last <= last_allowed and test_last <= last_allowed
        # 63 trading dates of embargo between the last training date and the first test date
        gap = sum(1 for d in research_days if train_last < d < test_first)
        assert gap >= 63, gap
    assert result.folds["end"].max() <= VALIDATION_END


def test_trials_are_data_the_default_comes_first_and_the_search_is_deterministic(panel) -> None:
    design, labels = panel
    params = TuningParams(n_trials=7, n_folds=3, max_estimators=50, pruner_startup_trials=2)
    first = search_barrier_classifier(design, labels, VALIDATION_END, params)
    again = search_barrier_classifier(design, labels, VALIDATION_END, params)
    assert first.trials.equals(again.trials) and first.best == again.best
    trials = first.trials
    assert trials["trial"].to_list() == list(range(7)) and trials["is_default"].to_list() == [True] + [False] * 6
    default = XGBoostParams()  # its 400 trees capped by the space's 50
    assert json.loads(trials["params"][0]) == {"colsample_bytree": default.colsample_bytree, "learning_rate": default.learning_rate,
                                               "max_depth": default.max_depth, "n_estimators": 50,
                                               "subsample": default.subsample}
    complete = trials.filter(pl.col("state") == "complete")
    assert (complete["folds_evaluated"] == 3).all() and complete["mean_log_loss"].is_not_null().all()
    assert trials.filter(pl.col("state") == "pruned")["mean_log_loss"].is_null().all()
    best_row = complete.sort("mean_log_loss").row(0, named=True)
    assert first.summary["best_trial"] == best_row["trial"] and first.summary["configurations_tried"] == 7
    assert first.summary["complete"] + first.summary["pruned"] == 7
    # The toy target is half signal: the best trial beats predicting the training base rate.
    assert first.summary["base_rate_mean_log_loss"] > first.summary["best_mean_log_loss"]
    assert first.summary["skill"] == "beats the base rate" and first.summary["base_rate_minus_best_se"] > 4.30

    # What barrier_probabilities takes from the stored trials is the search's best.
    assert best_params(first.trials) == first.best == dataclasses.replace(
        XGBoostParams(), **json.loads(best_row["params"]))
    with pytest.raises(ValueError, match="no complete trial"):
        best_params(first.trials.filter(pl.col("state") != "complete"))
    # ...for the rows after the span it was tuned on, which every trial names; the seed's defaults before it.
    assert first.trials["tuned_through"].unique().to_list() == [VALIDATION_END]
    assert tuned_params(first.trials, XGBoostParams()) == TunedParams(XGBoostParams(), first.best, VALIDATION_END)
    with pytest.raises(ValueError, match="tuned spans"):
        tuned_params(first.trials.with_columns(pl.lit(None, dtype=pl.Date).alias("tuned_through")), XGBoostParams())
