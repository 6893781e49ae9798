"""The trial registry: every configuration the lab evaluated on the research span, one row each, from
which the deflated Sharpe ratio takes its number of trials N and the variance of the trials' Sharpes.

The deflated Sharpe ratio (Bailey & Lopez de Prado 2014) asks whether the best Sharpe ratio found is
more than the best of N unskilled trials would reach by luck: E[max SR] = sqrt(V[SR_n]) *
((1 - gamma) * Phi^-1(1 - 1/N) + gamma * Phi^-1(1 - 1/(N e))), with V[SR_n] the variance of the Sharpe
ratios across the N trials. Leaving trials out shrinks N and flatters the winner, so every
configuration that was evaluated and could have been chosen counts:

- strategy: each candidate strategy partition (the threshold profiles are strategy partitions, so the
  profile variants are here). Not counted: the passive baselines (equal weight, buy-and-hold), which
  are benchmarks and not choices of the search, and a strategy that never trades (no turnover on any
  day): its return series is flat, its Sharpe undefined, it cannot be the selected winner and places no
  draw in the distribution of trial Sharpes.
- model: each base model x horizon of the out-of-fold predictions. A model is a trial because the
  lab could have traded any of them; its Sharpe is that of a simple daily long-short portfolio of its
  out-of-fold scores (`long_short_rank_returns`: centred cross-sectional ranks, gross exposure 1, held
  for the next trading day, before costs), so it is a return series on the same trading calendar as
  the strategies and enters the variance, not only N.
- tuning: each Optuna trial of the barrier classifier's hyper-parameter search (pruned ones too: they
  were evaluated on part of the folds). A trial is scored by log loss and has no return series, so it
  counts in N and not in the variance.
- deep: each stored out-of-fold model of the deep-learning track (the transformer and TFT forecasters,
  the quantile forecaster once per horizon of its median, the sequence barrier classifier and the SupCon
  probe by their probability that the upper barrier comes first). They are trained on the same
  walk-forward folds as the base models and could be traded the same way, so each is scored like a
  base model (`long_short_rank_returns` of its scores) and enters N and the variance. The heavy track
  is often not materialised: a deep model that is not stored is not a trial.
- rl: each RL policy variant (algorithm x regime inputs x seed) that rl_evaluation backtested. It stores
  a Sharpe per span (train, validation, test) and no daily return series, so a policy counts in N and
  not in the variance, as a tuning trial does. Its baselines (equal weight, top-N, buy-and-hold) are
  not trials: the passive ones are benchmarks and top-N is a strategy partition, counted above.

- design: each configuration evaluated on the default market's research span outside the graph while
  its defaults were chosen (`DESIGN_TRIALS`, from compute/portfolio/design_search.py: the top-k and
  long-short books' parameters, the alpha they read, the stack's calibrator and meta-learner, the
  features; docs/studies.md, "Choosing the top-k book"). The chosen defaults are strategy partitions and
  counted there; every other configuration tried could have been chosen instead, so it counts in N. Their
  return series are not stored, so not in the variance. They are counted on every universe: conservative
  where a universe was not part of that search.

Not trials: the deep-hedging policies (defs/assets/hedging.py) hedge a simulated option position; their
outcome is a hedging error on simulated environments, not a return of trading the universe, and none of
them could be chosen as the lab's strategy. The encoder-transfer scorecard's two forecasters store
no forecasts, only their scores: they are a study of pre-training, not counted.

The variance is that of the annualised Sharpe ratios of every counted trial that has one, converted
to the per-period Sharpe of the series being deflated (divided by its periods per year), so a trial on
another calendar would still be on the deflated series' scale. N counts every trial as independent:
the trials are correlated (models feed the stack that feeds the strategies), so the effective N is
smaller and the deflation is conservative, never flattering.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.backtest.engine import RETURN
from quantlab_assets.compute.backtest.metrics import MetricParams, compute_metrics, periods_per_year, sharpe_ratio
from quantlab_assets.compute.backtest.overfitting import NET_RETURN
from quantlab_assets.compute.models.metrics import PREDICTION
from quantlab_assets.compute.portfolio import design_search
from quantlab_assets.compute.portfolio.names import PASSIVE
from quantlab_assets.compute.rl import names as rl_names

STRATEGY: Final = "strategy"
MODEL: Final = "model"
TUNING: Final = "tuning"
DEEP: Final = "deep"
RL: Final = "rl"
DESIGN: Final = "design"
KINDS: Final = (STRATEGY, MODEL, TUNING, DEEP, RL, DESIGN)
# How the report and the run summary name each kind's count.
KIND_LABELS: Final = {STRATEGY: "candidate strategies", MODEL: "base models x horizons",
                      TUNING: "hyper-parameter search trials", DEEP: "deep-learning out-of-fold models", RL: "RL policies",
                      DESIGN: "configurations tried while choosing the defaults"}
DESIGN_TRIALS: Final = design_search.design_trials()
DESIGN_NOTE = "tried outside the graph while choosing the defaults (docs/studies.md); no return series stored (N only)"
PASSIVE_BASELINES: Final = PASSIVE
PASSIVE_BASELINE_NOTE = "passive baseline: a benchmark, not a choice of the search"
NEVER_TRADES_NOTE = "never trades: no turnover on any day, no Sharpe to select"
MODEL_NOTE = "long-short rank portfolio of its out-of-fold scores, before costs"
RL_NOTE = "RL policy backtested by rl_evaluation: a Sharpe per span, no daily return series stored (N only)"
HORIZON_DAYS = "horizon_days"
# The columns deflated_metrics adds to compute_metrics' (the same for every strategy but the last two).
TRIAL_COLUMNS: Final = ("trial_sharpe_variance", *(f"trials_{kind}" for kind in KINDS), "candidate", "trial_note")
REGISTRY_SCHEMA: Final = {
    "trial": pl.String, "kind": pl.String, "counted": pl.Boolean, "note": pl.String, "days": pl.Int64,
    "periods_per_year": pl.Float64, "sharpe": pl.Float64,
}


def exclusion_reason(strategy: str, daily: pl.DataFrame) -> str | None:
    """Why a strategy is not a candidate (None: it is one). daily: its backtest (date, net_return, turnover)."""
    if strategy in PASSIVE_BASELINES:
        return PASSIVE_BASELINE_NOTE
    if float(daily["turnover"].sum()) == 0.0:
        return NEVER_TRADES_NOTE
    return None


def long_short_rank_returns(predictions: pl.DataFrame, returns: pl.DataFrame) -> pl.DataFrame:
    """Daily return of a long-short portfolio of one model's out-of-fold scores (date, net_return).

    On each prediction date t, weights are the centred cross-sectional ranks of the prediction scaled to
    a gross exposure of 1 (half long, half short); they earn each instrument's return of its next trading
    day (returns: date, ticker, return). Before costs; dates with fewer than two scored instruments hold
    nothing and are left out.
    """
    next_day = returns.sort(c.TICKER, c.DATE).select(
        c.DATE, c.TICKER, pl.col(RETURN).shift(-1).over(c.TICKER).alias("next_return"))
    centred = pl.col(PREDICTION).rank("average").over(c.DATE) - (pl.len().over(c.DATE) + 1) / 2
    return (
        predictions.select(c.DATE, c.TICKER, PREDICTION)
        .join(next_day, on=[c.DATE, c.TICKER], how="inner")
        .drop_nulls()
        .with_columns(centred.alias("weight"))
        .group_by(c.DATE)
        .agg(((pl.col("weight") * pl.col("next_return")).sum() / pl.col("weight").abs().sum()).alias(NET_RETURN))
        .drop_nans()
        .sort(c.DATE)
    )


def deep_model_scores(name: str, frame: pl.DataFrame, score: str) -> dict[str, pl.DataFrame]:
    """A deep model's out-of-fold frame as trials: trial name -> (date, ticker, prediction), `score` the column
    it ranks instruments by. One trial, or one per horizon when the frame forecasts several (a `horizon_days`
    column: forecaster_quantile -> 'forecaster_quantile_5d', ...)."""
    columns = (c.DATE, c.TICKER, pl.col(score).alias(PREDICTION))
    if HORIZON_DAYS not in frame.columns:
        return {name: frame.select(columns)}
    by_horizon = frame.partition_by(HORIZON_DAYS, as_dict=True)
    return {f"{name}_{horizon}d": part.select(columns) for (horizon,), part in sorted(by_horizon.items())}


def _series_row(trial: str, kind: str, counted: bool, note: str, daily: pl.DataFrame) -> dict[str, object]:
    sharpe = sharpe_ratio(daily[NET_RETURN].to_numpy()) if counted else None
    periods = periods_per_year(daily[c.DATE])
    return {"trial": trial, "kind": kind, "counted": counted, "note": note, "days": daily.height,
            "periods_per_year": periods, "sharpe": None if sharpe is None else sharpe * math.sqrt(periods)}


def _unscored_row(trial: str, kind: str, note: str) -> dict[str, object]:
    """A counted trial without a return series: in N, not in the variance."""
    return {"trial": trial, "kind": kind, "counted": True, "note": note, "days": None, "periods_per_year": None, "sharpe": None}


def trial_registry(
    strategies: Mapping[str, pl.DataFrame],
    model_predictions: Mapping[str, pl.DataFrame] | None = None,
    returns: pl.DataFrame | None = None,
    tuning_trials: pl.DataFrame | None = None,
    deep_scores: Mapping[str, pl.DataFrame] | None = None,
    rl_evaluation: pl.DataFrame | None = None,
    design_trials: Sequence[str] = DESIGN_TRIALS,
) -> pl.DataFrame:
    """One row per configuration evaluated (REGISTRY_SCHEMA): trial, kind, counted (in N), note (why not,
    or what the Sharpe is of), days, periods_per_year and the annualised Sharpe where a return series exists.

    strategies: strategy name -> its backtest; model_predictions: model key ('ridge_21d') -> out-of-fold
    predictions (date, ticker, prediction), and deep_scores the same for the deep models (`deep_model_scores`),
    both read with `returns` (date, ticker, return); tuning_trials: the hyper-parameter search's trials (one
    row each), None when the search is not stored; rl_evaluation: rl_evaluation's rows (strategy x span, its
    `kind` telling policies from baselines), None when not stored; design_trials: the configurations tried
    outside the graph while choosing the defaults.
    """
    rows = []
    for name, daily in sorted(strategies.items()):
        reason = exclusion_reason(name, daily)
        rows.append(_series_row(name, STRATEGY, reason is None, reason or "net daily return after costs", daily))
    for kind, scored in ((MODEL, model_predictions), (DEEP, deep_scores)):
        if scored and returns is not None:
            rows += [_series_row(key, kind, True, MODEL_NOTE, long_short_rank_returns(predictions, returns))
                     for key, predictions in sorted(scored.items())]
    if tuning_trials is not None:
        rows += [_unscored_row(f"trial_{trial}", TUNING, f"barrier classifier search, {state}: scored by log loss, no return series")
                 for trial, state in tuning_trials.select("trial", "state").sort("trial").iter_rows()]
    if rl_evaluation is not None:
        policies = rl_evaluation.filter(pl.col("kind") == rl_names.RL)["strategy"].unique().sort()
        rows += [_unscored_row(policy, RL, RL_NOTE) for policy in policies]
    rows += [_unscored_row(trial, DESIGN, DESIGN_NOTE) for trial in design_trials]
    return pl.DataFrame(rows, schema=REGISTRY_SCHEMA)


@dataclass(frozen=True)
class Deflation:
    """What the deflated Sharpe ratio takes from the registry: N, the per-period variance of the trials'
    Sharpes (None with fewer than two Sharpes: the deflated series' own estimator variance is used), and
    N by kind."""

    n_trials: int
    sharpe_variance: float | None
    counts: dict[str, int]


def deflation(registry: pl.DataFrame, periods: float) -> Deflation:
    """N and the variance of the counted trials' Sharpes, per period of a series with `periods` per year."""
    counted = registry.filter(pl.col("counted"))
    sharpes = counted["sharpe"].drop_nulls().drop_nans().to_numpy()
    variance = float(np.var(sharpes, ddof=1)) / periods if sharpes.size > 1 else None
    counts = {kind: int((counted["kind"] == kind).sum()) for kind in KINDS}
    return Deflation(n_trials=max(counted.height, 1), sharpe_variance=variance, counts=counts)


def candidates(registry: pl.DataFrame, backtests: Mapping[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """The backtests of the counted strategy trials (the candidates), by strategy name."""
    names = registry.filter((pl.col("kind") == STRATEGY) & pl.col("counted"))["trial"].to_list()
    return {name: backtests[name] for name in names}


def deflated_metrics(backtests: Mapping[str, pl.DataFrame], trades: Mapping[str, pl.DataFrame], registry: pl.DataFrame,
                     params: MetricParams = MetricParams()) -> pl.DataFrame:
    """compute_metrics for every strategy (one row each, column `strategy`), its DSR deflated by the registry's
    N and trial-Sharpe variance in the strategy's own periods per year, with the registry's verdict on it
    (candidate, trial_note) and the count of each kind of trial (trials_<kind> for every kind of KINDS)."""
    notes = dict(registry.filter(pl.col("kind") == STRATEGY).select("trial", "note").iter_rows())
    counted = dict(registry.filter(pl.col("kind") == STRATEGY).select("trial", "counted").iter_rows())
    rows = []
    for name, daily in sorted(backtests.items()):
        periods = params.periods_per_year or periods_per_year(daily[c.DATE])
        deflate = deflation(registry, periods)
        used = dataclasses.replace(params, n_trials=deflate.n_trials, trial_sharpe_variance=deflate.sharpe_variance)
        rows.append({"strategy": name, **compute_metrics(daily, trades.get(name), used),
                     "trial_sharpe_variance": deflate.sharpe_variance, "candidate": counted[name], "trial_note": notes[name],
                     **{f"trials_{kind}": n for kind, n in deflate.counts.items()}})
    metrics = pl.DataFrame(rows, infer_schema_length=None)
    return metrics.with_columns(pl.col(col).cast(pl.Float64) for col, dtype in metrics.schema.items() if dtype == pl.Null)
