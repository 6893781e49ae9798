"""Technical features: hand-computed values, and RSI/momentum/MA gaps/drawdown statistics against
independent formulas written here."""

from __future__ import annotations

import numpy as np
import pytest

from quantlab_assets.compute.features.technical import MA_WINDOWS
from quantlab_assets_tests.compute.features.panels import bars_frame, column, features, random_walks


def wilder_rsi(close: np.ndarray, window: int = 14) -> np.ndarray:
    """Wilder's RSI, written out: the first average is the simple mean of the first `window` changes,
    then avg = (avg * (window - 1) + value) / window."""
    change = np.diff(close)
    gains, losses = np.clip(change, 0, None), np.clip(-change, 0, None)
    out = np.full(close.shape[0], np.nan)
    if change.shape[0] < window:
        return out
    gain, loss = gains[:window].mean(), losses[:window].mean()
    for t in range(window, close.shape[0]):
        if t > window:
            gain = (gain * (window - 1) + gains[t - 1]) / window
            loss = (loss * (window - 1) + losses[t - 1]) / window
        out[t] = 100.0 * gain / (gain + loss) if gain + loss > 0 else np.nan
    return out


def test_hand_computed_rsi_and_ma_gap() -> None:
    rising = [100.0 + t for t in range(20)]
    falling = [100.0 - t for t in range(20)]
    flat = [100.0] * 20
    # 14 changes of +1 (rows 1..14: RSI 100), then -2 on row 15: avg gain (1 * 13 + 0) / 14, avg loss
    # (0 * 13 + 2) / 14, so RSI = 100 * 13 / 15.
    last_drop = [100.0 + t for t in range(15)] + [112.0, 113.0, 114.0, 115.0, 116.0]
    bars = bars_frame({"UP": rising, "DOWN": falling, "FLAT": flat, "DROP": last_drop})
    frame = features(bars, ["rsi_14", "ma_gap_20"])
    up = column(frame, "UP", "rsi_14")
    assert np.isnan(up[:14]).all()
    np.testing.assert_allclose(up[14:], 100.0)
    np.testing.assert_allclose(column(frame, "DOWN", "rsi_14")[14:], 0.0)
    assert np.isnan(column(frame, "FLAT", "rsi_14")).all()  # no gain, no loss: undefined
    drop = column(frame, "DROP", "rsi_14")
    assert drop[14] == pytest.approx(100.0, rel=1e-12)
    assert drop[15] == pytest.approx(100.0 * 13.0 / 15.0, rel=1e-12)
    # A linear price's 20-day average trails it by 9.5: gap = P / (P - 9.5) - 1.
    gap = column(frame, "UP", "ma_gap_20")
    assert np.isnan(gap[:19]).all()
    assert gap[19] == pytest.approx(119.0 / 109.5 - 1.0, rel=1e-12)


def test_hand_computed_drawdown_from_high_and_days_since_high() -> None:
    closes = [100.0 + t / 2 for t in range(251)] + [300.0, 330.0, 297.0, 330.0, 310.0]
    frame = features(bars_frame({"A": closes}), ["dd_252d", "days_since_high_252d"])
    dd = column(frame, "A", "dd_252d")
    days = column(frame, "A", "days_since_high_252d")
    assert np.isnan(dd[:251]).all() and np.isnan(days[:251]).all()
    assert dd[251] == pytest.approx(0.0, abs=1e-12) and days[251] == 0  # 300 is the high
    assert dd[253] == pytest.approx(297.0 / 330.0 - 1.0, rel=1e-12) and days[253] == 1
    assert dd[254] == pytest.approx(0.0, abs=1e-12) and days[254] == 0  # 330 revisited: the count restarts
    assert dd[255] == pytest.approx(310.0 / 330.0 - 1.0, rel=1e-12) and days[255] == 1


def test_against_independent_formulas() -> None:
    closes = random_walks(["A", "B"], 320, seed=2)
    names = ["mom_12_1", "reversal_1m", "rsi_14", "dd_252d", "days_since_high_252d"] + [f"ma_gap_{w}" for w in MA_WINDOWS]
    frame = features(bars_frame(closes, offsets={"B": 3}), names)
    for ticker, close in closes.items():
        close = np.asarray(close)
        n = close.shape[0]
        expected = {
            "mom_12_1": [np.log(close[t - 21] / close[t - 252]) if t >= 252 else np.nan for t in range(n)],
            "reversal_1m": [-np.log(close[t] / close[t - 21]) if t >= 21 else np.nan for t in range(n)],
            "rsi_14": wilder_rsi(close),
            "dd_252d": [close[t] / close[t - 251 : t + 1].max() - 1.0 if t >= 251 else np.nan for t in range(n)],
            "days_since_high_252d": [
                t - (t - 251 + int(np.flatnonzero(close[t - 251 : t + 1] == close[t - 251 : t + 1].max())[-1]))
                if t >= 251 else np.nan
                for t in range(n)
            ],
        }
        for w in MA_WINDOWS:
            expected[f"ma_gap_{w}"] = [
                close[t] / close[t - w + 1 : t + 1].mean() - 1.0 if t >= w - 1 else np.nan for t in range(n)
            ]
        for name, values in expected.items():
            np.testing.assert_allclose(
                column(frame, ticker, name), np.asarray(values, dtype=float), rtol=1e-9, atol=1e-12, err_msg=name
            )
