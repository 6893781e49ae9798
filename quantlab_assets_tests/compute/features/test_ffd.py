"""Fixed-width fractional differencing: weights against their closed forms, the d = 0 / d = 1 limits, no
look-ahead, and the diagnostic smallest d, read from the training span only."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from scipy.special import binom

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.features.ffd import FFD_LOG_CLOSE, FfdParams, apply_ffd, ffd_weights, select_ffd_order
from quantlab_assets_tests.compute.builders import weekdays


def price_frame(closes: dict[str, np.ndarray], start: dt.date = dt.date(2020, 1, 1)) -> pl.DataFrame:
    """date, ticker, close rows (sorted by date, ticker) from one close series per ticker."""
    frames = [
        pl.DataFrame({c.DATE: weekdays(start, len(series)), c.TICKER: ticker, c.CLOSE: series})
        for ticker, series in closes.items()
    ]
    return pl.concat(frames).sort(c.DATE, c.TICKER)


def ffd_of(frame: pl.DataFrame, ticker: str) -> np.ndarray:
    return frame.filter(pl.col(c.TICKER) == ticker).sort(c.DATE)[FFD_LOG_CLOSE].to_numpy()


@pytest.mark.parametrize("d", [0.25, 0.5, 0.8, 1.3])
def test_weights_follow_the_recursion_and_the_binomial_formula(d: float) -> None:
    weights = ffd_weights(d, threshold=1e-4, max_width=252)
    recursion = [1.0]
    while len(recursion) < 300:
        k = len(recursion)
        recursion.append(-recursion[-1] * (d - k + 1) / k)
    np.testing.assert_allclose(weights, recursion[: len(weights)], rtol=1e-12)
    np.testing.assert_allclose(weights, [(-1) ** k * binom(d, k) for k in range(len(weights))], rtol=1e-9)
    assert (np.abs(weights) >= 1e-4).all()
    assert len(weights) == 252 or abs(recursion[len(weights)]) < 1e-4  # stopped at the threshold or the cap


def test_weights_are_capped_at_the_maximum_width() -> None:
    assert len(ffd_weights(0.1, threshold=1e-4, max_width=252)) == 252  # the threshold alone would keep ~500
    assert len(ffd_weights(0.1, threshold=1e-4, max_width=20)) == 20
    assert len(ffd_weights(0.9, threshold=1e-4, max_width=252)) < 50
    np.testing.assert_array_equal(ffd_weights(1.0), [1.0, -1.0])
    np.testing.assert_array_equal(ffd_weights(0.0), [1.0])


def test_d_one_is_the_first_difference_and_d_zero_the_level() -> None:
    closes = np.exp(np.random.default_rng(0).normal(0, 0.01, 30).cumsum()) * 50
    frame = price_frame({"A": closes, "B": closes})
    first_difference, level = apply_ffd(frame, FfdParams(d=1.0)), apply_ffd(frame, FfdParams(d=0.0))
    log_close = np.log(closes)
    for ticker in "AB":
        np.testing.assert_allclose(ffd_of(first_difference, ticker)[1:], np.diff(log_close), rtol=0, atol=1e-15)
        assert np.isnan(ffd_of(first_difference, ticker)[0])
        np.testing.assert_array_equal(ffd_of(level, ticker), log_close)


def test_ffd_by_hand_is_null_until_the_window_is_full() -> None:
    """d = 0.5 with threshold 0.1 keeps w = 1, -0.5, -0.125 (the next, -0.0625, is below it)."""
    closes = np.exp([1.0, 2.0, 4.0, 3.0])
    params = FfdParams(d=0.5, threshold=0.1)
    frame = apply_ffd(price_frame({"A": closes, "B": closes[:3], "C": closes}), params)
    by_hand = [np.nan, np.nan, 4 - 0.5 * 2 - 0.125 * 1, 3 - 0.5 * 4 - 0.125 * 2]
    # Every ticker at the same d, each from its own rows only (B's window never reaches into A's rows).
    for ticker, rows in (("A", 4), ("B", 3), ("C", 4)):
        np.testing.assert_allclose(ffd_of(frame, ticker), by_hand[:rows])
        assert frame.filter(pl.col(c.TICKER) == ticker)[FFD_LOG_CLOSE].null_count() == 2  # nulls, not NaN


def test_apply_ffd_keeps_the_rows_in_their_order() -> None:
    rng = np.random.default_rng(1)
    frame = price_frame({t: np.exp(rng.normal(0, 0.01, 40).cumsum()) for t in "ABC"})
    shuffled = frame.sample(fraction=1.0, shuffle=True, seed=3)
    result = apply_ffd(shuffled, FfdParams(d=0.7))
    assert result.drop(FFD_LOG_CLOSE).equals(shuffled)
    assert result.sort(c.DATE, c.TICKER).equals(apply_ffd(frame, FfdParams(d=0.7)))


def test_apply_ffd_on_no_rows_gives_the_empty_column() -> None:
    """The first months of a source hold no cleaned bar (no instrument has a year of history yet)."""
    frame = price_frame({"A": np.exp([1.0, 2.0])}).head(0)
    result = apply_ffd(frame)
    assert result.is_empty() and result.schema[FFD_LOG_CLOSE] == pl.Float64


def test_apply_ffd_does_not_look_ahead() -> None:
    rng = np.random.default_rng(2)
    closes = {t: 100 * np.exp(rng.normal(0, 0.01, 400).cumsum()) for t in "ABC"}
    frame = price_frame(closes)
    cut = weekdays(dt.date(2020, 1, 1), 300)[-1]
    later = pl.col(c.DATE) > cut
    perturbed = frame.with_columns(pl.when(later).then(pl.col(c.CLOSE) * rng.uniform(0.8, 1.2, frame.height)).otherwise(pl.col(c.CLOSE)))
    before, after = apply_ffd(frame, FfdParams(d=0.6)), apply_ffd(perturbed, FfdParams(d=0.6))
    assert before.filter(~later).equals(after.filter(~later))
    assert before.filter(~later)[FFD_LOG_CLOSE].drop_nulls().len() > 100
    assert (before.filter(later)[FFD_LOG_CLOSE] != after.filter(later)[FFD_LOG_CLOSE]).all()


def _series(seed: int, n: int = 900) -> tuple[np.ndarray, np.ndarray]:
    """Closes of a random walk and of a stationary AR(1) log price, same shocks."""
    shocks = np.random.default_rng(seed).normal(0, 0.01, n)
    ar = np.zeros(n)
    for t in range(1, n):
        ar[t] = 0.8 * ar[t - 1] + shocks[t]
    return 100 * np.exp(shocks.cumsum()), 100 * np.exp(ar)


def test_a_stationary_series_gets_a_smaller_d_than_a_random_walk() -> None:
    walk, stationary = _series(seed=4)
    frame = price_frame({"WALK": walk, "STAT": stationary})
    orders = select_ffd_order(frame, train_end=frame[c.DATE].max())
    assert orders["STAT"].d == 0.0
    assert orders["WALK"].d is not None and orders["WALK"].d >= 0.1
    for order in orders.values():
        assert order.status == "stationary"
        assert order.p_value is not None and order.p_value < 0.05 and order.adf_stat is not None and order.adf_stat < -2.8
        assert order.n_obs > 900 - 252 - 2


def test_the_order_uses_only_the_training_span() -> None:
    walk, stationary = _series(seed=5, n=1200)
    frame = price_frame({"WALK": walk, "STAT": stationary})
    train_end = weekdays(dt.date(2020, 1, 1), 800)[-1]
    later = pl.col(c.DATE) > train_end
    # After train_end both series turn into noise with 20 % daily jumps.
    jumps = np.exp(np.random.default_rng(0).normal(0, 0.2, frame.height))
    perturbed = frame.with_columns(pl.when(later).then(pl.col(c.CLOSE) * jumps).otherwise(pl.col(c.CLOSE)))
    assert select_ffd_order(frame, train_end) == select_ffd_order(perturbed, train_end)
    # The perturbation is one the choice would notice, were it allowed to look.
    everything = frame[c.DATE].max()
    assert select_ffd_order(frame, everything) != select_ffd_order(perturbed, everything)


def test_instruments_with_too_little_training_data_or_a_constant_price_get_no_d() -> None:
    walk, _ = _series(seed=6, n=700)
    frame = price_frame({"LONG": walk, "SHORT": walk[:400], "STALE": np.full(700, 20.0)})
    late = price_frame({"LATE": walk[:50]}, start=dt.date(2023, 1, 2))
    orders = select_ffd_order(pl.concat([frame, late]), train_end=dt.date(2022, 6, 30))
    assert orders["LONG"].d is not None
    assert orders["STALE"].d is None and orders["STALE"].status == "constant_price"
    assert orders["SHORT"].d is None and orders["SHORT"].status == "insufficient_history"
    assert orders["SHORT"].n_obs == 400 and orders["SHORT"].p_value is None
    assert orders["LATE"].status == "insufficient_history" and orders["LATE"].n_obs == 0
    assert FfdParams().min_training_rows == 503
