"""The long-short book: weights against hand-computed cases, dollar and beta neutrality, caps, trailing betas."""

import datetime as dt

import numpy as np
import polars as pl
import pytest

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.backtest.engine import RETURN, SIGNAL_DATE, WEIGHT
from quantlab_assets.compute.portfolio.long_short import (
    BETA,
    MARKET,
    leg_size,
    long_short_book,
    market_returns,
    neutral_leg_weights,
    trailing_betas,
)
from quantlab_assets.compute.portfolio.names import LONG_SHORT, QP, TOPK_DROPOUT
from quantlab_assets.compute.portfolio.strategies import (
    LongShortParams,
    StrategyParams,
    build_target_weights,
    unexpected_shorts,
)


def test_the_beta_tilt_matches_the_closed_form_by_hand() -> None:
    # Longs (betas 0.8, 1.2; mean 1.0) and shorts (1.0, 1.4; mean 1.2) start at +-0.5: book beta 1.0 - 1.2 = -0.2.
    # w = start + nu (beta - leg mean), nu = 0.2 / (4 x 0.2^2) = 1.25: longs 0.5 -+ 0.25, shorts -0.5 -+ 0.25.
    betas = np.array([0.8, 1.2, 1.0, 1.4])
    weights = neutral_leg_weights(betas, np.array([True, True, False, False]), gross=2.0, cap=1.0)
    np.testing.assert_allclose(weights, [0.25, 0.75, -0.75, -0.25], rtol=0, atol=1e-12)


def test_a_capped_book_is_dollar_and_beta_neutral_with_every_weight_on_its_side_and_under_the_cap() -> None:
    # Uncapped, the tilt (nu = 0.1 / 0.16) gives 0.458 to the long of beta 1.2 and -0.458 to the short of beta
    # 0.9: both cross a 0.42 cap and are held at it. The four others share 0.58 a leg, tilted by the same nu
    # (their betas are 0.1 either side of their leg's mean): longs 0.29 -+ 0.12, shorts -0.29 -+ 0.12, where
    # both legs' betas are 0.8 x 0.17 + 0.41 + 0.504 = 0.378 + 1.1 x 0.41 + 1.3 x 0.17 = 1.05.
    betas = np.array([0.8, 1.0, 1.2, 0.9, 1.1, 1.3])
    is_long = np.array([True] * 3 + [False] * 3)
    uncapped = neutral_leg_weights(betas, is_long, gross=2.0, cap=1.0)
    np.testing.assert_allclose(uncapped[[2, 3]], [1 / 3 + 0.125, -1 / 3 - 0.125], atol=1e-12)
    weights = neutral_leg_weights(betas, is_long, gross=2.0, cap=0.42)
    assert weights[is_long].sum() == pytest.approx(1.0, abs=1e-12) and weights[~is_long].sum() == pytest.approx(-1.0, abs=1e-12)
    assert abs(weights.sum()) < 1e-12 and abs(betas @ weights) < 1e-9
    assert (weights[is_long] >= 0).all() and (weights[~is_long] <= 0).all() and np.abs(weights).max() <= 0.42 + 1e-15
    np.testing.assert_allclose(weights, [0.17, 0.41, 0.42, -0.42, -0.41, -0.17], atol=1e-12)
    # Under a 0.40 cap the long leg's beta is at most 1.04 and the short leg's at least 1.06: no neutral book.
    assert neutral_leg_weights(betas, is_long, gross=2.0, cap=0.40) is None


def test_no_book_where_the_cap_leaves_no_room_to_offset_the_betas() -> None:
    # Two names a leg under a 0.6 cap: each leg is pinned near 0.5 / 0.5 and the beta gap cannot close.
    assert neutral_leg_weights(np.array([0.8, 1.2, 1.0, 1.4]), np.array([True, True, False, False]), 2.0, 0.6) is None


def test_legs_hold_more_names_than_the_cap_needs() -> None:
    assert leg_size(50, 0.2, gross=2.0, cap=0.2) == 10
    assert leg_size(10, 0.2, gross=2.0, cap=0.2) == 6  # 1.0 / 0.2 = 5 at the cap exactly, one more for room


def _dates(n: int) -> list[dt.date]:
    return [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(n)]


def _grid(dates: list[dt.date], tickers: list[str]) -> pl.DataFrame:
    return pl.DataFrame({c.DATE: pl.Series(dates, dtype=pl.Date).gather(np.repeat(np.arange(len(dates)), len(tickers))),
                         c.TICKER: tickers * len(dates)})


