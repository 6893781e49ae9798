"""The trial registry on a constructed set (passive baselines and a strategy that never trades left out),
the model trials' long-short returns by hand, and the deflated Sharpe with the registry's N and variance
against the formula of Bailey & Lopez de Prado (2014) restated here."""

import datetime as dt
import math
import statistics

import numpy as np
import polars as pl
import pytest
from scipy import stats

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.backtest.metrics import MetricParams
from quantlab_assets.compute.backtest.trials import (
    MODEL,
    NEVER_TRADES_NOTE,
    PASSIVE_BASELINE_NOTE,
    STRATEGY,
    TUNING,
    candidates,
    deflated_metrics,
    deflation,
    long_short_rank_returns,
    trial_registry,
)
from quantlab_assets.compute.portfolio.names import AUDITED, BUY_AND_HOLD, EQUAL, QP, SNIPER, TOP_N

DAYS = 300
DATES = [dt.date(2020, 1, 1) + dt.timedelta(days=i) for i in range(DAYS)]  # every calendar day: 365.25 a year
TICKERS = ["A", "B", "C", "D"]
GAMMA = 0.5772156649015329


def _backtest(seed: int, trades: bool = True) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    returns = rng.normal(0.0005 * seed, 0.01, DAYS) if trades else np.zeros(DAYS)
    return pl.DataFrame({c.DATE: DATES, "net_return": returns, "turnover": np.full(DAYS, 0.1 if trades else 0.0)})


def _strategies() -> dict[str, pl.DataFrame]:
    return {QP: _backtest(1), TOP_N: _backtest(2), AUDITED: _backtest(3), EQUAL: _backtest(4), BUY_AND_HOLD: _backtest(5),
            SNIPER: _backtest(6, trades=False)}


def _returns() -> pl.DataFrame:
    rng = np.random.default_rng(11)
    return pl.DataFrame({c.DATE: [d for d in DATES for _ in TICKERS], c.TICKER: TICKERS * DAYS,
                         "return": rng.normal(0, 0.01, DAYS * len(TICKERS))})


def _predictions(seed: int) -> pl.DataFrame:
    rows = _returns().select(c.DATE, c.TICKER)
    return rows.with_columns(pl.Series("prediction", np.random.default_rng(seed).normal(size=rows.height)))


def _tuning() -> pl.DataFrame:
    return pl.DataFrame({"trial": [0, 1, 2], "state": ["complete", "complete", "pruned"]})


def _registry() -> pl.DataFrame:
    return trial_registry(_strategies(), {"ridge_21d": _predictions(1), "xgboost_63d": _predictions(2)}, _returns(), _tuning())


def test_the_registry_counts_candidates_models_and_tuning_trials_but_no_baseline() -> None:
    registry = _registry()
    assert registry.height == 6 + 2 + 3
    counted = registry.filter(pl.col("counted"))
    assert sorted(counted.filter(pl.col("kind") == STRATEGY)["trial"]) == sorted([QP, TOP_N, AUDITED])
    notes = dict(registry.filter(~pl.col("counted")).select("trial", "note").iter_rows())
    assert notes == {EQUAL: PASSIVE_BASELINE_NOTE, BUY_AND_HOLD: PASSIVE_BASELINE_NOTE, SNIPER: NEVER_TRADES_NOTE}
    deflate = deflation(registry, 365.25)
    assert deflate.n_trials == 3 + 2 + 3
    assert deflate.counts == {STRATEGY: 3, MODEL: 2, TUNING: 3}
    # Tuning trials have no return series: no Sharpe, N only. Excluded strategies carry no Sharpe either.
    assert registry.filter(pl.col("kind") == TUNING)["sharpe"].null_count() == 3
    assert registry.filter(~pl.col("counted"))["sharpe"].null_count() == 3
    assert sorted(candidates(registry, _strategies())) == sorted([QP, TOP_N, AUDITED])
    # Without stored model predictions or search, N is the candidates alone.
    assert deflation(trial_registry(_strategies()), 365.25).n_trials == 3


def test_model_trials_earn_a_long_short_rank_portfolio_of_their_scores() -> None:
    day1, day2, day3 = DATES[:3]
    predictions = pl.DataFrame({c.DATE: [day1] * 3 + [day2] * 3, c.TICKER: ["A", "B", "C"] * 2,
                                "prediction": [0.3, -1.0, 2.0, 5.0, 5.0, 1.0]})
    returns = pl.DataFrame({c.DATE: [day1] * 3 + [day2] * 3 + [day3] * 3, c.TICKER: ["A", "B", "C"] * 3,
                            "return": [9.0, 9.0, 9.0, 0.01, 0.02, 0.05, -0.02, 0.04, 0.01]})
    daily = long_short_rank_returns(predictions, returns)
    # Day 1: ranks B 1, A 2, C 3 -> weights -0.5, 0, +0.5 on day 2's returns: 0.5 * 0.05 - 0.5 * 0.02.
    # Day 2: A and B tie at rank 2.5, C 1 -> weights +0.25, +0.25, -0.5 on day 3's returns.
    assert daily[c.DATE].to_list() == [day1, day2]
    assert daily["net_return"].to_list() == pytest.approx([0.5 * 0.05 - 0.5 * 0.02, 0.25 * -0.02 + 0.25 * 0.04 - 0.5 * 0.01])


def test_the_dsr_deflates_with_the_registry_n_and_variance() -> None:
    registry = _registry()
    metrics = deflated_metrics(_strategies(), {}, registry, MetricParams(bootstrap_reps=20))
    sharpes = registry.filter(pl.col("counted"))["sharpe"].drop_nulls().to_list()
    assert len(sharpes) == 5  # 3 strategies + 2 models; the 3 tuning trials count in N only
    periods = 365.25
    variance = statistics.variance(sharpes) / periods
    n = 8
    benchmark = math.sqrt(variance) * ((1 - GAMMA) * stats.norm.ppf(1 - 1 / n) + GAMMA * stats.norm.ppf(1 - 1 / (n * math.e)))
    x = _strategies()[QP]["net_return"].to_numpy()
    sr = x.mean() / x.std(ddof=1)
    skew, kurt = stats.skew(x), stats.kurtosis(x, fisher=False)
    expected = stats.norm.cdf((sr - benchmark) * math.sqrt(x.size - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2))
    row = metrics.filter(pl.col("strategy") == QP).row(0, named=True)
    assert row["n_trials"] == n and row["trial_sharpe_variance"] == pytest.approx(variance, rel=1e-12)
    assert row["dsr"] == pytest.approx(expected, rel=1e-10)
    assert row["candidate"] and (row["trials_strategy"], row["trials_model"], row["trials_tuning"]) == (3, 2, 3)
    assert metrics.filter(pl.col("strategy") == SNIPER)["trial_note"].item() == NEVER_TRADES_NOTE
