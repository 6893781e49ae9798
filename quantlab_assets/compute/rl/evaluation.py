"""Evaluation of the RL policies beside the lab's baselines, on each span, with the backtest's metrics.

Every policy's deterministic episode (its target weights) and every baseline (equal weight, signal-only
top-N equal weight on the same forecasts, buy-and-hold of the span's first day) go through the backtest
engine on the span's own dates and instruments (those with a forecast), and through compute_metrics:
Sharpe with its stationary-bootstrap interval, PSR, DSR over every strategy tried on the span, drawdown,
turnover, trades. Comparisons are paired (both series resampled on the same bootstrap days): the Sharpe
difference of a policy minus equal weight, and of a regime-aware policy minus its regime-blind twin (same
algorithm and seed), each with its interval. The verdict is on the test span and says 'better' or 'worse'
only when the interval excludes 0. Selection: per algorithm x regime mode, the seed with the best
validation Sharpe; the seed's criterion (beats equal weight on the training span, a point estimate) is
reported beside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.backtest.engine import RETURN, BacktestParams, BacktestResult, run_backtest
from quantlab_assets.compute.backtest.comparison import paired_sharpe_difference
from quantlab_assets.compute.backtest.metrics import MetricParams, compute_metrics, periods_per_year, sharpe_ratio
from quantlab_assets.compute.backtest.report import StrategyRun
from quantlab_assets.compute.backtest.trades import round_trips
from quantlab_assets.compute.portfolio.names import BUY_AND_HOLD, EQUAL, TOP_N
from quantlab_assets.compute.portfolio.strategies import StrategyParams, build_target_weights
from quantlab_assets.compute.rl.names import AWARE, BASELINE, BLIND, RL, split_variant
from quantlab_assets.compute.rl.panel import SPAN, SPANS, TEST, TRAIN, VALIDATION
from quantlab_assets.compute.stats import difference_verdict

BASELINES = (EQUAL, TOP_N, BUY_AND_HOLD)


@dataclass(frozen=True)
class EvaluationParams:
    metrics: MetricParams = MetricParams()
    backtest: BacktestParams = BacktestParams()
    strategies: StrategyParams = StrategyParams()


@dataclass(frozen=True)
class Evaluation:
    metrics: pl.DataFrame  # one row per strategy x span
    verdict: list[dict[str, object]]  # the selected policies on the test span
    runs: dict[tuple[str, str], StrategyRun]  # (strategy, span) -> the engine's daily frame, positions, round trips


def _backtest(returns: pl.DataFrame, weights: pl.DataFrame, params: BacktestParams) -> tuple[BacktestResult, pl.DataFrame]:
    result = run_backtest(returns, weights, params)
    return result, round_trips(result.arrays.weights, result.returns, result.daily[c.DATE], result.tickers)


def baseline_weights(name: str, alpha: pl.DataFrame, returns: pl.DataFrame, params: StrategyParams) -> pl.DataFrame:
    return build_target_weights(name, alpha, returns, params=params).weights


def evaluate_policies(
    policy_weights: dict[str, pl.DataFrame],
    alpha: pl.DataFrame,
    returns: pl.DataFrame,
    span_dates: dict[str, pl.Series],
    tickers: list[str],
    params: EvaluationParams = EvaluationParams(),
) -> Evaluation:
    """policy_weights: variant -> rl_policy frame (date, ticker, weight, signal_date, span); alpha: stacked_alpha;
    returns: date, ticker, return; span_dates: the dates of each span; tickers: the panel's instruments."""
    rows, span_runs = [], {}
    for span in SPANS:
        dates = span_dates[span]
        in_span = pl.col(c.DATE).is_in(dates.implode())
        span_returns = returns.filter(in_span & pl.col(c.TICKER).is_in(tickers))
        span_alpha = alpha.filter(in_span & pl.col(c.TICKER).is_in(tickers))
        weights = {v: frame.filter(pl.col(SPAN) == span).drop(SPAN) for v, frame in sorted(policy_weights.items())}
        weights |= {b: baseline_weights(b, span_alpha, span_returns.filter(pl.col(RETURN).is_not_null()), params.strategies)
                    for b in BASELINES}
        runs = {name: _backtest(span_returns, w, params.backtest) for name, w in weights.items()}
        sharpes = [s for r, _ in runs.values() if (s := sharpe_ratio(r.daily["net_return"].to_numpy())) is not None]
        periods = periods_per_year(dates)
        metric_params = MetricParams(
            confidence=params.metrics.confidence, bootstrap_reps=params.metrics.bootstrap_reps,
            block_days=params.metrics.block_days, seed=params.metrics.seed, n_trials=len(runs),
            trial_sharpe_variance=float(np.var(sharpes, ddof=1)) if len(sharpes) > 1 else None,
            periods_per_year=periods)
        equal = runs[EQUAL][0].daily["net_return"].to_numpy()
        for name, (result, trades) in runs.items():
            span_runs[(name, span)] = StrategyRun(name, result.daily, result.weights, trades)
            net = result.daily["net_return"].to_numpy()
            is_rl = name in policy_weights
            algorithm, mode, seed = split_variant(name) if is_rl else (None, None, None)
            diff, low, high = paired_sharpe_difference(net, equal, metric_params, periods) if name != EQUAL else (None, None, None)
            row = {"strategy": name, "span": span, "kind": RL if is_rl else BASELINE, "algorithm": algorithm,
                   "regime_mode": mode, "seed": seed, **compute_metrics(result.daily, trades, metric_params),
                   "sharpe_minus_equal_weight": diff, "sharpe_minus_equal_weight_ci_low": low,
                   "sharpe_minus_equal_weight_ci_high": high, "verdict_vs_equal_weight": difference_verdict(low, high)}
            if mode == AWARE and (twin := f"{algorithm}_{BLIND}_seed{seed}") in runs:
                blind = runs[twin][0].daily["net_return"].to_numpy()
                diff, low, high = paired_sharpe_difference(net, blind, metric_params, periods)
                row |= {"sharpe_minus_blind": diff, "sharpe_minus_blind_ci_low": low, "sharpe_minus_blind_ci_high": high}
            rows.append(row)
    metrics = pl.DataFrame(rows, infer_schema_length=None)
    metrics = metrics.with_columns(pl.col(col).cast(pl.Float64) for col, dtype in metrics.schema.items() if dtype == pl.Null)
    metrics = _with_selection(metrics)
    return Evaluation(metrics=metrics, verdict=_verdict(metrics), runs=span_runs)


