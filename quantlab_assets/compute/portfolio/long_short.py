"""A dollar- and beta-neutral long-short book on a cross-sectional score.

On each decision date, among that date's tradable members with a score: long the top `fraction` and short
the bottom `fraction` of the ranking, each leg holding gross/2 of the portfolio's value (so the book is
dollar neutral), with the weights tilted within each leg until the book's beta is 0 and no position
exceeds the cap.

Betas are to the equal-weighted market of the tradable members (the mean of their returns per date),
estimated by least squares on each instrument's trailing `window` returns up to and including the
decision date (a decision at the close of t knows the return of t, nothing later). An instrument with
fewer than `min_observations` returns in the window takes the market's own beta, 1.

The weights are the least-squares closest to equal weights within each leg subject to: each leg sums to
+-gross/2, sum(beta * w) = 0, and 0 <= w <= cap on the long leg, -cap <= w <= 0 on the short one. Without
the bounds the solution is w_i = w0_i + mu_leg + nu * beta_i (a 3x3 linear system); a weight that crosses a
bound is held at it and the rest solved again (an active set that only grows, so it ends in at most n
passes). A date where this finds no book (too few members for the cap, betas that the cap leaves no room to
offset; a weight held at a bound is never released, so on a rare date it may miss a book that exists) is
all cash, and the strategy's notes count such dates.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.backtest.engine import RETURN, SIGNAL_DATE, WEIGHT

BETA = "beta"
MARKET = "market_return"
# Equality residuals above this (in units of portfolio weight) mean the linear system had no solution.
FEASIBILITY_TOLERANCE = 1e-10


def market_returns(returns: pl.DataFrame, members: pl.DataFrame | None) -> pl.DataFrame:
    """date, market_return: the equal-weighted mean return of each date's tradable members (every
    instrument with a return where members is None)."""
    rows = returns if members is None else returns.join(members.select(c.DATE, c.TICKER), on=[c.DATE, c.TICKER], how="semi")
    return rows.filter(pl.col(RETURN).is_not_null()).group_by(c.DATE).agg(pl.col(RETURN).mean().alias(MARKET)).sort(c.DATE)


def trailing_betas(returns: pl.DataFrame, market: pl.DataFrame, window: int, min_observations: int) -> pl.DataFrame:
    """date, ticker, beta: each instrument's OLS beta to `market` over its last `window` returns up to the
    date (its own rows: days it has a return), null before `min_observations` of them."""
    def rolling(expr: pl.Expr) -> pl.Expr:
        return expr.rolling_mean(window, min_samples=min_observations).over(c.TICKER, order_by=c.DATE)

    r, m = pl.col(RETURN), pl.col(MARKET)
    return (
        returns.filter(r.is_not_null())
        .join(market, on=c.DATE, how="inner")
        .select(c.DATE, c.TICKER, ((rolling(r * m) - rolling(r) * rolling(m)) / (rolling(m * m) - rolling(m) ** 2)).alias(BETA))
        .with_columns(pl.col(BETA).fill_nan(None))
        .sort(c.DATE, c.TICKER)
    )


def neutral_leg_weights(betas: np.ndarray, is_long: np.ndarray, gross: float, cap: float) -> np.ndarray | None:
    """Weights (n,) of a book with a long leg (is_long) and a short leg, each of |sum| gross/2, beta-neutral,
    each |w| <= cap on its leg's side, closest to equal weights within each leg; None where none exists."""
    legs = [is_long, ~is_long]
    half = gross / 2.0
    targets = np.array([half, -half])
    start = np.where(is_long, half / max(is_long.sum(), 1), -half / max((~is_long).sum(), 1))
    low, high = np.where(is_long, 0.0, -cap), np.where(is_long, cap, 0.0)
    weights, free = start.copy(), np.ones(betas.size, dtype=bool)
    for _ in range(betas.size + 1):
        # Unknowns (mu_long, mu_short, nu): w_i = start_i + mu_leg(i) + nu * beta_i on the free positions.
        system, rhs = np.zeros((3, 3)), np.zeros(3)
        for k, leg in enumerate(legs):
            on = leg & free
            system[k, k], system[k, 2] = on.sum(), betas[on].sum()
            system[2, k] = betas[on].sum()
            rhs[k] = targets[k] - weights[leg & ~free].sum() - start[on].sum()
        system[2, 2] = (betas[free] ** 2).sum()
        rhs[2] = -(betas[~free] * weights[~free]).sum() - (betas[free] * start[free]).sum()
        solution = np.linalg.lstsq(system, rhs, rcond=None)[0]
        shift = np.where(is_long, solution[0], solution[1]) + solution[2] * betas
        weights = np.where(free, start + shift, weights)
        crossed = free & ((weights < low - 1e-15) | (weights > high + 1e-15))
        if not crossed.any():
            break
        weights = np.clip(weights, low, high)
        free &= ~crossed
    residuals = [weights[is_long].sum() - half, weights[~is_long].sum() + half, betas @ weights]
    inside = np.all(weights >= low - 1e-12) and np.all(weights <= high + 1e-12)
    return weights if inside and max(abs(x) for x in residuals) < FEASIBILITY_TOLERANCE else None


def leg_size(n_members: int, fraction: float, gross: float, cap: float) -> int:
    """Names per leg: the top (bottom) `fraction` of the members, and more than gross/2 / cap, so that the
    leg is not all at the cap and the beta tilt has room under it."""
    return max(math.ceil(fraction * n_members - 1e-12), math.floor(gross / 2.0 / cap + 1e-12) + 1)


def long_short_book(scored: pl.DataFrame, score: str, fraction: float, gross: float, cap: float) -> tuple[pl.DataFrame, list]:
    """Weights (date, ticker, weight, signal_date) of the neutral book from scored: date, ticker, `score`, beta
    (null beta -> 1), one row per tradable member; and the dates where no book existed (all cash)."""
    ranked = (
        scored.filter(pl.col(score).is_not_null() & pl.col(score).is_not_nan())
        .with_columns(pl.col(BETA).fill_null(1.0))
        .sort(c.DATE, score, c.TICKER, descending=[False, True, False])
    )
    books, empty = [], []
    for (date,), day in ranked.group_by(c.DATE, maintain_order=True):
        n = leg_size(day.height, fraction, gross, cap)
        weights = None
        if 2 * n <= day.height:
            chosen = pl.concat([day.head(n), day.tail(n)])
            is_long = np.arange(2 * n) < n
            weights = neutral_leg_weights(chosen[BETA].to_numpy(), is_long, gross, cap)
        if weights is None:
            empty.append(date)
            continue
        books.append(chosen.select(c.DATE, c.TICKER, pl.Series(WEIGHT, weights), pl.col(c.DATE).alias(SIGNAL_DATE)))
    schema = {c.DATE: pl.Date, c.TICKER: pl.String, WEIGHT: pl.Float64, SIGNAL_DATE: pl.Date}
    # A date without a book is a decision to hold cash: one explicit zero closes the previous book.
    closing = [pl.DataFrame({c.DATE: [d], c.TICKER: [ranked.filter(pl.col(c.DATE) == d)[c.TICKER][0]], WEIGHT: [0.0],
                             SIGNAL_DATE: [d]}, schema=schema) for d in empty]
    return pl.concat([pl.DataFrame(schema=schema), *books, *closing]).sort(c.DATE, c.TICKER), empty
