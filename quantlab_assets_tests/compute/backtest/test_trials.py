"""The trial registry on a constructed set (passive baselines and a strategy that never trades left out),
the model trials' long-short returns by hand, the deep-learning models scored like the base models and the
RL policies counted in N only, and the deflated Sharpe with the registry's N and variance
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
    DEEP,
    DESIGN,
    DESIGN_TRIALS,
    MODEL,
    NEVER_TRADES_NOTE,
    PASSIVE_BASELINE_NOTE,
    RL,
    STRATEGY,
    TUNING,
    candidates,
    deep_model_scores,
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
    return trial_registry(_strategies(), {"ridge_21d": _predictions(1), "xgboost_63d": _predictions(2)}, _returns(), _tuning(),
                          design_trials=())


def test_the_registry_counts_candidates_models_and_tuning_trials_but_no_baseline() -> None:
    registry = _registry()
    assert registry.height == 6 + 2 + 3
    counted = registry.filter(pl.col("counted"))
    assert sorted(counted.filter(pl.col("kind") == STRATEGY)["trial"]) == sorted([QP, TOP_N, AUDITED])
    notes = dict(registry.filter(~pl.col("counted")).select("trial", "note").iter_rows())
    assert notes == {EQUAL: PASSIVE_BASELINE_NOTE, BUY_AND_HOLD: PASSIVE_BASELINE_NOTE, SNIPER: NEVER_TRADES_NOTE}
    deflate = deflation(registry, 365.25)
    assert deflate.n_trials == 3 + 2 + 3
    assert deflate.counts == {STRATEGY: 3, MODEL: 2, TUNING: 3, DEEP: 0, RL: 0, DESIGN: 0}
    # Tuning trials have no return series: no Sharpe, N only. Excluded strategies carry no Sharpe either.
    assert registry.filter(pl.col("kind") == TUNING)["sharpe"].null_count() == 3
    assert registry.filter(~pl.col("counted"))["sharpe"].null_count() == 3
    assert sorted(candidates(registry, _strategies())) == sorted([QP, TOP_N, AUDITED])
    # Without stored model predictions or search, N is the candidates alone.
    assert deflation(trial_registry(_strategies(), design_trials=()), 365.25).n_trials == 3


def test_configurations_tried_while_choosing_the_defaults_count_in_n_only() -> None:
    tried = ("topk_dropout k=10", "topk_dropout k=15")
    registry = trial_registry(_strategies(), {"ridge_21d": _predictions(1)}, _returns(), design_trials=tried)
    deflate = deflation(registry, 365.25)
    assert deflate.counts[DESIGN] == 2 and deflate.n_trials == 3 + 1 + 2
    assert registry.filter(pl.col("kind") == DESIGN)["sharpe"].null_count() == 2
    assert deflate.sharpe_variance == deflation(trial_registry(_strategies(), {"ridge_21d": _predictions(1)}, _returns(),
                                                               design_trials=()), 365.25).sharpe_variance
    # By default every configuration of the defaults' search is counted, each once.
    by_default = deflation(trial_registry(_strategies()), 365.25)
    assert by_default.counts[DESIGN] == len(DESIGN_TRIALS) == len(set(DESIGN_TRIALS)) > 0
    assert by_default.n_trials == 3 + len(DESIGN_TRIALS)


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


def _quantile_forecasts() -> pl.DataFrame:
    """forecaster_quantile's layout: one row per (date, ticker) x horizon, the median as `prediction`."""
    horizons = [_predictions(seed).with_columns(pl.lit(h, dtype=pl.Int64).alias("horizon_days")) for seed, h in ((3, 1), (4, 5))]
    return pl.concat(horizons).with_columns((pl.col("prediction") - 1).alias("q10"), pl.col("prediction").alias("q50"),
                                            (pl.col("prediction") + 1).alias("q90"))