def _with_selection(metrics: pl.DataFrame) -> pl.DataFrame:
    """selected: per algorithm x regime mode, the seed of the best validation Sharpe (undefined counts as worst);
    beats_equal_weight_on_train: the seed's exit criterion, the policy's training-span Sharpe above equal weight's."""
    validation = metrics.filter((pl.col("kind") == RL) & (pl.col(SPAN) == VALIDATION))
    chosen = (validation.sort(pl.col("sharpe").fill_null(-math.inf), "seed", descending=[True, False])
              .group_by("algorithm", "regime_mode", maintain_order=True).first()["strategy"])
    train = metrics.filter(pl.col(SPAN) == TRAIN)
    equal_train = train.filter(pl.col("strategy") == EQUAL)["sharpe"][0]
    beats = {s: (v is not None and equal_train is not None and v > equal_train) for s, v in train.select("strategy", "sharpe").iter_rows()}
    return metrics.with_columns(
        pl.col("strategy").is_in(chosen.implode()).alias("selected"),
        pl.when(pl.col("kind") == RL).then(pl.col("strategy").replace_strict(beats, default=None, return_dtype=pl.Boolean))
        .alias("beats_equal_weight_on_train"),
    )


def _verdict(metrics: pl.DataFrame) -> list[dict[str, object]]:
    test = metrics.filter((pl.col(SPAN) == TEST) & pl.col("selected"))
    columns = ["strategy", "sharpe", "sharpe_ci_low", "sharpe_ci_high", "sharpe_minus_equal_weight",
               "sharpe_minus_equal_weight_ci_low", "sharpe_minus_equal_weight_ci_high", "verdict_vs_equal_weight",
               "beats_equal_weight_on_train", "dsr"]
    columns += [col for col in ("sharpe_minus_blind", "sharpe_minus_blind_ci_low", "sharpe_minus_blind_ci_high") if col in test.columns]
    return test.sort("strategy").select(columns).to_dicts()
