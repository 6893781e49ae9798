"""The vectorised backtest engine: target weights -> execution delay -> drift -> turnover -> costs -> equity.

Execution model (seed 003): a target decided at the close of bar d (from information up to d) is
traded at the close of bar d + delay (default 1: one bar to act on it). Between two executions the
holdings drift with their prices and are not rebalanced; at a weekly or monthly rebalancing frequency
only the first decision date of each calendar week or month is traded, so the previous targets are
held (drifting) in between. Costs (by default commission 10 bp + slippage 5 bp + spread 5 bp) are
linear in the traded notional: at an execution the portfolio loses
cost_rate x turnover of its value, turnover being sum |target - drifted weights|. Weights are then
the targets exactly (a weight-scaling model), so turnover never depends on costs and the cost line
is linear in every cost parameter. Uninvested weight (1 - sum of targets) is cash earning 0.

Short positions (negative weights) are marked to market like long ones: a short of weight -w drifts to
-w (1 + r) / (portfolio growth), so it loses when its price rises; its sale proceeds are cash (a
dollar-neutral book holds 1 in cash). Trading costs are charged on |traded notional|, both legs alike.
Borrowing the shorted shares costs a fee of borrow_fee_bps a year on the short notional held over each
day, accrued by calendar days (actual/365.25): the fraction of the day's starting value paid is
borrow_t = fee x (days since the previous bar) / 365.25 x sum of |short weights| held; like the trading
cost it scales the book, so a day's net return is (1 + gross - borrow) x (1 - cost) - 1.

An instrument's last bar closes its position: after it (a delisting, or the end of its data before the
calendar's) the holding is cash at its last value, with the delisting return already in the last bar's
return (compute/data/membership.py); a target for it after that bar stays in cash, and nothing is
traded or charged to sell it. Nothing of it survives in the weights past its last date.

Vectorisation of the drift: with C[t] = prod_{u<=t} (1 + r[u]) per asset (one cumprod over the panel),
the value of the holdings set at execution bar e_k, relative to the portfolio value then, is
H[t] = C[t] * (w_k / C[e_k]) for e_k < t <= e_{k+1}, so every segment between rebalances is one
gather of the scaled targets by segment index and one multiply; no loop over days.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.backtest.metrics import DAYS_PER_CALENDAR_YEAR
from quantlab_assets.compute.params import described

BPS = 1e-4
RETURN = "return"
WEIGHT = "weight"
SIGNAL_DATE = "signal_date"


class LookAheadError(ValueError):
    """Weights would earn returns that were already known when the weights were decided."""


@dataclass(frozen=True)
class CostParams:
    """Per unit of traded notional, in basis points (seed 003's ExecutionModel)."""

    commission_bps: float = described(10.0, "Commission, in basis points of the traded notional.")
    slippage_bps: float = described(5.0, "Slippage, in basis points of the traded notional.")
    spread_bps: float = described(5.0, "Half the bid-ask spread paid, in basis points of the traded notional.")

    @property
    def rate(self) -> float:
        return (self.commission_bps + self.slippage_bps + self.spread_bps) * BPS

    def scaled(self, factor: float) -> CostParams:
        return CostParams(self.commission_bps * factor, self.slippage_bps * factor, self.spread_bps * factor)

    def describe(self) -> str:
        """The cost model in words, with the values used."""
        return (f"commission {self.commission_bps:g} bp + slippage {self.slippage_bps:g} bp + spread "
                f"{self.spread_bps:g} bp on traded notional")


Rebalance = Literal["daily", "weekly", "monthly"]
# The calendar period whose first decision date is traded (daily: every decision date).
REBALANCE_PERIODS: Final[dict[str, str | None]] = {"daily": None, "weekly": "1w", "monthly": "1mo"}


@dataclass(frozen=True)
class BacktestParams:
    costs: CostParams = field(default_factory=CostParams)
    delay: int = described(1, "Bars between a decision (close of its date) and its trade (close of the bar `delay` later).")
    rebalance: Rebalance = described(
        "daily", "Rebalancing frequency: daily (every decision date), weekly or monthly (the first decision date "
                 "of each calendar week or month; the previous targets are held, drifting, in between).")
    initial_capital: float = described(1.0, "Equity at the start; the returns do not depend on it.")
    borrow_fee_bps: float = described(
        50.0, "Fee for borrowing shorted shares, in basis points a year of the short notional held (accrued "
              "by calendar days); 0 for long-only books, which hold no short.")

    def __post_init__(self) -> None:
        if self.rebalance not in REBALANCE_PERIODS:
            raise ValueError(f"rebalance must be one of {sorted(REBALANCE_PERIODS)}, not {self.rebalance!r}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> BacktestParams:
        """The parameters `dataclasses.asdict` wrote (an asset's metadata records the ones it used)."""
        return cls(**{**values, "costs": CostParams(**values["costs"])})

    def describe(self) -> str:
        """The execution model in words, with the values used (the report's note)."""
        return (f"{self.costs.describe()}; {self.delay}-bar execution delay; {self.rebalance} rebalancing; "
                f"borrow fee {self.borrow_fee_bps:g} bp a year on short notional")


def rebalance_dates(decision_dates: pl.Series, rebalance: Rebalance) -> pl.Series:
    """The sorted decision dates that are traded: every one (daily), or the first of each calendar week
    (weeks start on Monday) or month. The first is the first decision date whatever the frequency, so the
    portfolio is invested from the same day as under daily rebalancing."""
    period = REBALANCE_PERIODS[rebalance]
    if period is None:
        return decision_dates
    return decision_dates.filter(decision_dates.dt.truncate(period).is_first_distinct())


@dataclass(frozen=True)
class SimulationArrays:
    """The engine's output on a (T days, N assets) panel.

    gross_return, borrow_cost, cost, net_return, turnover: shape (T,); cost is the fraction of portfolio value
    paid at that bar's close, turnover the traded notional as a fraction of it (0 on bars without a trade),
    borrow_cost the fraction of the day's starting value paid to borrow the shorts held over the day.
    weights: shape (T, N), the end-of-day weights (after the trade on an execution bar).
    """

    gross_return: np.ndarray
    borrow_cost: np.ndarray
    cost: np.ndarray
    net_return: np.ndarray
    turnover: np.ndarray
    weights: np.ndarray


def cumulative_product_over_rows(panel: np.ndarray) -> np.ndarray:
    """In place: row t becomes the product of rows 0..t (np.cumprod(panel, axis=0)), about 4x faster.

    numpy accumulates along axis 0 one column at a time, striding down the rows of a C-ordered panel;
    this work-efficient (Brent-Kung) scan multiplies whole contiguous rows instead, in 2 log2(T) numpy
    calls. The products are associated differently, so values differ from np.cumprod by rounding only
    (about 1e-14 relative over 5,000 days), and are the same on every run.
    """
    n_rows = panel.shape[0]
    step = 1
    while step < n_rows:  # up-sweep: row i (i = 2k*step - 1) takes the product of its 2*step-row block
        block_ends = panel[2 * step - 1 :: 2 * step]
        block_ends *= panel[step - 1 :: 2 * step][: block_ends.shape[0]]
        step *= 2
    step //= 2
    while step >= 1:  # down-sweep: the rows in between take the product up to their block's start
        middles = panel[3 * step - 1 :: 2 * step]
        middles *= panel[2 * step - 1 :: 2 * step][: middles.shape[0]]
        step //= 2
    return panel


def simulate(
    returns: np.ndarray, targets: np.ndarray, execution_bars: np.ndarray, cost_rate: float,
    last_bars: np.ndarray | None = None, borrow_rates: np.ndarray | None = None,
) -> SimulationArrays:
    """Run the execution model on a wide panel.

    returns: (T, N) simple returns of day t (close t-1 -> close t), finite and > -1.
    targets: (K, N) target weights, traded at the close of execution_bars (K,), strictly increasing in [0, T).
    last_bars: (N,) each asset's last bar (None: every asset trades to the end); a position is cash after it.
    borrow_rates: (T,) fee per unit of short notional held over day t (None: no fee).
    """
    n_days, n_assets = returns.shape
    if targets.shape != (execution_bars.size, n_assets):
        raise ValueError(f"targets {targets.shape} do not match {execution_bars.size} execution bars x {n_assets} assets")
    if execution_bars.size and (np.any(np.diff(execution_bars) <= 0) or execution_bars[0] < 0 or execution_bars[-1] >= n_days):
        raise ValueError("execution bars must be strictly increasing bar indices inside the panel")
    # A finite sum means no NaN or infinity (two passes, no temporaries).
    if not np.isfinite(returns.sum()) or returns.size and returns.min() <= -1.0:
        raise ValueError("returns must be finite and > -100 % (a missing bar is a 0 return)")

    closed = [] if last_bars is None else [(j, int(last_bars[j])) for j in np.flatnonzero(last_bars < n_days - 1)]
    if closed:  # a target in an asset after its last bar stays in cash
        targets = targets.copy()
        for asset, last in closed:
            targets[execution_bars > last, asset] = 0.0
    growth = cumulative_product_over_rows(np.add(returns, 1.0))  # (T, N)
    # Segment of the holdings during day t: the last execution at or before the close of t-1 (-1: all cash).
    segment = np.searchsorted(execution_bars, np.arange(n_days) - 1, side="right") - 1  # (T,)
    scaled = np.empty((execution_bars.size + 1, n_assets))  # (K+1, N): targets / growth at their trade; row 0 = cash
    scaled[0] = 0.0
    # mode="clip" (the bars are checked above): with the default "raise", numpy buffers `out` (3x slower).
    np.take(growth, execution_bars, axis=0, out=scaled[1:], mode="clip")
    np.divide(targets, scaled[1:], out=scaled[1:])
    cash = np.concatenate([[1.0], 1.0 - targets.sum(axis=1)])  # (K+1,)
    # In place from here: the panel-sized arrays are the cost (memory traffic and page faults).
    weights = scaled[segment + 1]  # (T, N)
    weights *= growth  # holdings: value per asset relative to the portfolio's value at the segment's start
    del growth
    value = weights.sum(axis=1) + cash[segment + 1]  # (T,)
    segment_start = np.ones(n_days, dtype=bool)
    segment_start[1:] = segment[1:] != segment[:-1]
    previous_value = np.where(segment_start, 1.0, np.roll(value, 1))
    gross = value / previous_value - 1.0

    weights *= (1.0 / value)[:, None]  # drifted end-of-day weights
    for asset, last in closed:  # its value (constant after the last bar) is cash: not a weight, not traded
        weights[last + 1:, asset] = 0.0
    trades = weights[execution_bars]  # (K, N) before the trade
    trades -= targets
    traded = np.abs(trades, out=trades).sum(axis=1)  # (K,)
    del trades
    weights[execution_bars] = targets

    turnover = np.zeros(n_days)
    turnover[execution_bars] = traded
    cost = turnover * cost_rate
    borrow = np.zeros(n_days)
    if borrow_rates is not None:  # the shorts held over day t are those at the close of t - 1
        borrow[1:] = borrow_rates[1:] * -np.minimum(weights[:-1], 0.0).sum(axis=1)
    net = (1.0 + gross - borrow) * (1.0 - cost) - 1.0
    return SimulationArrays(gross_return=gross, borrow_cost=borrow, cost=cost, net_return=net, turnover=turnover,
                            weights=weights)


@dataclass(frozen=True)
class BacktestResult:
    """daily: date, gross_return, borrow_cost, cost, net_return, equity, turnover, invested (net exposure: the
    sum of the weights), gross_exposure (sum of |weights|), n_positions, max_weight (largest |weight|), hhi
    (Herfindahl index of the end-of-day weights).
    weights: date, ticker, weight (end of day, non-zero only)."""

    daily: pl.DataFrame
    weights: pl.DataFrame
    tickers: list[str]
    arrays: SimulationArrays
    returns: np.ndarray


def returns_from_bars(bars: pl.DataFrame) -> pl.DataFrame:
    """Daily simple returns per instrument from the cleaned bars: date, ticker, return = exp(log_return) - 1.

    The cleaned log_return is the split- and dividend-adjusted return, never rewritten; a bad tick (a x10
    price for a day, reverted the next) is quarantined by cleaning and its day forward-filled, so it books
    no +900 % then -90 % P&L. The first bar of an instrument has no return (null).
    """
    return bars.select(c.DATE, c.TICKER, (pl.col(c.LOG_RETURN).exp() - 1.0).alias(RETURN))


def check_signal_dates(weights: pl.DataFrame) -> None:
    """Refuse weights built from information dated after the date they are decided on."""
    if SIGNAL_DATE not in weights.columns:
        return
    late = weights.filter(pl.col(SIGNAL_DATE) > pl.col(c.DATE))
    if late.height:
        first = late.sort(c.DATE).row(0, named=True)
        raise LookAheadError(
            f"{late.height} weights use a signal dated after their decision date, e.g. {first[c.TICKER]} decided "
            f"{first[c.DATE]} from a signal of {first[SIGNAL_DATE]}"
        )


def check_applied_before_returns(decision_dates: np.ndarray, return_dates: np.ndarray, segment: np.ndarray) -> None:
    """Every return must be earned by weights decided strictly before its day (decision date < return date)."""
    held = segment >= 0
    violations = np.flatnonzero(held & (decision_dates[np.maximum(segment, 0)] >= return_dates))
    if violations.size:
        t = violations[0]
        raise LookAheadError(
            f"{violations.size} daily returns would be earned by weights decided on or after their day, "
            f"e.g. the return of {return_dates[t]} by weights of {decision_dates[segment[t]]}"
        )


def run_backtest(returns: pl.DataFrame, weights: pl.DataFrame, params: BacktestParams = BacktestParams()) -> BacktestResult:
    """Backtest long frames: returns (date, ticker, return) and target weights (date, ticker, weight[, signal_date]).

    A decision date with no weight for an instrument means weight 0 for it. Dates of `returns` are the
    trading calendar; a missing or null return is a 0 return (the last price carried) up to the
    instrument's last return; after it the position is closed (module docstring). Decisions whose trade
    would fall after the last bar are not traded.
    """
    check_signal_dates(weights)
    dates = returns[c.DATE].unique().sort()
    tickers = sorted(set(returns[c.TICKER].unique().to_list()) | set(weights[c.TICKER].unique().to_list()))
    panel = wide_panel(returns, dates, tickers, RETURN)

    decision_dates = rebalance_dates(weights[c.DATE].unique().sort(), params.rebalance)
    unknown = decision_dates.filter(~decision_dates.is_in(dates.implode()))
    if unknown.len():
        raise ValueError(f"{unknown.len()} decision dates are not trading days of the returns, e.g. {unknown[0]}")
    targets = wide_panel(weights.filter(pl.col(c.DATE).is_in(decision_dates.implode())), decision_dates, tickers, WEIGHT)
    execution_bar = np.searchsorted(dates.to_numpy(), decision_dates.to_numpy()) + params.delay
    inside = (execution_bar >= 0) & (execution_bar < dates.len())
    execution_bar, targets, decided = execution_bar[inside], targets[inside], decision_dates.to_numpy()[inside]
    # Independent of the bar arithmetic above: a negative delay, or any misalignment, is refused here.
    segment = np.searchsorted(execution_bar, np.arange(dates.len()) - 1, side="right") - 1
    check_applied_before_returns(decided, dates.to_numpy(), segment)

    arrays = simulate(panel, targets, execution_bar, params.costs.rate, last_bars(returns, dates, tickers),
                      borrow_rates(dates, params.borrow_fee_bps))
    daily = pl.DataFrame(
        {
            c.DATE: dates,
            "gross_return": arrays.gross_return,
            "borrow_cost": arrays.borrow_cost,
            "cost": arrays.cost,
            "net_return": arrays.net_return,
            "equity": params.initial_capital * np.cumprod(1.0 + arrays.net_return),
            "turnover": arrays.turnover,
            "invested": arrays.weights.sum(axis=1),
            "gross_exposure": np.abs(arrays.weights).sum(axis=1),
            "n_positions": (arrays.weights != 0).sum(axis=1).astype(np.int32),
            "max_weight": np.abs(arrays.weights).max(axis=1, initial=0.0),
            "hhi": (arrays.weights**2).sum(axis=1),
        }
    )
    return BacktestResult(daily=daily, weights=weights_long(arrays.weights, dates, tickers), tickers=tickers,
                          arrays=arrays, returns=panel)


def borrow_rates(dates: pl.Series, fee_bps: float) -> np.ndarray:
    """(T,) borrow fee per unit of short notional over each day: fee_bps a year, actual/365.25 from the
    previous bar (0 on the first bar, which holds nothing overnight)."""
    days = dates.diff().dt.total_days().fill_null(0).to_numpy().astype(np.float64)
    return fee_bps * BPS * days / DAYS_PER_CALENDAR_YEAR


def last_bars(returns: pl.DataFrame, dates: pl.Series, tickers: list[str]) -> np.ndarray:
    """Per ticker, the index in `dates` of its last non-null return (the last bar for one without any)."""
    last = returns.filter(pl.col(RETURN).is_not_null()).group_by(c.TICKER).agg(pl.col(c.DATE).max())
    aligned = pl.DataFrame({c.TICKER: tickers}, schema={c.TICKER: pl.String}).join(
        last, on=c.TICKER, how="left", maintain_order="left")[c.DATE]
    # A ticker without a return (NaT) sorts past the calendar: clipped to the last bar.
    return np.minimum(np.searchsorted(dates.to_numpy(), aligned.to_numpy()), dates.len() - 1).astype(np.int64)


def weights_long(weights: np.ndarray, dates: pl.Series, tickers: list[str]) -> pl.DataFrame:
    """Non-zero entries of a (T, N) weight array as date, ticker, weight."""
    day, asset = np.nonzero(weights)
    return pl.DataFrame(
        {c.DATE: dates.gather(day), c.TICKER: pl.Series(tickers).gather(asset), WEIGHT: weights[day, asset]}
    )


def wide_panel(frame: pl.DataFrame, dates: pl.Series, tickers: list[str], value: str) -> np.ndarray:
    """(len(dates), len(tickers)) array of `value` by (date, ticker); absent or null -> 0."""
    out = np.zeros((dates.len(), len(tickers)))
    if frame.height == 0:
        return out
    indexed = frame.select(
        pl.col(c.DATE).cast(pl.Date),
        pl.col(c.TICKER).cast(pl.Enum(tickers)).to_physical().alias("_col"),
        pl.col(value).fill_null(0.0).fill_nan(0.0),
    ).join(pl.DataFrame({c.DATE: dates.cast(pl.Date), "_row": np.arange(dates.len())}), on=c.DATE, how="inner")
    out[indexed["_row"].to_numpy(), indexed["_col"].to_numpy()] = indexed[value].to_numpy()
    return out
