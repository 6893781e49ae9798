"""Preprocessing variants: winsorised industry z-scores, rolling z-scores, forward fill then drop."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.features.compute import FeatureParams, compute_features
from quantlab_assets.compute.features.preprocessing import complete_rows
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
