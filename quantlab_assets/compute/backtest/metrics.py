"""Performance metrics of a daily return series, each with the uncertainty that makes it honest.

Point estimates (CAGR, Sharpe, Sortino, drawdown, Calmar, turnover, hit rate, VaR/CVaR) come with:
a stationary-bootstrap confidence interval for the Sharpe ratio (arch's StationaryBootstrap, seeded;
blocks keep the serial dependence of daily returns), the probabilistic Sharpe ratio and the deflated
Sharpe ratio (Bailey & Lopez de Prado 2012, 2014) and the minimum track record length, and a
Clopper-Pearson interval for the trade win rate. A ratio whose denominator is zero is None, never a
number: "100 % of 3 trades" comes out as a win rate of 1.0 with a 95 % interval of [0.29, 1.0].

Annualised figures (CAGR, volatility, Sharpe, Sortino, turnover, track-record years) scale by the
periods per calendar year that the series' own dates show (`periods_per_year`), not by a fixed 252: a
calendar of 261 sessions a year (every weekday) compounds 261 daily returns into one year, and a
CAGR computed with 252 would credit it a year too short.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.special import ndtr, ndtri

from quantlab_assets.compute.params import described

# Periods per year where dates cannot measure it (fewer than two distinct dates): the usual count of
# US equity sessions.
PERIODS_PER_YEAR = 252
DAYS_PER_CALENDAR_YEAR = 365.25
EULER_GAMMA = 0.5772156649015329


@dataclass(frozen=True)
class MetricParams:
    confidence: float = described(0.95, "Confidence level of the Sharpe ratio's bootstrap interval.")
    bootstrap_reps: int = described(1000, "Stationary-bootstrap resamples of the Sharpe ratio's interval.")
    block_days: int = described(
        5, "Expected block length of the stationary bootstrap (about a trading week of serial dependence).")
    seed: int = described(42, "Seed of the bootstrap.")
    # Number of trials (the deflated Sharpe ratio's N): the lab's trial registry counts them
    # (compute/backtest/trials.py: every candidate strategy, base model x horizon and tuning trial).
    n_trials: int = 1
    # Variance of the per-period Sharpe ratios across the trials (the registry's, in this series' periods);
    # None: the estimator's own variance.
    trial_sharpe_variance: float | None = None
    # Periods per year that annualise; None: measured from the series' dates (periods_per_year).
    periods_per_year: float | None = None


def periods_per_year(dates: pl.Series | Sequence[dt.date]) -> float:
    """Trading periods per calendar year that a series' dates show.

    Estimator: the intervals between its distinct dates (their count minus one) divided by the calendar
    years from the first date to the last (days / 365.25). Every weekday from 2000-01-03 to 2009-12-31
    gives 261.0; the NYSE sessions of 1990-2022 give 252.0. With fewer than two distinct dates nothing is
    measured and PERIODS_PER_YEAR is returned.
    """
    unique = pl.Series(dates, dtype=pl.Date).drop_nulls().unique()
    if unique.len() < 2:
        return float(PERIODS_PER_YEAR)
    elapsed_days = (unique.max() - unique.min()).days
    return (unique.len() - 1) / (elapsed_days / DAYS_PER_CALENDAR_YEAR)


def _ratio(numerator: float, denominator: float) -> float | None:
    return None if denominator == 0 or not math.isfinite(denominator) else numerator / denominator


def sharpe_ratio(returns: np.ndarray) -> float | None:
    """Per-period Sharpe ratio (risk-free 0); None when undefined (fewer than 2 values or zero dispersion)."""
    if returns.size < 2:
        return None
    return _ratio(float(returns.mean()), float(returns.std(ddof=1)))


def max_drawdown(returns: np.ndarray) -> float:
    """Largest peak-to-trough loss of the compounded series, as a negative fraction (0: never below a peak)."""
    equity = np.concatenate([[1.0], np.cumprod(1.0 + returns)])
    return float((equity / np.maximum.accumulate(equity) - 1.0).min())


def _moments(returns: np.ndarray) -> tuple[float, float]:
    """Skewness and (non-excess) kurtosis, biased sample estimators as in Bailey & Lopez de Prado."""
    # Imported here: scipy.stats loads scipy.optimize, interpolate and ndimage (0.4 s), and every Dagster run
    # process imports this module.
    from scipy import stats

    return float(stats.skew(returns, bias=True)), float(stats.kurtosis(returns, fisher=False, bias=True))


def _sharpe_variance_factor(sharpe: float, skew: float, kurtosis: float) -> float:
    """1 - skew*SR + (kurt - 1)/4 * SR^2: the non-normality correction of the Sharpe ratio's variance."""
    return 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2


