"""Cross-asset features against the benchmark: hand-computed values, beta and correlation against
independent formulas, cross-sectional ranks, and the benchmark series itself."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.features.benchmark import BENCHMARK_RETURN, benchmark_returns
from quantlab_assets.compute.features.cross_asset import BETA_WINDOWS, CORRELATION_WINDOWS, RELATIVE_STRENGTH_WINDOWS
from quantlab_assets_tests.compute.features.panels import bars_frame, column, features, random_walks, universe_frame

MOMENTS = [f"corr_{w}d" for w in CORRELATION_WINDOWS] + [f"beta_{w}d" for w in BETA_WINDOWS]
RELATIVE = [f"rel_strength_{w}d" for w in RELATIVE_STRENGTH_WINDOWS]


def log_returns(close: list[float]) -> np.ndarray:
    return np.concatenate([[np.nan], np.diff(np.log(np.asarray(close)))])


def test_hand_computed_beta_correlation_and_relative_strength() -> None:
    rng = np.random.default_rng(6)
    market = rng.normal(0.0, 0.01, 300)
    market[0] = 0.0
    closes = {
        "MKT": list(100.0 * np.exp(np.cumsum(market))),
        "LEV": list(50.0 * np.exp(np.cumsum(2.0 * market + 0.001))),  # r = 2 r_m + 0.001
        "INV": list(80.0 * np.exp(np.cumsum(-0.5 * market))),
    }
    frame = features(bars_frame(closes), [*MOMENTS, *RELATIVE], benchmark="MKT")
    for w in BETA_WINDOWS:
        beta = column(frame, "LEV", f"beta_{w}d")
        assert np.isnan(beta[:w]).all()
        np.testing.assert_allclose(beta[w:], 2.0, rtol=1e-9)
        np.testing.assert_allclose(column(frame, "INV", f"beta_{w}d")[w:], -0.5, rtol=1e-9)
    for w in CORRELATION_WINDOWS:
        np.testing.assert_allclose(column(frame, "LEV", f"corr_{w}d")[w:], 1.0, rtol=1e-9)
        np.testing.assert_allclose(column(frame, "INV", f"corr_{w}d")[w:], -1.0, rtol=1e-9)
        np.testing.assert_allclose(column(frame, "MKT", f"corr_{w}d")[w:], 1.0, rtol=1e-9)
    for w in RELATIVE_STRENGTH_WINDOWS:
        # sum over w days of (2 r_m + 0.001) - r_m = (log P_m(t) - log P_m(t - w)) + 0.001 w
        market_close = np.asarray(closes["MKT"])
        expected = [math.log(market_close[t] / market_close[t - w]) + 0.001 * w if t >= w else np.nan for t in range(300)]
        np.testing.assert_allclose(column(frame, "LEV", f"rel_strength_{w}d"), expected, rtol=1e-9, atol=1e-12)


def rolling_reference(x: np.ndarray, y: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """(correlation, beta) over each full window of pairs, with numpy's own estimators."""
    corr, beta = np.full(x.shape[0], np.nan), np.full(x.shape[0], np.nan)
    for t in range(window - 1, x.shape[0]):
        a, b = x[t - window + 1 : t + 1], y[t - window + 1 : t + 1]
        if np.isnan(a).any() or np.isnan(b).any():
            continue
        corr[t] = np.corrcoef(a, b)[0, 1]
        beta[t] = np.cov(a, b, ddof=1)[0, 1] / np.var(b, ddof=1)
    return corr, beta


def test_beta_and_correlation_against_numpy_with_the_equal_weighted_benchmark() -> None:
    tickers = ["A", "B", "C", "D"]
    closes = random_walks(tickers, 300, seed=7)
    bars = bars_frame(closes, offsets={"D": 40})
    frame = features(bars, MOMENTS)
    market = benchmark_returns(bars, universe_frame(list(closes)), None)
    for ticker in tickers:
        own = bars.filter(pl.col(c.TICKER) == ticker).join(market, on=c.DATE, how="left").sort(c.DATE)
        x, y = own[c.LOG_RETURN].fill_null(np.nan).to_numpy(), own[BENCHMARK_RETURN].fill_null(np.nan).to_numpy()
        for w in sorted(set(CORRELATION_WINDOWS) | set(BETA_WINDOWS)):
            corr, beta = rolling_reference(x, y, w)
            if w in CORRELATION_WINDOWS:
                np.testing.assert_allclose(column(frame, ticker, f"corr_{w}d"), corr, rtol=1e-9, atol=1e-12)
            if w in BETA_WINDOWS:
                np.testing.assert_allclose(column(frame, ticker, f"beta_{w}d"), beta, rtol=1e-9, atol=1e-12)


def test_benchmark_returns_ticker_or_equal_weight() -> None:
    closes = {"A": [100.0, 110.0, 99.0], "B": [50.0, 50.0, 55.0], "IDX": [10.0, 10.5, 10.0]}
    bars = bars_frame(closes)
    ticker = benchmark_returns(bars, universe_frame(list(closes)), "IDX")
    np.testing.assert_allclose(ticker[BENCHMARK_RETURN].to_numpy()[1:], np.diff(np.log(closes["IDX"])))
    assert ticker[BENCHMARK_RETURN][0] is None
    equal = benchmark_returns(bars, universe_frame(list(closes)), None)
    expected = np.mean([np.diff(np.log(closes[t])) for t in closes], axis=0)
    np.testing.assert_allclose(equal[BENCHMARK_RETURN].to_numpy()[1:], expected, rtol=1e-14)
    # A named benchmark without bars is missing, not replaced by the equal-weighted mean.
    assert benchmark_returns(bars, universe_frame(list(closes)), "NOT_LOADED")[BENCHMARK_RETURN].null_count() == 3


def test_cross_sectional_percentile_ranks() -> None:
    # ret_21d on row 21: A -> log(1.2), B -> log(0.9), C -> log(1.2) (a tie), D listed late (null).
    closes = {"A": [100.0] * 21 + [120.0], "B": [100.0] * 21 + [90.0], "C": [50.0] * 21 + [60.0], "D": [10.0] * 5}
    frame = features(bars_frame(closes, offsets={"D": 17}), ["rank_ret_21d", "rank_vol_21d"])
    last = frame.filter(pl.col(c.DATE) == frame[c.DATE].max()).sort(c.TICKER)
    assert last["rank_ret_21d"].to_list() == [0.75, 0.0, 0.75, None]  # ranks 2.5, 1, 2.5 of 3 -> (r - 1) / 2
    # vol_21d: D (4 zero returns) 0 < B (one move of log 0.9) < A = C (one move of log 1.2): D is ranked too.
    assert last["rank_vol_21d"].to_list() == pytest.approx([2.5 / 3, 1 / 3, 2.5 / 3, 0.0])
    single = features(bars_frame({"ONLY": [1.0, 2.0, 3.0] * 8}), ["rank_ret_21d"])
    assert column(single, "ONLY", "rank_ret_21d")[21:].tolist() == [0.5, 0.5, 0.5]
