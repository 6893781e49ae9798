"""The desk: today's target portfolio of every strategy from the live alpha, the orders that reach it, and
the live track record that scores past decisions against the returns that arrived after them.

Targets reuse the strategy set's builder (strategies.build_target_weights) on one decision date, the live
alpha's `as_of`, with the history the builder needs up to that date (the QP's covariance window). A
strategy whose builder yields no weight on that date (a threshold profile whose classifier has no
probability on it, a QP that is infeasible or still warming up) is not decided that day: it is listed with
the reason, places no order, and keeps drifting from its last decision.

Orders go from the holdings of each strategy's last decision, drifted by the returns since it was traded,
to today's targets; their cost is the backtest's cost model (engine.CostParams) on the traded notional.

The track record replays the decisions with the backtest engine itself (engine.run_backtest: the same
delay, drift, costs and timing), so a decision at the close of t is traded at the close of t + delay and
earns from the next bar on; a day is scored once it earned a return on some decision.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.backtest.engine import RETURN, SIGNAL_DATE, WEIGHT, BacktestParams, CostParams, run_backtest
from quantlab_assets.compute.backtest.metrics import MetricParams, periods_per_year, sharpe_bootstrap_interval, sharpe_ratio
from quantlab_assets.compute.portfolio.strategies import build_target_weights
from quantlab_assets.compute.schemas.desk import STRATEGY

CURRENT_WEIGHT, TARGET_WEIGHT, TRADE, COST = "current_weight", "target_weight", "trade", "estimated_cost"
TARGET_COLUMNS = (c.DATE, STRATEGY, c.TICKER, WEIGHT, SIGNAL_DATE)
ORDER_COLUMNS = (c.DATE, STRATEGY, c.TICKER, CURRENT_WEIGHT, TARGET_WEIGHT, TRADE, COST)
# A trade below this is numerical dust of the drift, not an order.
MIN_TRADE = 1e-9
# Fewest scored days before a Sharpe ratio and its interval are reported (about a trading month).
MIN_SCORED_DAYS_FOR_SHARPE = 21


@dataclass(frozen=True)
class DeskTargets:
    """weights: TARGET_COLUMNS of the strategies decided on `as_of`; undecided: strategy -> why not."""

    as_of: dt.date
    weights: pl.DataFrame
    undecided: dict[str, str]


def decision_date(live_alpha: pl.DataFrame) -> dt.date:
    """The one date of the live alpha (its as_of), the date every target of the day is decided on."""
    dates = live_alpha[c.DATE].unique()
    if dates.len() != 1:
        raise ValueError(f"the live alpha must hold exactly one date (its as_of), not {dates.len()}")
    return dates[0]


def live_targets(
    strategies: Sequence[str], live_alpha: pl.DataFrame, returns: pl.DataFrame, past_alpha: pl.DataFrame | None = None,
    **builder_inputs: Any,
) -> DeskTargets:
    """Each strategy's target weights on the live alpha's date, from the strategy set's own builder.

    The builder runs over the live alphas of the past decisions (`past_alpha`, as the ledger recorded them;
    rows on or after today's date are ignored) and today's, so each strategy keeps its own schedule and state
    as in the backtest: the QP and top-n rebalance every `every` decision dates (the QP's turnover penalty
    from its previous solution, drifted), equal weight every 21, buy-and-hold only on its first. A strategy
    with no weight today holds its last decision; it is listed in `undecided` with why.

    returns: date, ticker, return (rows after the decision date are ignored: nothing later is known);
    builder_inputs: build_target_weights' keyword inputs (meta, barrier, regimes, sectors, members, benchmark,
    params), passed as they are."""
    as_of = decision_date(live_alpha)
    known = returns.filter(pl.col(c.DATE) <= as_of)
    alpha = live_alpha if past_alpha is None else pl.concat(
        [past_alpha.filter(pl.col(c.DATE) < as_of).select(live_alpha.columns).cast(live_alpha.schema), live_alpha])
    frames, undecided = [], {}
    for strategy in strategies:
        built = build_target_weights(strategy, alpha, known, **builder_inputs)
        today = built.weights.filter(pl.col(c.DATE) == as_of)
        if today.is_empty():
            status = [] if built.diagnostics is None else built.diagnostics.filter(pl.col(c.DATE) == as_of)["status"]
            why = "; ".join([*map(str, status), *built.notes]) or "not a rebalance date of its schedule"
            undecided[strategy] = f"no target on {as_of}, holds its last decision: {why}"
            continue
        frames.append(today.with_columns(pl.lit(strategy).alias(STRATEGY)).select(TARGET_COLUMNS))
    weights = pl.concat(frames) if frames else pl.DataFrame(schema=target_schema())
    return DeskTargets(as_of, weights.sort(STRATEGY, c.TICKER), undecided)


def target_schema() -> dict[str, pl.DataType]:
    return {c.DATE: pl.Date, STRATEGY: pl.String, c.TICKER: pl.String, WEIGHT: pl.Float64, SIGNAL_DATE: pl.Date}


def order_schema() -> dict[str, pl.DataType]:
    return {c.DATE: pl.Date, STRATEGY: pl.String, c.TICKER: pl.String, CURRENT_WEIGHT: pl.Float64,
            TARGET_WEIGHT: pl.Float64, TRADE: pl.Float64, COST: pl.Float64}


def drifted_holdings(
    decided: pl.DataFrame, returns: pl.DataFrame, through: dt.date, delay: int = BacktestParams().delay
) -> pl.DataFrame:
    """Holdings (strategy, ticker, weight) at the close of `through` of each strategy's last decision.

    decided: TARGET_COLUMNS, the last decision of each strategy (its own date). A decision is traded at the
    close of the `delay`-th bar after its date (the engine's timing); from that close on, each position grows
    with its returns and the cash does not: weight_i = w_i G_i / (sum_j w_j G_j + cash). A decision not yet
    traded by `through` (fewer than `delay` bars since) is held as traded anyway: its targets, undrifted.
    """
    if decided.is_empty():
        return pl.DataFrame(schema={STRATEGY: pl.String, c.TICKER: pl.String, WEIGHT: pl.Float64})
    calendar = returns[c.DATE].unique().sort()
    execution = decided.select(STRATEGY, c.DATE).unique()
    # The `delay`-th bar after each decision date (the calendar's last bar when it ends first).
    bars = (calendar.search_sorted(execution[c.DATE]) + delay).clip(upper_bound=calendar.len() - 1)
    execution = execution.with_columns(calendar.gather(bars).alias("_traded"))
    growth = (
        decided.join(execution, on=[STRATEGY, c.DATE])
        .join(returns.select(c.TICKER, pl.col(c.DATE).alias("_day"), RETURN), on=c.TICKER, how="left")
        .with_columns(pl.when(pl.col("_day").is_between(pl.col("_traded"), through, closed="right"))
                      .then(pl.col(RETURN).fill_null(0.0)).otherwise(0.0).alias("_r"))
        .group_by(STRATEGY, c.TICKER, WEIGHT)
        .agg((pl.col("_r") + 1.0).product().alias("_growth"))
    )
    value = pl.col(WEIGHT) * pl.col("_growth")
    cash = 1.0 - pl.col(WEIGHT).sum().over(STRATEGY)
    return (
        growth.with_columns((value / (value.sum().over(STRATEGY) + cash)).alias(WEIGHT))
        .select(STRATEGY, c.TICKER, WEIGHT).sort(STRATEGY, c.TICKER)
    )


def orders(targets: pl.DataFrame, holdings: pl.DataFrame, costs: CostParams = CostParams()) -> pl.DataFrame:
    """ORDER_COLUMNS: per decided strategy, the trade from its holdings to its targets and its estimated cost.

    targets: TARGET_COLUMNS of one decision date; holdings: strategy, ticker, weight (drifted_holdings).
    A position held but not in the targets is sold; a strategy not in `targets` (undecided) places no order.
    """
    day = targets[c.DATE].unique()
    keys = [STRATEGY, c.TICKER]
    current = holdings.filter(pl.col(STRATEGY).is_in(targets[STRATEGY].unique().implode()))
    joined = (
        targets.select(*keys, pl.col(WEIGHT).alias(TARGET_WEIGHT))
        .join(current.select(*keys, pl.col(WEIGHT).alias(CURRENT_WEIGHT)), on=keys, how="full", coalesce=True)
        .with_columns(pl.col(TARGET_WEIGHT).fill_null(0.0), pl.col(CURRENT_WEIGHT).fill_null(0.0))
        .with_columns((pl.col(TARGET_WEIGHT) - pl.col(CURRENT_WEIGHT)).alias(TRADE))
        .filter(pl.col(TRADE).abs() > MIN_TRADE)
        .with_columns((pl.col(TRADE).abs() * costs.rate).alias(COST))
    )
    date = pl.lit(day[0] if day.len() else None, dtype=pl.Date).alias(c.DATE)
    return joined.with_columns(date).select(ORDER_COLUMNS).sort(STRATEGY, c.TICKER)


def latest_decisions(history: pl.DataFrame) -> pl.DataFrame:
    """TARGET_COLUMNS of each strategy's newest decision date in `history` (targets of past decisions)."""
    return history.filter(pl.col(c.DATE) == pl.col(c.DATE).max().over(STRATEGY))


@dataclass(frozen=True)
class TrackRecord:
    """daily: strategy, date, gross_return, cost, net_return, equity of the scored days; summary: one row
    per strategy (scored_days, first_decision, last_scored, cumulative_return, hit_rate, sharpe + interval)."""

    daily: pl.DataFrame
    summary: pl.DataFrame


def track_record(
    decisions: pl.DataFrame, returns: pl.DataFrame, params: BacktestParams = BacktestParams(),
    metric_params: MetricParams = MetricParams(),
) -> TrackRecord:
    """Score every strategy's past decisions (TARGET_COLUMNS of every ledger record) on the returns that
    arrived after them, with the backtest engine (same timing and costs as the backtest).

    Scored days run from the first decision's trade (the close `delay` bars after its date, which pays its
    cost) to the newest bar; from the next bar on each day earns the returns of the holdings. The Sharpe ratio (annualised by the
    scored days' own calendar) and its stationary-bootstrap interval are reported from
    MIN_SCORED_DAYS_FOR_SHARPE scored days on; before that they are null."""
    daily_frames, rows = [], []
    for strategy in sorted(decisions[STRATEGY].unique().to_list()):
        weights = decisions.filter(pl.col(STRATEGY) == strategy).select(c.DATE, c.TICKER, WEIGHT, SIGNAL_DATE)
        first = weights[c.DATE].min()
        span = returns.filter(pl.col(c.DATE) >= first)
        calendar = span[c.DATE].unique().sort()
        first_trade = int(calendar.search_sorted(first)) + params.delay
        if first_trade < calendar.len():
            scored = run_backtest(span, weights, params).daily.slice(first_trade)
        else:  # the first decision is not traded yet: nothing to score (and nothing for the engine to run)
            scored = pl.DataFrame(schema={c.DATE: pl.Date, "gross_return": pl.Float64, "cost": pl.Float64,
                                          "net_return": pl.Float64})
        scored = scored.select(c.DATE, "gross_return", "cost", "net_return")
        net = scored["net_return"].to_numpy()
        scored = scored.with_columns(pl.Series("equity", np.cumprod(1.0 + net)), pl.lit(strategy).alias(STRATEGY))
        daily_frames.append(scored.select(STRATEGY, c.DATE, "gross_return", "cost", "net_return", "equity"))
        rows.append({STRATEGY: strategy, "first_decision": first, "decisions": weights[c.DATE].n_unique()})
    schema = {STRATEGY: pl.String, c.DATE: pl.Date, "gross_return": pl.Float64, "cost": pl.Float64,
              "net_return": pl.Float64, "equity": pl.Float64}
    daily = pl.concat(daily_frames) if daily_frames else pl.DataFrame(schema=schema)
    decided = pl.DataFrame(rows, schema={STRATEGY: pl.String, "first_decision": pl.Date, "decisions": pl.Int64})
    summary = decided.join(summarise(daily, metric_params), on=STRATEGY, how="left")
    # A strategy whose first decision is not traded yet has scored nothing and paid nothing.
    return TrackRecord(daily, summary.with_columns(pl.col("scored_days", "total_cost").fill_null(0)))


def summarise(daily: pl.DataFrame, metric_params: MetricParams = MetricParams()) -> pl.DataFrame:
    """One row per strategy of a track record's scored days (TrackRecord.daily): see `score`."""
    parts = daily.sort(STRATEGY, c.DATE).partition_by(STRATEGY, as_dict=True)
    rows = [{STRATEGY: strategy, **score(part["net_return"].to_numpy(), part["cost"].to_numpy(), part[c.DATE],
                                        metric_params)}
            for (strategy,), part in sorted(parts.items())]
    return pl.DataFrame(rows, schema=SCORE_SCHEMA)


SCORE_SCHEMA = {STRATEGY: pl.String, "scored_days": pl.Int64, "last_scored": pl.Date, "cumulative_return": pl.Float64,
                "hit_rate": pl.Float64, "sharpe": pl.Float64, "sharpe_ci_low": pl.Float64,
                "sharpe_ci_high": pl.Float64, "total_cost": pl.Float64}


def score(net: np.ndarray, cost: np.ndarray, dates: pl.Series, metric_params: MetricParams = MetricParams()) -> dict[str, object]:
    """Cumulative net return, hit rate (share of days with a positive net return), costs paid (their sum, a
    fraction of equity) and, from
    MIN_SCORED_DAYS_FOR_SHARPE days on, the annualised Sharpe ratio with its bootstrap interval."""
    days = int(net.size)
    sharpe = low = high = None
    if days >= MIN_SCORED_DAYS_FOR_SHARPE:
        periods = periods_per_year(dates)
        per_period = sharpe_ratio(net)
        sharpe = None if per_period is None else per_period * float(np.sqrt(periods))
        low, high, _ = sharpe_bootstrap_interval(net, metric_params, periods)
    return {"scored_days": days, "last_scored": dates.max() if days else None,
            "cumulative_return": float(np.prod(1.0 + net) - 1.0) if days else None,
            "hit_rate": float((net > 0).mean()) if days else None,
            "sharpe": sharpe, "sharpe_ci_low": low, "sharpe_ci_high": high,
            "total_cost": float(cost.sum())}