def probabilistic_sharpe_ratio(returns: np.ndarray, benchmark_sharpe: float = 0.0) -> float | None:
    """P(true per-period Sharpe > benchmark_sharpe) given the sample's length, skewness and kurtosis."""
    sharpe = sharpe_ratio(returns)
    if sharpe is None or returns.size < 3:
        return None
    factor = _sharpe_variance_factor(sharpe, *_moments(returns))
    if factor <= 0:
        return None
    return float(ndtr((sharpe - benchmark_sharpe) * math.sqrt(returns.size - 1) / math.sqrt(factor)))


def expected_max_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """Expected maximum per-period Sharpe of n_trials unskilled strategies (the deflated Sharpe's benchmark)."""
    if n_trials <= 1:
        return 0.0
    return math.sqrt(sharpe_variance) * (
        (1.0 - EULER_GAMMA) * ndtri(1.0 - 1.0 / n_trials)
        + EULER_GAMMA * ndtri(1.0 - 1.0 / (n_trials * math.e))
    )


def deflated_sharpe_ratio(returns: np.ndarray, n_trials: int, trial_sharpe_variance: float | None = None) -> float | None:
    """PSR against the Sharpe ratio the best of n_trials strategies would reach by luck alone."""
    sharpe = sharpe_ratio(returns)
    if sharpe is None or returns.size < 3:
        return None
    variance = trial_sharpe_variance
    if variance is None:
        variance = _sharpe_variance_factor(sharpe, *_moments(returns)) / (returns.size - 1)
    return probabilistic_sharpe_ratio(returns, expected_max_sharpe(n_trials, variance))


def minimum_track_record_length(returns: np.ndarray, benchmark_sharpe: float = 0.0, confidence: float = 0.95) -> float | None:
    """Periods needed for the observed Sharpe to exceed benchmark_sharpe at `confidence`; None if it does not exceed it."""
    sharpe = sharpe_ratio(returns)
    if sharpe is None or sharpe <= benchmark_sharpe or returns.size < 3:
        return None
    factor = _sharpe_variance_factor(sharpe, *_moments(returns))
    return 1.0 + factor * (ndtri(confidence) / (sharpe - benchmark_sharpe)) ** 2


def sharpe_bootstrap_interval(
    returns: np.ndarray, params: MetricParams, periods: float = PERIODS_PER_YEAR
) -> tuple[float | None, float | None, float]:
    """Percentile interval of the Sharpe annualised with `periods` per year over stationary-bootstrap
    resamples, and the share of resamples where it is undefined (zero dispersion), which the interval ignores."""
    if returns.size < 2:
        return None, None, 1.0
    # Imported here: arch loads matplotlib (0.5 s), and every run process loads this module.
    from arch.bootstrap import StationaryBootstrap

    bootstrap = StationaryBootstrap(params.block_days, returns, seed=np.random.default_rng(params.seed))

    def annualised(sample: np.ndarray) -> np.ndarray:
        sd = sample.std(ddof=1)
        return np.array([sample.mean() / sd * math.sqrt(periods) if sd > 0 else np.nan])

    draws = bootstrap.apply(annualised, reps=params.bootstrap_reps)[:, 0]
    finite = draws[np.isfinite(draws)]
    if finite.size == 0:
        return None, None, 1.0
    tail = (1.0 - params.confidence) / 2.0 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high), float(1.0 - finite.size / draws.size)


def win_rate_interval(wins: int, n: int, confidence: float = 0.95) -> tuple[float | None, float | None]:
    """Clopper-Pearson (exact) interval of a win rate."""
    if n == 0:
        return None, None
    from scipy import stats  # imported here: see _moments

    interval = stats.binomtest(wins, n).proportion_ci(confidence_level=confidence, method="exact")
    return float(interval.low), float(interval.high)


