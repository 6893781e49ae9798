"""Diagnostics: per-date IC over exactly the predicted rows, null on constant predictions, hand-checked values."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from scipy import stats

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.models.metrics import LABEL, PREDICTION, per_date_scores, score_predictions

D1, D2 = dt.date(2024, 1, 2), dt.date(2024, 1, 3)


def frame(rows: list[tuple[dt.date, str, float | None, float | None]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={c.DATE: pl.Date, c.TICKER: pl.String, PREDICTION: pl.Float64, LABEL: pl.Float64},
                        orient="row")


def test_ic_is_the_mean_of_per_date_correlations_on_predicted_rows_only() -> None:
    # On D1 only A..D were predicted; E has a label but no prediction. Scoring the predicted rows gives
    # the per-date correlations below; a pooled correlation or one that filled E's prediction would not.
    rows = [
        (D1, "A", 1.0, 0.01), (D1, "B", 2.0, 0.03), (D1, "C", 3.0, 0.02), (D1, "D", 4.0, 0.05), (D1, "E", None, -0.50),
        (D2, "A", 1.0, 0.04), (D2, "B", 2.0, 0.01), (D2, "C", 3.0, 0.00), (D2, "D", 4.0, 0.02), (D2, "E", 5.0, -0.01),
    ]
    scores = score_predictions(frame(rows)).row(0, named=True)
    ic1 = stats.pearsonr([1, 2, 3, 4], [0.01, 0.03, 0.02, 0.05]).statistic
    ic2 = stats.pearsonr([1, 2, 3, 4, 5], [0.04, 0.01, 0.0, 0.02, -0.01]).statistic
    assert scores["ic"] == pytest.approx((ic1 + ic2) / 2)
    assert scores["n_rows"] == 9 and scores["n_dates"] == 2
    rank1 = stats.spearmanr([1, 2, 3, 4], [0.01, 0.03, 0.02, 0.05]).statistic
    rank2 = stats.spearmanr([1, 2, 3, 4, 5], [0.04, 0.01, 0.0, 0.02, -0.01]).statistic
    assert scores["rank_ic"] == pytest.approx((rank1 + rank2) / 2)
    assert scores["icir"] == pytest.approx(np.mean([ic1, ic2]) / np.std([ic1, ic2], ddof=1))
    # The same labels with E's missing prediction filled by 0 (a different row set) give another IC.
    filled = score_predictions(frame(rows).with_columns(pl.col(PREDICTION).fill_null(0.0))).row(0, named=True)
    assert filled["ic"] != pytest.approx(scores["ic"], abs=1e-3)
    pooled = stats.pearsonr(*frame(rows).drop_nulls().select(PREDICTION, LABEL).to_numpy().T).statistic
    assert pooled != pytest.approx(scores["ic"], abs=1e-3)


def test_constant_predictions_have_a_null_ic_not_a_number() -> None:
    rng = np.random.default_rng(0)
    dates = [D1] * 50 + [D2] * 50
    labels = rng.normal(size=100)
    constant = pl.DataFrame({c.DATE: dates, PREDICTION: [0.0] * 100, LABEL: labels})
    scores = score_predictions(constant).row(0, named=True)
    assert scores["ic"] is None and scores["rank_ic"] is None and scores["icir"] is None
    assert scores["n_dates_ic_defined"] == 0
    assert scores["prediction_std"] == 0.0 and scores["calibration_slope"] is None and scores["quintile_spread"] is None
    # One constant date among varying ones contributes null, and the mean runs over the other date only.
    mixed = constant.with_columns(pl.when(pl.col(c.DATE) == D2).then(pl.Series(labels) * 0.5).otherwise(0.0).alias(PREDICTION))
    daily = per_date_scores(mixed.lazy()).collect().sort(c.DATE)
    assert daily["ic"][0] is None and daily["ic"][1] == pytest.approx(1.0)
    assert score_predictions(mixed).row(0, named=True)["ic"] == pytest.approx(1.0)


def test_spread_hit_rate_and_calibration_by_group() -> None:
    rng = np.random.default_rng(1)
    n = 400
    prediction = rng.normal(size=n)
    label = 0.5 * prediction + 0.1 + rng.normal(scale=0.5, size=n)
    panel = pl.DataFrame({"model": ["m"] * n, c.DATE: [D1, D2] * (n // 2), PREDICTION: prediction, LABEL: label})
    scores = score_predictions(panel, by=["model"]).row(0, named=True)
    assert scores["calibration_slope"] == pytest.approx(np.polyfit(prediction, label, 1)[0])
    assert scores["calibration_intercept"] == pytest.approx(np.polyfit(prediction, label, 1)[1])
    assert scores["hit_rate"] == pytest.approx(np.mean(np.sign(prediction) == np.sign(label)))
    # Top-minus-bottom quintile of each date's predictions, averaged over the two dates.
    spreads = []
    for parity in (0, 1):
        p, y = prediction[parity::2], label[parity::2]
        order = np.argsort(p, kind="stable")
        spreads.append(y[order[-40:]].mean() - y[order[:40]].mean())
    assert scores["quintile_spread"] == pytest.approx(np.mean(spreads))


def test_degenerate_predictions_are_named() -> None:
    from quantlab_assets.compute.models.metrics import degeneracy_problems

    rng = np.random.default_rng(2)
    dates = [D1] * 30 + [D2] * 30
    varied = pl.DataFrame({c.DATE: dates, PREDICTION: rng.normal(size=60)})
    assert degeneracy_problems(varied, 1e-6, 0.5) == []
    constant = varied.with_columns(pl.lit(0.0).alias(PREDICTION))
    assert len(degeneracy_problems(constant, 1e-6, 0.5)) == 2
    two_values = varied.with_columns(pl.col(PREDICTION).sign())
    assert degeneracy_problems(two_values, 1e-6, 0.5) == ["median share of distinct predictions per date 0.067 below 0.5"]