def test_betas_are_trailing_least_squares_on_the_members_market_and_ignore_the_future() -> None:
    rng = np.random.default_rng(4)
    n = 40
    dates = _dates(n)
    market = rng.normal(0, 0.01, n)
    # Two members make the market (their mean is `market`); X has beta 1.5 exactly; OUT is not a member.
    frame = pl.DataFrame({
        c.DATE: dates * 4, c.TICKER: ["M1"] * n + ["M2"] * n + ["X"] * n + ["OUT"] * n,
        RETURN: np.concatenate([market + 0.002, market - 0.002, 1.5 * market, rng.normal(0, 0.05, n)]),
    })
    members = frame.filter(pl.col(c.TICKER).is_in(["M1", "M2", "X"])).select(c.DATE, c.TICKER)
    members = members.filter(pl.col(c.TICKER) != "X")
    built = market_returns(frame, members)
    np.testing.assert_allclose(built[MARKET].to_numpy(), market, atol=1e-15)
    betas = trailing_betas(frame, built, window=20, min_observations=10).filter(pl.col(c.TICKER) == "X")
    assert betas[BETA][:9].is_null().all()
    np.testing.assert_allclose(betas[BETA][9:].to_numpy(), 1.5, atol=1e-9)
    # Rewriting the returns after day 25 leaves every beta up to day 25 unchanged.
    later = pl.col(c.DATE) > dates[25]
    future = frame.with_columns(pl.when(later).then(pl.col(RETURN) * -3).otherwise(pl.col(RETURN)).alias(RETURN))
    again = trailing_betas(future, market_returns(future, members), 20, 10).filter(pl.col(c.DATE) <= dates[25])
    assert again.equals(trailing_betas(frame, built, 20, 10).filter(pl.col(c.DATE) <= dates[25]))


def test_the_book_is_long_the_top_and_short_the_bottom_neutral_on_every_date() -> None:
    rng = np.random.default_rng(2)
    dates, tickers = _dates(3), [f"S{i:02d}" for i in range(20)]
    scored = _grid(dates, tickers).with_columns(pl.Series("score", rng.normal(size=60)),
                                                pl.Series(BETA, rng.uniform(0.6, 1.5, 60)))
    weights, empty = long_short_book(scored, "score", fraction=0.25, gross=2.0, cap=0.3)
    assert empty == [] and weights.columns == [c.DATE, c.TICKER, WEIGHT, SIGNAL_DATE]
    joined = weights.join(scored, on=[c.DATE, c.TICKER])
    for (date,), day in joined.group_by(c.DATE):
        ranked = scored.filter(pl.col(c.DATE) == date).sort("score", descending=True)[c.TICKER]
        assert set(day.filter(pl.col(WEIGHT) > 0)[c.TICKER]) == set(ranked[:5])
        assert set(day.filter(pl.col(WEIGHT) < 0)[c.TICKER]) == set(ranked[-5:])
        w, b = day[WEIGHT].to_numpy(), day[BETA].to_numpy()
        assert abs(w.sum()) < 1e-12 and abs(w @ b) < 1e-9 and np.abs(w).sum() == pytest.approx(2.0, abs=1e-12)
        assert np.abs(w).max() <= 0.3 + 1e-15


def test_the_strategy_uses_betas_up_to_its_rebalance_dates_and_holds_for_the_horizon() -> None:
    rng = np.random.default_rng(8)
    n_days, tickers = 120, [f"S{i:02d}" for i in range(15)]
    dates = _dates(n_days)
    grid = _grid(dates, tickers)
    market = np.repeat(rng.normal(0, 0.01, n_days), 15)
    returns = grid.with_columns(pl.Series(RETURN, market * np.tile(rng.uniform(0.5, 1.5, 15), n_days)
                                          + rng.normal(0, 0.01, grid.height)))
    alpha = grid.filter(pl.col(c.DATE) >= dates[60]).with_columns(pl.Series("alpha_21d", rng.normal(size=60 * 15)))
    params = StrategyParams(long_short=LongShortParams(every=21, beta_window=60, beta_min_observations=20))
    weights = build_target_weights(LONG_SHORT, alpha, returns, params=params).weights
    decided = weights[c.DATE].unique().sort()
    assert decided.to_list() == [dates[60 + 21 * i] for i in range(3)]
    betas = trailing_betas(returns, market_returns(returns, None), 60, 20)
    exposure = weights.join(betas, on=[c.DATE, c.TICKER]).group_by(c.DATE).agg(
        pl.col(WEIGHT).sum().alias("net"), (pl.col(WEIGHT) * pl.col(BETA)).sum().alias("beta"))
    assert exposure["net"].abs().max() < 1e-12 and exposure["beta"].abs().max() < 1e-9


def test_only_the_long_short_strategy_may_hold_a_short() -> None:
    book = pl.DataFrame({c.DATE: [dt.date(2024, 1, 2)] * 2, c.TICKER: ["A", "B"], WEIGHT: [0.5, -0.5]})
    assert unexpected_shorts(LONG_SHORT, book) == 0
    assert unexpected_shorts(TOPK_DROPOUT, book) == 1 and unexpected_shorts(QP, book) == 1