def compute_metrics(
    daily: pl.DataFrame, trades: pl.DataFrame | None = None, params: MetricParams = MetricParams()
) -> dict[str, float | int | None]:
    """Every metric of a backtest: daily has date, net_return and turnover; trades has pnl and closed (round trips).

    Annualised with params.periods_per_year, or else with the periods per year of daily's dates.
    """
    returns = daily["net_return"].to_numpy()
    turnover = daily["turnover"].to_numpy() if "turnover" in daily.columns else np.zeros_like(returns)
    n = returns.size
    periods = params.periods_per_year or periods_per_year(daily["date"])
    years = n / periods
    growth = float(np.prod(1.0 + returns)) if n else 1.0
    cagr = growth ** (1.0 / years) - 1.0 if n and growth > 0 else None
    sharpe = sharpe_ratio(returns)
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2))) if n else 0.0
    drawdown = max_drawdown(returns) if n else 0.0
    var_cut = float(np.quantile(returns, 1 - params.confidence)) if n else None
    low, high, undefined = sharpe_bootstrap_interval(returns, params, periods)
    min_trl = minimum_track_record_length(returns, confidence=params.confidence)
    metrics: dict[str, float | int | None] = {
        "days": n,
        "periods_per_year": periods,
        "years": years,
        "total_return": growth - 1.0,
        "cagr": cagr,
        "annual_volatility": float(returns.std(ddof=1) * math.sqrt(periods)) if n > 1 else None,
        "sharpe": None if sharpe is None else sharpe * math.sqrt(periods),
        "sortino": None if (r := _ratio(float(returns.mean()) if n else 0.0, downside)) is None else r * math.sqrt(periods),
        "max_drawdown": drawdown,
        "calmar": None if cagr is None else _ratio(cagr, abs(drawdown)),
        "turnover_daily": float(turnover.mean()) if n else 0.0,
        "turnover_annual": float(turnover.mean() * periods) if n else 0.0,
        "hit_rate_days": _ratio(float((returns > 0).sum()), float((returns != 0).sum())),
        # 0.0 - x, not -x: a flat series has a VaR of 0.0, not -0.0.
        "var_95": None if var_cut is None else 0.0 - var_cut,
        "cvar_95": None if var_cut is None else 0.0 - float(returns[returns <= var_cut].mean()),
        "sharpe_ci_low": low,
        "sharpe_ci_high": high,
        "sharpe_ci_undefined_share": undefined,
        "psr": probabilistic_sharpe_ratio(returns),
        "dsr": deflated_sharpe_ratio(returns, params.n_trials, params.trial_sharpe_variance),
        "n_trials": params.n_trials,
        "min_track_record_days": min_trl,
        "min_track_record_years": None if min_trl is None else min_trl / periods,
    }
    if trades is not None:
        metrics.update(trade_metrics(trades, params.confidence))
    return metrics


def trade_metrics(trades: pl.DataFrame, confidence: float = 0.95) -> dict[str, float | int | None]:
    """Count, win rate with its exact interval, profit factor and holding period of the closed round trips."""
    closed = trades.filter(pl.col("closed"))
    pnl = closed["pnl"].to_numpy()
    wins = int((pnl > 0).sum())
    low, high = win_rate_interval(wins, pnl.size, confidence)
    gains, losses = float(pnl[pnl > 0].sum()), float(-pnl[pnl < 0].sum())
    return {
        "trades": trades.height,
        "closed_trades": int(pnl.size),
        "win_rate": _ratio(float(wins), float(pnl.size)),
        "win_rate_ci_low": low,
        "win_rate_ci_high": high,
        "profit_factor": _ratio(gains, losses),
        "avg_holding_days": float(closed["holding_days"].mean()) if closed.height else None,
    }


def regime_breakdown(daily: pl.DataFrame, regimes: pl.DataFrame, regime_column: str = "regime") -> pl.DataFrame:
    """Per regime: days, share of days, annualised mean and volatility, Sharpe, hit rate and the worst day.

    regimes: date and regime_column, one label per date (dates without a label are 'unlabelled').
    Annualised with the periods per year of daily's dates (a regime's own days are not contiguous).
    """
    periods = periods_per_year(daily["date"])
    joined = daily.select("date", "net_return").join(regimes.select("date", regime_column), on="date", how="left")
    r = pl.col("net_return")
    return (
        joined.with_columns(pl.col(regime_column).cast(pl.String).fill_null("unlabelled"))
        .group_by(regime_column)
        .agg(
            pl.len().alias("days"),
            (r.mean() * periods).alias("annual_return"),
            (r.std() * math.sqrt(periods)).alias("annual_volatility"),
            pl.when(r.std() > 0).then(r.mean() / r.std() * math.sqrt(periods)).alias("sharpe"),
            pl.when((r != 0).sum() > 0).then((r > 0).sum() / (r != 0).sum()).alias("hit_rate"),
            r.min().alias("worst_day"),
        )
        .with_columns((pl.col("days") / pl.col("days").sum()).alias("share"))
        .sort(regime_column)
    )
