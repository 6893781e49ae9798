"""The lab's strategy set: one name -> target weights from the stacked alpha, meta-labels, returns and regimes.

Every strategy is evaluated on the same span, the dates that have a stacked alpha (the out-of-fold
predictions), so the baselines and the models are compared over the same market.

Seed 002's threshold profiles read the probability of its primary model, the triple-barrier classifier
(barrier_probabilities: out-of-fold P(the upper barrier is touched first)), on the stacked alpha's
dates. The auditor is the meta-label model: the probability that the stacked alpha's trade hits its
profit barrier. It "agrees" with a long entry where the alpha's side is long and that probability is at
least 0.5; where the alpha is short it has no opinion on a long, and the audited profile stays out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.backtest.engine import RETURN, WEIGHT
from quantlab_assets.compute.params import described, described_factory
from quantlab_assets.compute.portfolio.long_short import long_short_book, market_returns, trailing_betas
from quantlab_assets.compute.portfolio.names import (
    BUY_AND_HOLD,
    EQUAL,
    LONG_SHORT,
    QP,
    SHORT_SELLING,
    STRATEGY_NAMES,
    TOP_N,
    TOPK_DROPOUT,
)
from quantlab_assets.compute.portfolio.qp import QpParams, alpha_to_daily_return, qp_weights
from quantlab_assets.compute.portfolio.rules import (
    PROFILES,
    buy_and_hold,
    equal_weight,
    rebalance_dates,
    threshold_profile,
    top_n_equal,
    topk_dropout,
)

# The books hold their names for about 21 trading days, so they read a 21-day forecast: the stack's 21-day
# alpha by default, or alpha_combined (the 21d and 63d alphas mixed by inverse residual variance, seed
# 004's combination, read as a 21-day forecast).
ALPHA_HORIZON_DAYS = 21
AlphaColumn = Literal["alpha_21d", "alpha_combined"]


@dataclass(frozen=True)
class LongShortParams:
    """The dollar- and beta-neutral book (compute/portfolio/long_short.py)."""

    gross_exposure: float = described(2.0, "Sum of |weights|: half long, half short (2.0: 100 % long and 100 % short).")
    fraction: float = described(0.2, "Share of each date's ranked tradable members held long (top) and short (bottom).")
    every: int = described(ALPHA_HORIZON_DAYS, "Trading days between rebalances, the alpha's horizon: the book is held, "
                                               "drifting, for the horizon it forecasts.")
    beta_window: int = described(252, "Trailing returns (up to the decision date) of each instrument's beta to the "
                                      "equal-weighted market of the tradable members.")
    beta_min_observations: int = described(63, "Fewer returns in the window: the instrument's beta is taken as 1.")


@dataclass(frozen=True)
class TopkParams:
    """Long-only top-k with dropout and hysteresis (compute/portfolio/rules.py: topk_step).

    The defaults hold 20 names, sell at most 4 a week and only those ranked below 30: on the default
    market every 10-name book tried matched equal weight after costs (22 times its value traded a year
    without hysteresis), where 15- to 25-name books on the 21-day alpha beat it (docs/studies.md,
    "Choosing the top-k book"; the configurations tried are trials of the registry, design_search.py)."""

    k: int = described(20, "Names held, equal weight (capped at max_position).")
    n_drop: int = described(4, "At most this many held names sold per rebalance for ranking too low (dropout).")
    buffer: int = described(10, "Hysteresis: a held name is a sell candidate only below rank k + buffer (0: below k).")
    # With n_drop of the k names replaced per rebalance, a name is held for about k / n_drop rebalances:
    # 5 x 20 / 4 = 25 trading days, about the alpha's 21-day horizon.
    every: int = described(5, "Trading days between rebalances; a name is held for about every x k / n_drop days "
                              "(25 by default, about the alpha's 21-day horizon).")


@dataclass(frozen=True)
class StrategyParams:
    alpha: AlphaColumn = described(
        "alpha_21d", "The stacked alpha the books rank and the QP reads: alpha_21d, the horizon they hold for; "
                     "alpha_combined also mixes in the 63-day alpha, whose out-of-fold skill on the default market is "
                     "a fraction of the 21-day one's (docs/studies.md, \"Choosing the top-k book\").")
    qp: QpParams = described_factory(QpParams, "The QP: its objective's alpha scale, risk aversion and holding "
                                                "period, its caps and its solver.")
    long_short: LongShortParams = described_factory(LongShortParams, "The long-short book.")
    topk: TopkParams = described_factory(TopkParams, "The top-k book with dropout and hysteresis.")
    top_n: int = described(5, "Names held by top_n_equal.")
    top_n_every: int = described(5, "Trading days between top_n_equal's rebalances.")
    max_position: float = described(0.20, "Largest |weight| of one name in the rule-based books (top-n, top-k, "
                                           "long-short, threshold profiles).")
    equal_weight_every: int = described(21, "Trading days between equal weight's rebalances.")

    def __post_init__(self) -> None:
        if self.alpha not in get_args(AlphaColumn):
            raise ValueError(f"alpha must be one of {get_args(AlphaColumn)}, not {self.alpha!r}")


@dataclass(frozen=True)
class StrategyWeights:
    weights: pl.DataFrame  # date, ticker, weight, signal_date
    diagnostics: pl.DataFrame | None  # the QP's per-date status; None for rule-based strategies
    notes: list[str]


def auditor_for_longs(meta: pl.DataFrame) -> pl.DataFrame:
    """date, ticker, auditor_probability: P(a long trade hits its profit barrier) where the audited side is long."""
    return meta.filter(pl.col("side") == 1).select(c.DATE, c.TICKER, pl.col("meta_probability").alias("auditor_probability"))


def unexpected_shorts(strategy: str, weights: pl.DataFrame) -> int:
    """Negative weights in the book of a strategy that may not short (every one but SHORT_SELLING)."""
    return 0 if strategy in SHORT_SELLING else int((weights[WEIGHT] < 0).sum())


def build_target_weights(
    strategy: str,
    alpha: pl.DataFrame,
    returns: pl.DataFrame,
    *,
    meta: pl.DataFrame | None = None,
    barrier: pl.DataFrame | None = None,
    regimes: pl.DataFrame | None = None,
    sectors: dict[str, str] | None = None,
    members: pl.DataFrame | None = None,
    benchmark: str | None = None,
    params: StrategyParams = StrategyParams(),
) -> StrategyWeights:
    """Target weights of one strategy. alpha: stacked_alpha; returns: date, ticker, return; meta: meta_labels
    (date, ticker, side, meta_probability); barrier: barrier_probabilities (date, ticker, barrier_probability);
    regimes: date, regime (market-wide); members: date, ticker of each date's tradable members (None: every
    instrument with a return); benchmark: the universe's benchmark ticker (see the module docstring)."""
    if alpha.height == 0:
        raise ValueError(f"{strategy}: no stacked alpha, nothing to evaluate")
    in_span = pl.col(c.DATE).is_between(alpha[c.DATE].min(), alpha[c.DATE].max()) & pl.col(RETURN).is_not_null()
    if strategy == BUY_AND_HOLD and benchmark is not None:
        held = returns.filter(in_span & (pl.col(c.TICKER) == benchmark)).select(c.DATE, c.TICKER)
        if held.height:
            return StrategyWeights(buy_and_hold(held), None, [f"{strategy}: holds the benchmark {benchmark}"])
    present = returns.filter(in_span).select(c.DATE, c.TICKER)
    if members is not None:
        keys = members.select(c.DATE, c.TICKER)
        present = present.join(keys, on=[c.DATE, c.TICKER], how="semi")
        alpha = alpha.join(keys, on=[c.DATE, c.TICKER], how="semi")
        barrier = None if barrier is None else barrier.join(keys, on=[c.DATE, c.TICKER], how="semi")
    if strategy == QP:
        expected = alpha.select(c.DATE, c.TICKER, alpha_to_daily_return(pl.col(params.alpha), ALPHA_HORIZON_DAYS).alias("expected"))
        weights, diagnostics = qp_weights(expected, returns, params.qp, sectors)
        return StrategyWeights(weights, diagnostics, [])
    if strategy == LONG_SHORT:
        return _long_short(alpha, returns, members, params)
    if strategy == TOPK_DROPOUT:
        topk = params.topk
        return StrategyWeights(topk_dropout(alpha, params.alpha, topk.k, topk.n_drop, topk.buffer, topk.every, params.max_position),
                               None, [])
    if strategy == TOP_N:
        return StrategyWeights(top_n_equal(alpha, params.alpha, params.top_n, params.max_position, params.top_n_every), None, [])
    if strategy == EQUAL:
        return StrategyWeights(equal_weight(present, params.equal_weight_every), None, [])
    if strategy == BUY_AND_HOLD:
        note = f"{strategy}: benchmark {benchmark} has no return in the span; " if benchmark else f"{strategy}: "
        return StrategyWeights(buy_and_hold(present), None, [note + "equal-weighted members of the first date, held"])
    if strategy in PROFILES:
        profile = PROFILES[strategy]
        if barrier is None:
            raise ValueError(f"{strategy}: needs the triple-barrier classifier's probabilities")
        span = pl.col(c.DATE).is_between(alpha[c.DATE].min(), alpha[c.DATE].max())
        signals = barrier.filter(span).select(c.DATE, c.TICKER, pl.col("barrier_probability").alias("probability"))
        notes = []
        if profile.use_auditor:
            if meta is None:
                raise ValueError(f"{strategy}: needs the meta-labels (auditor)")
            signals = signals.join(auditor_for_longs(meta), on=[c.DATE, c.TICKER], how="left")
        if profile.use_regime_filter:
            if regimes is None:
                signals = signals.with_columns(pl.lit(None, dtype=pl.String).alias("regime"))
                notes.append(f"{strategy}: regime filter not applied (regime labels not materialised)")
            else:
                signals = signals.join(regimes.select(c.DATE, pl.col("regime").cast(pl.String)), on=c.DATE, how="left")
        return StrategyWeights(threshold_profile(signals, profile, params.max_position), None, notes)
    raise ValueError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGY_NAMES)}")


def _long_short(alpha: pl.DataFrame, returns: pl.DataFrame, members: pl.DataFrame | None,
                params: StrategyParams) -> StrategyWeights:
    """The neutral book on the stacked alpha's rebalance dates, betas to the members' equal-weighted market."""
    book = params.long_short
    betas = trailing_betas(returns, market_returns(returns, members), book.beta_window, book.beta_min_observations)
    decided = alpha.filter(pl.col(c.DATE).is_in(rebalance_dates(alpha[c.DATE], book.every).implode()))
    scored = decided.select(c.DATE, c.TICKER, params.alpha).join(betas, on=[c.DATE, c.TICKER], how="left")
    weights, empty = long_short_book(scored, params.alpha, book.fraction, book.gross_exposure, params.max_position)
    notes = [f"{LONG_SHORT}: no neutral book on {len(empty)} dates (all cash), first {empty[0]}"] if empty else []
    return StrategyWeights(weights, None, notes)
