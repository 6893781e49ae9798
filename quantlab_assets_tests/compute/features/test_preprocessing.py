"""Preprocessing variants: winsorised industry z-scores, rolling z-scores, per-date rank-gauss, forward fill then drop."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.features.compute import FeatureParams, compute_features
from scipy.stats import norm

from quantlab_assets.compute.features.preprocessing import complete_rows, rank_gauss_per_date
from quantlab_assets_tests.compute.features.panels import bars_frame, column, random_walks, universe_frame


def test_winsorised_industry_z_score_by_hand() -> None:
    # Two dates; on the second every instrument has a return: its last close over 100.
    last = {"A1": 101.0, "A2": 102.0, "A3": 140.0, "A4": 99.0, "B1": 98.0, "B2": 60.0, "B3": 100.5, "LONE": 105.0, "X": 97.0}
    bars = bars_frame({ticker: [100.0, close] for ticker, close in last.items()})
    industries = {t: "A" for t in ("A1", "A2", "A3", "A4")} | {t: "B" for t in ("B1", "B2", "B3")} | {"LONE": "C"}
    universe = universe_frame([t for t in last if t != "X"], industries)  # X is not in the universe table
    params = FeatureParams(features=("ret_1d",), industry_z_features=("ret_1d",), rolling_z_features=())
    frame = compute_features(bars, universe, params=params).frame.filter(pl.col(c.DATE) == bars[c.DATE].max())
    values = np.log(np.array(list(last.values())) / 100.0)
    low, high = np.quantile(values, [0.01, 0.99])  # numpy's default is linear interpolation
    clipped = dict(zip(last, np.clip(values, low, high), strict=True))
    assert clipped["A3"] == high and clipped["B2"] == low  # the extremes are pulled in
    expected = {}
    for members in (("A1", "A2", "A3", "A4"), ("B1", "B2", "B3")):
        group = np.array([clipped[t] for t in members])
        expected |= {t: (clipped[t] - group.mean()) / group.std(ddof=1) for t in members}
    result = dict(zip(frame[c.TICKER], frame["ret_1d__wz"], strict=True))
    for ticker, z in expected.items():
        assert result[ticker] == pytest.approx(z, rel=1e-12)
    assert result["LONE"] is None and result["X"] is None  # one-member industries have no dispersion
    assert frame["ret_1d"].to_list() == pytest.approx(list(values))  # the raw column is unchanged


def test_rolling_z_score_against_a_loop() -> None:
    closes = random_walks(["A", "B"], 300, seed=10)
    params = FeatureParams(features=("ret_5d",), industry_z_features=(), rolling_z_features=("ret_5d",))
    bars = bars_frame(closes, offsets={"B": 11})
    frame = compute_features(bars, universe_frame(["A", "B"]), params=params).frame
    for ticker in closes:
        x = column(frame, ticker, "ret_5d")
        expected = np.full(x.shape[0], np.nan)
        for t in range(x.shape[0]):
            window = x[t - 251 : t + 1] if t >= 251 else np.array([np.nan])
            if not np.isnan(window).any():
                expected[t] = (x[t] - window.mean()) / window.std(ddof=1)
        np.testing.assert_allclose(column(frame, ticker, "ret_5d__rz"), expected, rtol=1e-9, atol=1e-12)
        assert np.isnan(expected[:256]).all() and not np.isnan(expected[256:]).any()  # ret_5d from row 5


def test_raw_and_normalised_columns_are_told_apart_by_suffix() -> None:
    closes = random_walks(["A", "B", "C"], 30, seed=12)
    frame = compute_features(bars_frame(closes), universe_frame(list(closes))).frame
    raw = [name for name in frame.columns if "__" not in name and name not in (c.DATE, c.TICKER)]
    variants = [name for name in frame.columns if "__" in name]
    assert variants and all(name.endswith(("__wz", "__rz")) for name in variants)
    assert all(name.rsplit("__", 1)[0] in raw for name in variants)


def test_complete_rows_forward_fills_at_most_five_rows_then_drops() -> None:
    days = [dt.date(2024, 1, d) for d in range(1, 11)]
    values = [None, 1.0, None, None, None, None, None, None, 2.0, None]
    frame = pl.DataFrame(
        {c.DATE: days * 2, c.TICKER: ["A"] * 10 + ["B"] * 10, "f": values + [float(i) for i in range(10)], "g": [0.0] * 20}
    ).sort(c.DATE, c.TICKER)
    done = complete_rows(frame)
    a = done.filter(pl.col(c.TICKER) == "A")
    # Row 0 has nothing to fill from; rows 2-6 take row 1's value; row 7 is 6 rows away: dropped.
    assert a[c.DATE].to_list() == [days[i] for i in (1, 2, 3, 4, 5, 6, 8, 9)]
    assert a["f"].to_list() == [1.0] * 6 + [2.0, 2.0]
    assert done.filter(pl.col(c.TICKER) == "B").height == 10
    assert done.equals(done.sort(c.DATE, c.TICKER))


def _cross_sections() -> pl.DataFrame:
    day1, day2 = dt.date(2024, 1, 2), dt.date(2024, 1, 3)
    return pl.DataFrame({
        c.DATE: [day1] * 4 + [day2] * 3,
        c.TICKER: ["A", "B", "C", "D", "A", "B", "C"],
        "x": [3.0, 1.0, None, 1.0, float("nan"), 5.0, -2.0],
        "y": [0.5, -0.5, 2.0, 0.0, 7.0, 7.0, 7.0],
    })


def test_rank_gauss_per_date_by_hand() -> None:
    result = rank_gauss_per_date(_cross_sections(), ["x", "y"])
    # Day 1, x: 3 values (the null is left out), the tied 1s share rank 1.5 of 3; day 2: NaN counts as null.
    expected_x = [norm.ppf(2.5 / 3), norm.ppf(1 / 3), None, norm.ppf(1 / 3), None, norm.ppf(0.75), norm.ppf(0.25)]
    expected_y = [norm.ppf(2.5 / 4), norm.ppf(0.5 / 4), norm.ppf(3.5 / 4), norm.ppf(1.5 / 4), 0.0, 0.0, 0.0]
    assert [v is None for v in result["x"]] == [v is None for v in expected_x]
    assert result["x"].drop_nulls().to_list() == pytest.approx([v for v in expected_x if v is not None], abs=1e-12)
    assert result["y"].to_list() == pytest.approx(expected_y, abs=1e-12)
    assert result.select(c.DATE, c.TICKER).equals(_cross_sections().select(c.DATE, c.TICKER))


def test_rank_gauss_per_date_ignores_any_monotone_transform_within_a_date() -> None:
    rng = np.random.default_rng(5)
    dates = [dt.date(2024, 1, 1) + dt.timedelta(days=d) for d in range(6) for _ in range(40)]
    frame = pl.DataFrame({c.DATE: dates, c.TICKER: [f"T{i}" for _ in range(6) for i in range(40)],
                          "x": rng.standard_normal(240)})
    day = pl.col(c.DATE).rank("dense").cast(pl.Float64)
    # A different increasing transform each date: scaled and shifted by the date, then cubed.
    transformed = frame.with_columns(((pl.col("x") * day + 10 * day) ** 3).alias("x"))
    a, b = rank_gauss_per_date(frame, ["x"])["x"], rank_gauss_per_date(transformed, ["x"])["x"]
    assert (a - b).abs().max() < 1e-12
    # ... while the raw values differ from date to date: the normalisation is what made them equal.
    assert not np.allclose(frame["x"].to_numpy(), transformed["x"].to_numpy())


def test_rank_gauss_per_date_reads_only_its_own_date() -> None:
    frame = _cross_sections()
    changed = frame.with_columns(pl.when(pl.col(c.DATE) == dt.date(2024, 1, 3)).then(pl.col("x") * -50).otherwise(pl.col("x")).alias("x"))
    first_day = pl.col(c.DATE) == dt.date(2024, 1, 2)
    before, after = rank_gauss_per_date(frame, ["x"]).filter(first_day), rank_gauss_per_date(changed, ["x"]).filter(first_day)
    assert before.equals(after)
