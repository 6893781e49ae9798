"""Price features: hand-computed values, then every window against an independent numpy loop."""

from __future__ import annotations

import math

import numpy as np
import pytest

from quantlab_assets.compute.features.price import DRAWDOWN_WINDOWS, MOMENTUM_WINDOWS, RETURN_WINDOWS, VOLATILITY_WINDOWS
from quantlab_assets_tests.compute.features.panels import bars_frame, column, features, random_walks

SQRT_252 = math.sqrt(252)


def test_hand_computed_returns_volatility_momentum_and_drawdown() -> None:
    # 21 closes rising to 120, falling to 90, recovering to 96: the 21-day drawdown is 90/120 - 1.
    closes = [100.0, 101.0, 99.0, 102.0, 103.0, 104.0, 100.0] + [110.0, 115.0, 120.0] + [
        110.0, 100.0, 95.0, 90.0, 92.0, 94.0, 96.0, 95.0, 96.0, 96.0, 96.0, 97.0
    ]
    frame = features(bars_frame({"A": closes}), ["ret_1d", "ret_5d", "vol_5d", "mom_21d", "mdd_21d"])
    ret_5d = column(frame, "A", "ret_5d")
    assert np.isnan(ret_5d[:5]).all()
    assert ret_5d[5] == pytest.approx(math.log(104 / 100), rel=1e-14)
    assert ret_5d[6] == pytest.approx(math.log(100 / 101), rel=1e-14)
    vol_5d = column(frame, "A", "vol_5d")
    assert np.isnan(vol_5d[:2]).all()  # two returns are the minimum
    r1, r2 = math.log(101 / 100), math.log(99 / 101)
    assert vol_5d[2] == pytest.approx(np.std([r1, r2], ddof=1) * SQRT_252, rel=1e-12)
    mom_21d = column(frame, "A", "mom_21d")
    assert np.isnan(mom_21d[:21]).all()
    assert mom_21d[21] == pytest.approx(97.0 / 100.0 - 1.0, rel=1e-12)
    mdd_21d = column(frame, "A", "mdd_21d")
    assert np.isnan(mdd_21d[:20]).all()
    assert mdd_21d[20] == pytest.approx(90.0 / 120.0 - 1.0, rel=1e-12)  # rows 0..20
    assert mdd_21d[21] == pytest.approx(90.0 / 120.0 - 1.0, rel=1e-12)  # rows 1..21
    np.testing.assert_array_equal(column(frame, "A", "ret_1d")[1:3], [r1, r2])


def test_every_window_against_independent_formulas() -> None:
    closes = random_walks(["A", "B"], 300, seed=1)
    names = (
        [f"ret_{w}d" for w in RETURN_WINDOWS] + [f"vol_{w}d" for w in VOLATILITY_WINDOWS]
        + [f"mom_{w}d" for w in MOMENTUM_WINDOWS] + [f"mdd_{w}d" for w in DRAWDOWN_WINDOWS]
    )
    frame = features(bars_frame(closes, offsets={"B": 7}), names)
    for ticker, close in closes.items():
        close = np.asarray(close)
        returns = np.concatenate([[np.nan], np.diff(np.log(close))])
        n = close.shape[0]
        for w in RETURN_WINDOWS:
            expected = np.array([returns[t - w + 1 : t + 1].sum() if t >= w else np.nan for t in range(n)])
            np.testing.assert_allclose(column(frame, ticker, f"ret_{w}d"), expected, rtol=1e-10, atol=1e-13)
        for w in VOLATILITY_WINDOWS:
            expected = np.full(n, np.nan)
            for t in range(n):
                window = returns[max(0, t - w + 1) : t + 1]
                window = window[~np.isnan(window)]
                if window.size >= 2:
                    expected[t] = np.std(window, ddof=1) * SQRT_252
            np.testing.assert_allclose(column(frame, ticker, f"vol_{w}d"), expected, rtol=1e-10)
        for w in MOMENTUM_WINDOWS:
            expected = np.array([close[t] / close[t - w] - 1.0 if t >= w else np.nan for t in range(n)])
            np.testing.assert_allclose(column(frame, ticker, f"mom_{w}d"), expected, rtol=1e-10, atol=1e-13)
        for w in DRAWDOWN_WINDOWS:
            expected = np.full(n, np.nan)
            for t in range(w - 1, n):
                window = close[t - w + 1 : t + 1]
                expected[t] = np.min(window / np.maximum.accumulate(window)) - 1.0
            np.testing.assert_allclose(column(frame, ticker, f"mdd_{w}d"), expected, rtol=1e-10, atol=1e-14)