def _rl_evaluation() -> pl.DataFrame:
    """rl_evaluation's rows: every policy and baseline on each span (only the columns the registry reads)."""
    names = [("ppo_aware_seed0", "rl"), ("sac_blind_seed1", "rl"), (EQUAL, "baseline"), (TOP_N, "baseline")]
    return pl.DataFrame([{"strategy": name, "span": span, "kind": kind, "sharpe": 0.5}
                         for name, kind in names for span in ("train", "validation", "test")])


def _tbm_probabilities() -> pl.DataFrame:
    """tbm_classifier's probability column, a monotone map of xgboost_63d's scores (the same ranks)."""
    return _predictions(2).select(c.DATE, c.TICKER, (1 / (1 + (-pl.col("prediction")).exp())).alias("tbm_probability"))


def test_a_deep_model_is_one_trial_per_horizon_ranked_by_its_score_column() -> None:
    tbm = _tbm_probabilities()
    assert list(deep_model_scores("tbm_classifier", tbm, "tbm_probability")) == ["tbm_classifier"]
    assert deep_model_scores("tbm_classifier", tbm, "tbm_probability")["tbm_classifier"].columns == [c.DATE, c.TICKER, "prediction"]
    by_horizon = deep_model_scores("forecaster_quantile", _quantile_forecasts(), "prediction")
    assert sorted(by_horizon) == ["forecaster_quantile_1d", "forecaster_quantile_5d"]
    assert by_horizon["forecaster_quantile_5d"].equals(_predictions(4))


def test_stored_deep_models_enter_n_and_the_variance_and_rl_policies_n_only() -> None:
    # The transformer forecasts what ridge does and the sequence classifier's probability is a monotone map of
    # xgboost's scores: scored like the base models, each earns the same long-short Sharpe as its twin.
    tbm = _tbm_probabilities()
    deep = {**deep_model_scores("forecaster_transformer", _predictions(1), "prediction"),
            **deep_model_scores("forecaster_quantile", _quantile_forecasts(), "prediction"),
            **deep_model_scores("tbm_classifier", tbm, "tbm_probability")}
    registry = trial_registry(_strategies(), {"ridge_21d": _predictions(1), "xgboost_63d": _predictions(2)}, _returns(),
                              _tuning(), deep, _rl_evaluation(), design_trials=())
    sharpe = dict(registry.select("trial", "sharpe").iter_rows())
    assert sharpe["forecaster_transformer"] == pytest.approx(sharpe["ridge_21d"], rel=1e-12)
    assert sharpe["tbm_classifier"] == pytest.approx(sharpe["xgboost_63d"], rel=1e-12)
    deflate = deflation(registry, 365.25)
    # 4 deep trials (the quantile forecaster once per horizon) and the 2 policies, never rl_evaluation's baselines.
    assert deflate.counts == {STRATEGY: 3, MODEL: 2, TUNING: 3, DEEP: 4, RL: 2, DESIGN: 0}
    assert deflate.n_trials == deflation(_registry(), 365.25).n_trials + 4 + 2
    assert sorted(registry.filter(pl.col("kind") == RL)["trial"]) == ["ppo_aware_seed0", "sac_blind_seed1"]
    # The variance: the Sharpes of the 3 candidates, 2 models and 4 deep models; the policies store no daily returns.
    assert registry.filter(pl.col("kind") == RL)["sharpe"].null_count() == 2
    with_series = [sharpe[name] for name in (QP, TOP_N, AUDITED, "ridge_21d", "xgboost_63d", "forecaster_transformer",
                                             "forecaster_quantile_1d", "forecaster_quantile_5d", "tbm_classifier")]
    assert deflate.sharpe_variance == pytest.approx(statistics.variance(with_series) / 365.25, rel=1e-12)
    # A heavy track not stored is no trial: the registry of the core inputs alone.
    assert trial_registry(_strategies(), None, _returns(), None, {}, None, design_trials=()).height == 6
