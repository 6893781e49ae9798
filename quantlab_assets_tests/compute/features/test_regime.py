"""Regime signals: volatility ratio, volume shock, overnight gaps and market breadth, hand-computed."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from quantlab_assets.compute import columns as c
from quantlab_assets_tests.compute.features.panels import bars_frame, column, features, random_walks


def test_volatility_ratio_is_short_over_long_volatility() -> None:
    frame = features(bars_frame(random_walks(["A"], 200, seed=8)), ["vol_21d", "vol_126d", "vol_ratio_21d_126d"])
    np.testing.assert_allclose(
        column(frame, "A", "vol_ratio_21d_126d"), column(frame, "A", "vol_21d") / column(frame, "A", "vol_126d"), rtol=1e-14
    )


def test_hand_computed_volume_shock() -> None:
    volumes = [1000.0] * 252 + [5000.0] * 5
    frame = features(bars_frame({"A": [10.0] * 257}, volumes={"A": volumes}), ["volume_shock_5d", "volume_shock_21d"])
    shock_5 = column(frame, "A", "volume_shock_5d")
    assert np.isnan(shock_5[:251]).all()
    assert shock_5[251] == pytest.approx(0.0, abs=1e-12)
    assert shock_5[256] == pytest.approx(math.log(5000.0 / ((247 * 1000.0 + 5 * 5000.0) / 252)), rel=1e-12)
    shock_21 = column(frame, "A", "volume_shock_21d")[256]
    mean_21, mean_252 = (16 * 1000.0 + 5 * 5000.0) / 21, (247 * 1000.0 + 5 * 5000.0) / 252
    assert shock_21 == pytest.approx(math.log(mean_21 / mean_252), rel=1e-12)


def test_hand_computed_overnight_gap_statistics() -> None:
    rng = np.random.default_rng(9)
    closes = list(100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, 40))))
    opens = [closes[0]] + [closes[t - 1] * math.exp(g) for t, g in enumerate(rng.normal(0, 0.005, 39), start=1)]
    frame = features(bars_frame({"A": closes}, opens={"A": opens}), ["gap_mean_21d", "gap_std_21d", "gap_maxabs_21d"])
    gaps = np.array([math.log(opens[t] / closes[t - 1]) for t in range(1, 40)])  # gaps[k] is row k + 1
    mean, std, max_abs = (column(frame, "A", name) for name in ("gap_mean_21d", "gap_std_21d", "gap_maxabs_21d"))
    assert np.isnan(mean[:21]).all() and np.isnan(std[:21]).all() and np.isnan(max_abs[:21]).all()
    for t in range(21, 40):
        window = gaps[t - 21 : t]  # rows t-20 .. t
        assert mean[t] == pytest.approx(window.mean(), rel=1e-10, abs=1e-15)
        assert std[t] == pytest.approx(window.std(ddof=1), rel=1e-10)
        assert max_abs[t] == np.abs(window).max()


def test_hand_computed_market_breadth() -> None:
    # Daily closes of three instruments; C lists on day 2.
    closes = {
        "A": [10.0, 11.0, 12.0, 11.0] + [11.0] * 60,
        "B": [20.0, 19.0, 19.0, 20.0] + [21.0] * 60,
        "C": [5.0, 6.0, 5.0] + [5.0] * 60,
    }
    frame = features(
        bars_frame(closes, offsets={"C": 1}), ["breadth_up", "adv_decline_ratio", "breadth_ma_21d", "breadth_above_ma50"]
    )
    per_date = frame.group_by(c.DATE, maintain_order=True).first().sort(c.DATE)
    # Date 0: no returns. Date 1: A up, B down (C's first row has no return). Date 2: A up, B flat, C up.
    # Date 3: A down, B up, C down. Date 4: B up, A and C flat.
    assert per_date["breadth_up"][:5].to_list() == pytest.approx([None, 1 / 2, 2 / 3, 1 / 3, 1 / 3])
    assert per_date["adv_decline_ratio"][:5].to_list() == [None, 1.0, None, 0.5, None]  # null: nobody down
    # The 21-date mean needs 21 dates of breadth (dates 1..21).
    breadth = per_date["breadth_up"].to_numpy()
    ma = per_date["breadth_ma_21d"].to_list()
    assert all(value is None for value in ma[:21])
    assert ma[21] == pytest.approx(breadth[1:22].mean(), rel=1e-12)
    # Above the 50-day MA on date 50: A = 11 < 11.02, B = 21 > 20.9, C = 5 < 5.02 (its 50 rows, dates 1..50).
    above = per_date["breadth_above_ma50"].to_list()
    assert all(value is None for value in above[:49])
    assert above[50] == pytest.approx(1 / 3)
    # Every instrument's row of a date carries the same market value.
    assert frame.group_by(c.DATE).agg(pl.col("breadth_up").n_unique()).get_column("breadth_up").max() == 1
