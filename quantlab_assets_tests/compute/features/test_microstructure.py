"""Microstructure features: hand-computed values, Amihud against an independent formula, close-only data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from quantlab_assets_tests.compute.features.panels import bars_frame, column, features, random_walks

NAMES = ["volume_ratio_5d_63d", "volume_ratio_21d_63d", "turnover_21d", "log_dollar_volume_21d", "amihud_21d"]


def test_hand_computed_volume_ratios_turnover_and_dollar_volume() -> None:
    closes = [10.0] * 260
    volumes = [1000.0] * 255 + [3000.0] * 5
    frame = features(bars_frame({"A": closes}, volumes={"A": volumes}), NAMES)
    ratio_5 = column(frame, "A", "volume_ratio_5d_63d")
    assert np.isnan(ratio_5[:62]).all()
    assert ratio_5[62] == pytest.approx(1.0, rel=1e-12)
    assert ratio_5[259] == pytest.approx(3000.0 / ((58 * 1000.0 + 5 * 3000.0) / 63), rel=1e-12)
    ratio_21 = column(frame, "A", "volume_ratio_21d_63d")
    assert ratio_21[259] == pytest.approx(((16 * 1000.0 + 5 * 3000.0) / 21) / ((58 * 1000.0 + 5 * 3000.0) / 63), rel=1e-12)
    turnover = column(frame, "A", "turnover_21d")
    assert np.isnan(turnover[:251]).all()
    assert turnover[251] == pytest.approx(1.0, rel=1e-12)  # constant dollar volume
    # Last row: 21-day mean dollar volume (16 days at 10,000, 5 at 30,000) over the 252-day median 10,000.
    assert turnover[259] == pytest.approx((16 * 10_000.0 + 5 * 30_000.0) / 21 / 10_000.0, rel=1e-12)
    log_dollar_volume = column(frame, "A", "log_dollar_volume_21d")
    assert np.isnan(log_dollar_volume[:20]).all()
    assert log_dollar_volume[20] == pytest.approx(math.log(10_000.0), rel=1e-14)
    # Flat prices: |r| = 0 every day, so Amihud is 0 once 21 returns exist.
    amihud = column(frame, "A", "amihud_21d")
    assert np.isnan(amihud[:21]).all()
    np.testing.assert_allclose(amihud[21:], 0.0)


def amihud_reference(close: np.ndarray, volume: np.ndarray, window: int = 21) -> np.ndarray:
    """1e6 * mean over the window's days with positive volume of |ln(P_t / P_t-1)| / (P_t * V_t)."""
    out = np.full(close.shape[0], np.nan)
    for t in range(window, close.shape[0]):
        ratios = [
            abs(math.log(close[s] / close[s - 1])) / (close[s] * volume[s])
            for s in range(t - window + 1, t + 1)
            if volume[s] > 0
        ]
        if ratios:
            out[t] = 1e6 * sum(ratios) / len(ratios)
    return out


def test_amihud_against_an_independent_formula_with_untraded_days() -> None:
    closes = random_walks(["A", "B"], 120, seed=3)
    rng = np.random.default_rng(4)
    volumes = {ticker: rng.uniform(1e4, 1e6, 120) for ticker in closes}
    volumes["A"][[30, 31, 60]] = 0.0  # forward-filled days carry volume 0
    volumes["B"][40:61] = 0.0  # a whole window without trading: no Amihud value
    bars = bars_frame(closes, volumes={ticker: list(v) for ticker, v in volumes.items()})
    frame = features(bars, ["amihud_21d"])
    for ticker in closes:
        expected = amihud_reference(np.asarray(closes[ticker]), volumes[ticker])
        np.testing.assert_allclose(column(frame, ticker, "amihud_21d"), expected, rtol=1e-10)
    assert np.isnan(column(frame, "B", "amihud_21d")[60])


def test_close_only_instruments_have_null_microstructure_features() -> None:
    closes = random_walks(["CLOSE_ONLY", "FULL"], 80, seed=5)
    bars = bars_frame(closes, volumes={"CLOSE_ONLY": [None] * 80}, opens={"CLOSE_ONLY": [None] * 80})
    frame = features(bars, [*NAMES, "ret_21d", "gap_mean_21d", "volume_shock_5d"])
    for name in (*NAMES, "gap_mean_21d"):
        assert np.isnan(column(frame, "CLOSE_ONLY", name)).all(), name
    assert not np.isnan(column(frame, "CLOSE_ONLY", "ret_21d")[21:]).any()
    assert not np.isnan(column(frame, "FULL", "amihud_21d")[21:]).any()


def volume_signed_return_reference(close: np.ndarray, volume: np.ndarray, window: int) -> np.ndarray:
    """Mean over the window of ln(P_s / P_s-1) * ln(V_s / mean(V_s-63 .. V_s-1)), 0 on a day with V_s = 0."""
    out = np.full(close.shape[0], np.nan)
    products = np.full(close.shape[0], np.nan)
    for s in range(63, close.shape[0]):
        baseline = volume[s - 63 : s].mean()
        products[s] = 0.0 if volume[s] == 0 else math.log(close[s] / close[s - 1]) * math.log(volume[s] / baseline)
    for t in range(63 + window - 1, close.shape[0]):
        out[t] = products[t - window + 1 : t + 1].mean()
    return out


def test_volume_signed_return_against_an_independent_formula() -> None:
    closes = random_walks(["A", "B"], 160, seed=5)
    rng = np.random.default_rng(6)
    volumes = {ticker: rng.uniform(1e4, 1e6, 160) for ticker in closes}
    volumes["A"][[90, 91]] = 0.0  # forward-filled days: no abnormal volume, no move
    closes["A"][90] = closes["A"][91] = closes["A"][89]
    bars = bars_frame(closes, volumes={ticker: list(v) for ticker, v in volumes.items()})
    names = ["volume_signed_return_10d", "volume_signed_return_21d"]
    frame = features(bars, names)
    for ticker in ("A", "B"):
        for window, name in zip((10, 21), names, strict=True):
            expected = volume_signed_return_reference(np.array(closes[ticker]), volumes[ticker], window)
            got = column(frame, ticker, name)
            assert np.isnan(got[: 63 + window - 1]).all()
            np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-15)
    # Up on heavy volume, down on light volume: both moves count with the sign of volume shock x return.
    steady = [1000.0] * 80
    heavy_up = features(bars_frame({"A": [10.0] * 79 + [11.0]}, volumes={"A": steady[:79] + [4000.0]}), names[:1])
    assert column(heavy_up, "A", names[0])[79] == pytest.approx(math.log(1.1) * math.log(4.0) / 10, rel=1e-12)
    light_down = features(bars_frame({"A": [10.0] * 79 + [9.0]}, volumes={"A": steady[:79] + [250.0]}), names[:1])
    assert column(light_down, "A", names[0])[79] == pytest.approx(math.log(0.9) * math.log(0.25) / 10, rel=1e-12)
