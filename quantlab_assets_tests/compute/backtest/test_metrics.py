"""Metrics against formulas restated here, and the "100 % win rate on 3 trades" case of seed 002."""

import datetime as dt
import math
import statistics

import numpy as np
import polars as pl
import pytest

from quantlab_assets.compute.backtest.metrics import (
    PERIODS_PER_YEAR,
    MetricParams,
    compute_metrics,
    deflated_sharpe_ratio,
    minimum_track_record_length,
    periods_per_year,
    probabilistic_sharpe_ratio,
    regime_breakdown,
)
from quantlab_assets.compute.backtest.trades import round_trips

N_CDF = statistics.NormalDist().cdf
N_PPF = statistics.NormalDist().inv_cdf


def _daily(returns: np.ndarray, turnover: np.ndarray | None = None, dates: list[dt.date] | None = None) -> pl.DataFrame:
    """Daily rows on `dates` (default: every calendar day from 2020-01-01, 365.25 periods a year)."""
    dates = dates or [dt.date(2020, 1, 1) + dt.timedelta(days=i) for i in range(returns.size)]
    return pl.DataFrame({"date": dates, "net_return": returns,
                         "turnover": np.zeros(returns.size) if turnover is None else turnover})


def _observed_periods(dates: list[dt.date]) -> float:
    """Intervals between the dates per calendar year of 365.25 days, restated."""
    return (len(dates) - 1) / ((dates[-1] - dates[0]).days / 365.25)


def _weekdays(first: dt.date, last: dt.date) -> list[dt.date]:
    days = (first + dt.timedelta(days=i) for i in range((last - first).days + 1))
    return [day for day in days if day.weekday() < 5]


def _sessions_252_a_year(years: int) -> list[dt.date]:
    """252 * years + 1 distinct dates spread over exactly `years` Julian years (365.25 days each)."""
    offsets = np.rint(np.linspace(0, 365.25 * years, 252 * years + 1)).astype(int)
    return [dt.date(2001, 1, 1) + dt.timedelta(days=int(offset)) for offset in offsets]


def _moments(x: list[float]) -> tuple[float, float]:
    n, mean = len(x), sum(x) / len(x)
    m2 = sum((v - mean) ** 2 for v in x) / n
    return sum((v - mean) ** 3 for v in x) / n / m2**1.5, sum((v - mean) ** 4 for v in x) / n / m2**2


@pytest.fixture
def returns() -> np.ndarray:
    return np.random.default_rng(11).standard_t(5, 756) * 0.01 + 0.0004


def test_point_metrics_match_textbook_formulas(returns: np.ndarray) -> None:
    turnover = np.random.default_rng(1).random(returns.size)
    daily = _daily(returns, turnover)
    m = compute_metrics(daily, params=MetricParams(bootstrap_reps=50))
    periods = _observed_periods(daily["date"].to_list())
    assert m["periods_per_year"] == pytest.approx(periods, rel=1e-12)
    x = returns.tolist()
    equity, peak, worst = 1.0, 1.0, 0.0
    for r in x:
        equity *= 1 + r
        peak = max(peak, equity)
        worst = min(worst, equity / peak - 1)
    cagr = equity ** (periods / len(x)) - 1
    assert m["cagr"] == pytest.approx(cagr, rel=1e-12)
    assert m["sharpe"] == pytest.approx(statistics.mean(x) / statistics.stdev(x) * math.sqrt(periods), rel=1e-12)
    assert m["annual_volatility"] == pytest.approx(statistics.stdev(x) * math.sqrt(periods), rel=1e-12)
    downside = math.sqrt(sum(min(r, 0) ** 2 for r in x) / len(x))
    assert m["sortino"] == pytest.approx(statistics.mean(x) / downside * math.sqrt(periods), rel=1e-12)
    assert m["max_drawdown"] == pytest.approx(worst, rel=1e-12)
    assert m["calmar"] == pytest.approx(cagr / abs(worst), rel=1e-12)
    assert m["turnover_annual"] == pytest.approx(statistics.mean(turnover.tolist()) * periods, rel=1e-12)
    cut = sorted(x)[int(0.05 * (len(x) - 1))]  # numpy's linear quantile at 5 % of 755 = 37.75 -> between 37 and 38
    q = sorted(x)[37] + 0.75 * (sorted(x)[38] - sorted(x)[37])
    assert cut <= q
    assert m["var_95"] == pytest.approx(-q, rel=1e-12)
    assert m["cvar_95"] == pytest.approx(-statistics.mean([r for r in x if r <= q]), rel=1e-12)
    assert m["hit_rate_days"] == pytest.approx(sum(r > 0 for r in x) / len(x))


