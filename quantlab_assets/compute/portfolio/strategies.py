"""The lab's strategy set: one name -> target weights from the stacked alpha, meta-labels, returns and regimes.

Every strategy is evaluated on the same span, the dates that have a stacked alpha (the out-of-fold
predictions), so the baselines and the models are compared over the same market.

Seed 002's threshold profiles need a probability from the primary model: the stacked alpha is a
calibrated forecast of the 21-day industry-relative return in bp with residual variance var_21d, so
P(return > 0) = Phi(alpha_21d / sqrt(var_21d)) under a Gaussian residual. The meta-label model (the
"auditor") gives the probability that the alpha's trade hits its triple-barrier profit target first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl
from scipy import stats

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.backtest.engine import RETURN
from quantlab_assets.compute.portfolio.names import BUY_AND_HOLD, EQUAL, QP, STRATEGY_NAMES, TOP_N
from quantlab_assets.compute.portfolio.qp import QpParams, alpha_to_daily_return, qp_weights
from quantlab_assets.compute.portfolio.rules import PROFILES, buy_and_hold, equal_weight, threshold_profile, top_n_equal

ALPHA = "alpha_combined"
# alpha_combined mixes the 21d and 63d horizons by inverse variance; it is read as a 21-day forecast
# (the shorter horizon dominates the weights when its residual variance is lower).
ALPHA_HORIZON_DAYS = 21


@dataclass(frozen=True)
class StrategyParams:
    qp: QpParams = field(default_factory=QpParams)
    top_n: int = 5
    top_n_every: int = 5
    max_position: float = 0.20
    equal_weight_every: int = 21


@dataclass(frozen=True)
class StrategyWeights:
    weights: pl.DataFrame  # date, ticker, weight, signal_date
    diagnostics: pl.DataFrame | None  # the QP's per-date status; None for rule-based strategies
    notes: list[str]


def primary_probability() -> pl.Expr:
    """P(21-day relative return > 0) from the calibrated alpha and its residual variance (Gaussian residual)."""
    z = pl.col("alpha_21d") / pl.col("var_21d").sqrt()
    return z.map_batches(lambda s: pl.Series(stats.norm.cdf(s.to_numpy()), dtype=pl.Float64)).alias("probability")


def build_target_weights(
    strategy: str,
    alpha: pl.DataFrame,
    returns: pl.DataFrame,
    *,
    meta: pl.DataFrame | None = None,
    regimes: pl.DataFrame | None = None,
    sectors: dict[str, str] | None = None,
    params: StrategyParams = StrategyParams(),
) -> StrategyWeights:
    """Target weights of one strategy. alpha: stacked_alpha; returns: date, ticker, return; meta: meta_labels
    (date, ticker, meta_probability); regimes: date, regime (market-wide)."""
    if alpha.height == 0:
        raise ValueError(f"{strategy}: no stacked alpha, nothing to evaluate")
    present = returns.filter(pl.col(c.DATE).is_between(alpha[c.DATE].min(), alpha[c.DATE].max())
                             & pl.col(RETURN).is_not_null()).select(c.DATE, c.TICKER)
    if strategy == QP:
        expected = alpha.select(c.DATE, c.TICKER, alpha_to_daily_return(pl.col(ALPHA), ALPHA_HORIZON_DAYS).alias("expected"))
        weights, diagnostics = qp_weights(expected, returns, params.qp, sectors)
        return StrategyWeights(weights, diagnostics, [])
    if strategy == TOP_N:
        return StrategyWeights(top_n_equal(alpha, ALPHA, params.top_n, params.max_position, params.top_n_every), None, [])
    if strategy == EQUAL:
        return StrategyWeights(equal_weight(present, params.equal_weight_every), None, [])
    if strategy == BUY_AND_HOLD:
        return StrategyWeights(buy_and_hold(present), None, [])
    if strategy in PROFILES:
        profile = PROFILES[strategy]
        signals = alpha.select(c.DATE, c.TICKER, primary_probability())
        notes = []
        if profile.use_auditor:
            if meta is None:
                raise ValueError(f"{strategy}: needs the meta-labels (auditor)")
            signals = signals.join(meta.select(c.DATE, c.TICKER, pl.col("meta_probability").alias("auditor_probability")),
                                   on=[c.DATE, c.TICKER], how="left")
        if profile.use_regime_filter:
            if regimes is None:
                signals = signals.with_columns(pl.lit(None, dtype=pl.String).alias("regime"))
                notes.append(f"{strategy}: regime filter not applied (regime labels not materialised)")
            else:
                signals = signals.join(regimes.select(c.DATE, pl.col("regime").cast(pl.String)), on=c.DATE, how="left")
        return StrategyWeights(threshold_profile(signals, profile, params.max_position), None, notes)
    raise ValueError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGY_NAMES)}")
