"""The sparse-table window kernels equal the naive O(n * w) definitions, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from quantlab_assets.compute.features import kernels

WINDOWS = (1, 2, 3, 4, 5, 7, 8, 13, 21, 63, 64, 100)


def naive_largest_fall(x: np.ndarray, window: int) -> np.ndarray:
    """max over v <= u in the window of x[v] - x[u]: running maximum minus value, maximised."""
    out = np.full(x.shape[0], np.nan)
    for end in range(window - 1, x.shape[0]):
        values = x[end - window + 1 : end + 1]
        out[end] = np.max(np.maximum.accumulate(values) - values)
    return out


def naive_drawdown(prices: np.ndarray, window: int) -> np.ndarray:
    """The textbook definition on prices: min over the window of P_u / running max - 1."""
    out = np.full(prices.shape[0], np.nan)
    for end in range(window - 1, prices.shape[0]):
        values = prices[end - window + 1 : end + 1]
        out[end] = np.min(values / np.maximum.accumulate(values)) - 1.0
    return out


def naive_rows_since_max(x: np.ndarray, window: int) -> np.ndarray:
    out = np.full(x.shape[0], np.nan)
    for end in range(window - 1, x.shape[0]):
        values = x[end - window + 1 : end + 1]
        latest = np.flatnonzero(values == values.max())[-1]
        out[end] = window - 1 - latest
    return out


def log_prices(n: int, seed: int) -> np.ndarray:
    """A random walk rounded to 2 decimals, so equal values (ties) occur often."""
    rng = np.random.default_rng(seed)
    return np.round(np.cumsum(rng.normal(0.0, 0.5, n)), 2)


@pytest.mark.parametrize("n", [1, 2, 9, 64, 257, 700], ids=lambda n: f"n={n}")
def test_max_drawdown_equals_the_naive_definition_exactly(n: int) -> None:
    x = log_prices(n, seed=n)
    for window, fast in zip(WINDOWS, kernels.rolling_max_drawdowns(x, WINDOWS), strict=True):
        np.testing.assert_array_equal(fast, naive_largest_fall(x, window), err_msg=f"window {window}")


def test_max_drawdown_as_a_price_drawdown_matches_the_textbook_formula() -> None:
    rng = np.random.default_rng(11)
    log_price = np.cumsum(rng.normal(0.0, 0.02, 600))
    for window in (21, 63, 126, 252):
        drawdown = np.exp(-kernels.rolling_max_drawdown(log_price, window)) - 1.0
        np.testing.assert_allclose(drawdown, naive_drawdown(np.exp(log_price), window), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("n", [1, 2, 9, 64, 257, 700], ids=lambda n: f"n={n}")
def test_rows_since_max_equals_the_naive_definition_with_ties_to_the_latest_row(n: int) -> None:
    x = log_prices(n, seed=100 + n)
    for window, fast in zip(WINDOWS, kernels.rolling_rows_since_max(x, WINDOWS), strict=True):
        np.testing.assert_array_equal(fast, naive_rows_since_max(x, window), err_msg=f"window {window}")


def test_hand_computed_drawdown_and_days_since_high() -> None:
    log_price = np.log([100.0, 120.0, 90.0, 110.0, 120.0, 60.0])
    fall = kernels.rolling_max_drawdown(log_price, 4)
    # Windows [100 120 90 110] -> 90/120 - 1; [120 90 110 120] -> same; [90 110 120 60] -> 60/120 - 1.
    np.testing.assert_allclose(np.exp(-fall[3:]) - 1.0, [-0.25, -0.25, -0.5], rtol=1e-15)
    assert np.isnan(fall[:3]).all()
    since = kernels.rolling_rows_since_max(log_price, (4,))[0]
    # The high of [120 90 110 120] is revisited on its last row: 0 days since the high, not 3.
    np.testing.assert_array_equal(since[3:], [2.0, 0.0, 1.0])


def test_a_value_depends_only_on_its_window() -> None:
    """Changing rows outside a window leaves its value identical (the look-ahead check relies on it)."""
    x = log_prices(400, seed=5)
    changed = x.copy()
    changed[:100] += 3.0
    changed[300:] -= 7.0
    for before, after in zip(
        kernels.rolling_max_drawdowns(x, (21, 63)) + kernels.rolling_rows_since_max(x, (21, 63)),
        kernels.rolling_max_drawdowns(changed, (21, 63)) + kernels.rolling_rows_since_max(changed, (21, 63)),
        strict=True,
    ):
        np.testing.assert_array_equal(before[163:300], after[163:300])


def test_windows_must_be_positive() -> None:
    with pytest.raises(ValueError, match="windows must be >= 1"):
        kernels.rolling_max_drawdowns(np.zeros(5), (0,))