def test_periods_per_year_counts_the_intervals_per_calendar_year() -> None:
    weekdays = _weekdays(dt.date(2000, 1, 3), dt.date(2009, 12, 31))
    assert periods_per_year(weekdays) == pytest.approx(_observed_periods(weekdays), rel=1e-12)
    assert periods_per_year(weekdays) == pytest.approx(261.0, abs=0.05)
    assert periods_per_year(_sessions_252_a_year(4)) == pytest.approx(252.0, rel=1e-12)
    # Order and repeats do not matter; a single date measures nothing.
    assert periods_per_year(list(reversed(weekdays)) + weekdays[:10]) == periods_per_year(weekdays)
    assert periods_per_year([dt.date(2020, 1, 1)]) == PERIODS_PER_YEAR


def test_cagr_on_a_weekday_calendar_is_the_calendar_year_compounding() -> None:
    """Every weekday of 2001-2010 (about 261 a year): ten calendar years, whatever the session count."""
    dates = _weekdays(dt.date(2001, 1, 1), dt.date(2010, 12, 31))
    returns = np.random.default_rng(4).normal(0.0004, 0.01, len(dates))
    m = compute_metrics(_daily(returns, dates=dates), params=MetricParams(bootstrap_reps=20))
    growth = float(np.prod(1.0 + returns))
    assert m["periods_per_year"] == pytest.approx(261.0, abs=0.05)
    assert m["cagr"] == pytest.approx(growth ** (1 / 10) - 1, rel=1e-4)
    # With 252 a year the same returns would span 10.35 years and compound about 3 % less a year.
    assert growth ** (252 / len(dates)) - 1 < 0.97 * m["cagr"]


def test_a_calendar_of_252_sessions_a_year_annualises_as_before(returns: np.ndarray) -> None:
    dates = _sessions_252_a_year(3)[: returns.size]
    measured = compute_metrics(_daily(returns, dates=dates), params=MetricParams(bootstrap_reps=50))
    fixed = compute_metrics(_daily(returns, dates=dates), params=MetricParams(bootstrap_reps=50, periods_per_year=252.0))
    x = returns.tolist()
    assert measured["periods_per_year"] == pytest.approx(252.0, rel=1e-3)
    for key in ("cagr", "sharpe", "sortino", "annual_volatility", "sharpe_ci_low", "min_track_record_years"):
        assert measured[key] == pytest.approx(fixed[key], rel=1e-3)
    assert fixed["sharpe"] == pytest.approx(statistics.mean(x) / statistics.stdev(x) * math.sqrt(252), rel=1e-12)


def test_psr_dsr_and_min_track_record_match_bailey_lopez_de_prado(returns: np.ndarray) -> None:
    x = returns.tolist()
    sr = statistics.mean(x) / statistics.stdev(x)
    skew, kurt = _moments(x)
    factor = 1 - skew * sr + (kurt - 1) / 4 * sr**2
    assert probabilistic_sharpe_ratio(returns) == pytest.approx(N_CDF(sr * math.sqrt(len(x) - 1) / math.sqrt(factor)), rel=1e-10)
    variance, trials = 0.002, 20
    sr_star = math.sqrt(variance) * ((1 - 0.5772156649015329) * N_PPF(1 - 1 / trials)
                                     + 0.5772156649015329 * N_PPF(1 - 1 / (trials * math.e)))
    dsr = deflated_sharpe_ratio(returns, trials, variance)
    assert dsr == pytest.approx(N_CDF((sr - sr_star) * math.sqrt(len(x) - 1) / math.sqrt(factor)), rel=1e-10)
    assert dsr < probabilistic_sharpe_ratio(returns)
    assert deflated_sharpe_ratio(returns, 1) == probabilistic_sharpe_ratio(returns)
    assert minimum_track_record_length(returns) == pytest.approx(1 + factor * (N_PPF(0.95) / sr) ** 2, rel=1e-10)


def test_undefined_ratios_are_none() -> None:
    m = compute_metrics(_daily(np.zeros(30)), params=MetricParams(bootstrap_reps=20))
    assert m["sharpe"] is None and m["sortino"] is None and m["calmar"] is None and m["psr"] is None
    assert m["hit_rate_days"] is None and m["sharpe_ci_low"] is None and m["min_track_record_days"] is None
    assert math.copysign(1.0, m["var_95"]) == 1.0 and m["cvar_95"] == 0.0


def test_bootstrap_interval_is_seeded_and_covers_the_estimate(returns: np.ndarray) -> None:
    first = compute_metrics(_daily(returns), params=MetricParams(bootstrap_reps=300, seed=3))
    again = compute_metrics(_daily(returns), params=MetricParams(bootstrap_reps=300, seed=3))
    assert (first["sharpe_ci_low"], first["sharpe_ci_high"]) == (again["sharpe_ci_low"], again["sharpe_ci_high"])
    assert first["sharpe_ci_low"] < first["sharpe"] < first["sharpe_ci_high"]


def test_three_winning_trades_are_not_evidence() -> None:
    """Seed 002's "Sniper": half a year, mostly in cash, three noisy trades that all end in profit."""
    rng = np.random.default_rng(5)
    n_days = 126
    weights = np.zeros((n_days, 1))
    returns = rng.normal(0.0, 0.01, (n_days, 1))
    for start in (10, 50, 90):
        weights[start:start + 8] = 1.0
        held = slice(start + 1, start + 9)
        returns[held, 0] += 0.003 - returns[held, 0].mean() * 0.5  # keep them noisy but winning
    dates = pl.Series("date", [dt.date(2025, 1, 1) + dt.timedelta(days=i) for i in range(n_days)], dtype=pl.Date)
    trades = round_trips(weights, returns, dates, ["SNIPER"])
    daily_returns = np.concatenate([[0.0], (weights[:-1] * returns[1:]).sum(axis=1)])
    m = compute_metrics(_daily(daily_returns), trades, MetricParams(n_trials=3))
    assert m["closed_trades"] == 3 and m["win_rate"] == 1.0
    assert m["win_rate_ci_low"] == pytest.approx(0.025 ** (1 / 3), abs=1e-12)  # Clopper-Pearson, n of n: (alpha/2)^(1/n)
    assert m["win_rate_ci_low"] < 0.3 and m["win_rate_ci_high"] == 1.0
    assert m["sharpe"] > 0
    assert m["sharpe_ci_low"] < 0 < m["sharpe_ci_high"]
    assert m["psr"] < 0.95 and m["dsr"] < m["psr"]
    assert m["min_track_record_days"] > m["days"]


def test_round_trips_sum_to_the_gross_contributions() -> None:
    rng = np.random.default_rng(2)
    weights = (rng.random((40, 3)) < 0.5) * 0.3
    returns = rng.normal(0, 0.01, (40, 3))
    dates = pl.Series("date", [dt.date(2025, 1, 1) + dt.timedelta(days=i) for i in range(40)], dtype=pl.Date)
    trades = round_trips(weights, returns, dates, ["A", "B", "C"])
    assert trades["pnl"].sum() == pytest.approx(float((weights[:-1] * returns[1:]).sum()), rel=1e-12)
    assert trades["holding_days"].sum() == int((weights[:-1] != 0).sum())
    # Open: held through the last day (a position bought at the last close has earned nothing yet: no trade).
    assert trades.filter(~pl.col("closed")).height == int(((weights[-2] != 0) & (weights[-1] != 0)).sum())


def test_regime_breakdown_groups_days_by_label() -> None:
    returns = np.array([0.01, -0.02, 0.03, 0.0, 0.01])
    daily = _daily(returns)
    regimes = daily.select("date").with_columns(pl.Series("regime", ["bull", "bear", "bull", "bear", None]))
    table = regime_breakdown(daily, regimes)
    assert table["regime"].to_list() == ["bear", "bull", "unlabelled"]
    assert table["days"].to_list() == [2, 2, 1]
    bull = table.filter(pl.col("regime") == "bull").row(0, named=True)
    assert bull["annual_return"] == pytest.approx(0.02 * 365.25)  # five consecutive calendar days
    assert bull["hit_rate"] == 1.0
