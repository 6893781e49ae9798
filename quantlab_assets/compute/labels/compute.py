"""Every label family for a panel of cleaned bars, one row per (date, ticker) of the bars.

Columns (k = each horizon of LabelParams):
  fwd_return_{k}d   sum of the daily log returns of days t+1 .. t+k (forward.py)
  label_{k}d        industry-relative forward return, for k in `relative_horizons` (forward.py)
  direction_{k}d    3-class direction of fwd_return_{k}d (direction.py)
  label_end_{k}d    the date t+k: the last date whose data fwd_return/label/direction at k use
  tb_label          triple-barrier label +1 / -1 / 0 (triple_barrier.py)
  tb_barrier        which barrier came first: upper / lower / vertical, or both (one bar crossed both:
                    tb_label -1, a loss for a long and for a short alike)
  tb_touch_date     the date of that first touch (the vertical barrier's date when neither was hit)
  tb_end            the vertical barrier's date t+horizon: the last date the triple barrier may use

"Day t+k" is the k-th next date of the trading calendar (the distinct dates of the bars). A label is
null unless the instrument has a bar with a return on each of those k days: that is exactly "fewer
than k future rows" at the end of the data, and it also nulls a window that spans a gap cleaning left
unfilled (a k-row window across a gap would cover more than k days). A delisting is not a gap: after
an instrument's `delisted` date (universe table) its holder has cash, so the days after it return 0
and a window through the delisting ends at the last price plus the delisting return (booked on the
last bar by compute/data/membership.py). A delisted loser keeps its labels and its training rows.

Rows: the tradable members of each date (membership.py's cross-section); bars before a listing and
index rows are read (ATR history) but get no label. Industry peers of a day are that day's tradable
members.
`label_end_*` and `tb_end` are null exactly where their labels' windows are incomplete; cross-validation
purges a training row whose end date reaches into the test span.

Labels use the bars of t+1 .. t+k only, with two exceptions that are data *up to* t: the close at t
(the return of day t+1 is measured from it) and, for the triple barrier, the ATR at t (the barrier
width). ATR_LOOKBACK_DAYS says how much history before a partition the ATR needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.membership import cross_section_expr
from quantlab_assets.compute.labels.direction import direction
from quantlab_assets.compute.labels.forward import forward_sums, relative_forward_sums
from quantlab_assets.compute.labels.panel import DensePanel
from quantlab_assets.compute.labels.triple_barrier import first_touch, wilder_atr

TB_LABEL: Final = "tb_label"
TB_BARRIER: Final = "tb_barrier"
TB_TOUCH_DATE: Final = "tb_touch_date"
TB_END: Final = "tb_end"
BARRIERS: Final = pl.Enum(["lower", "vertical", "upper", "both"])
BARRIER_OF_LABEL: Final = {-1: "lower", 0: "vertical", 1: "upper"}
REQUIRED_COLUMNS: Final = (c.DATE, c.TICKER, c.HIGH, c.LOW, c.CLOSE, c.LOG_RETURN)


def forward_return_column(horizon: int) -> str:
    return f"fwd_return_{horizon}d"


def relative_label_column(horizon: int) -> str:
    """Seed 004's name for the industry-relative label (label_21d, label_63d)."""
    return f"label_{horizon}d"


def direction_column(horizon: int) -> str:
    return f"direction_{horizon}d"


def label_end_column(horizon: int) -> str:
    return f"label_end_{horizon}d"


@dataclass(frozen=True)
class LabelParams:
    """What the labels look at, and how far ahead."""

    # Seed 001's multi-horizon forecaster (1/5/10/20 days) plus one and three months (seed 004: 21, 63).
    horizons: tuple[int, ...] = (1, 5, 10, 20, 21, 63)
    # Seed 004: Model 2 is trained separately on 21- and 63-day industry-relative returns.
    relative_horizons: tuple[int, ...] = (21, 63)
    # |forward log return| <= 10 bp is "flat": about one round trip of trading costs, a move too small
    # to trade on. One band for every horizon (the issue asks for one configurable threshold).
    flat_threshold: float = 0.001
    # Seed 002: "Triple Barrier (Width=1.5)" in ATRs, Wilder's 14-day ATR.
    barrier_width: float = 1.5
    atr_period: int = 14
    # Two trading weeks: long enough for a 1.5-ATR move to happen at typical daily volatility, short
    # enough that the vertical barrier does not dominate the classes.
    barrier_horizon: int = 10

    def __post_init__(self) -> None:
        counts = {
            "horizons": self.horizons,
            "relative_horizons": self.relative_horizons,
            "barrier_horizon": (self.barrier_horizon,),
            "atr_period": (self.atr_period,),
        }
        for name, values in counts.items():
            if any(value < 1 for value in values):
                raise ValueError(f"LabelParams.{name} must be positive trading-day counts, got {values}")
        if self.flat_threshold < 0 or self.barrier_width <= 0:
            raise ValueError("LabelParams.flat_threshold must be >= 0 and barrier_width > 0")

    @property
    def end_horizons(self) -> tuple[int, ...]:
        """Every horizon that gets a label_end column (forward and industry-relative)."""
        return tuple(sorted(set(self.horizons) | set(self.relative_horizons)))

    @property
    def lookahead_days(self) -> int:
        """The most trading days after t any label uses."""
        return max((*self.end_horizons, self.barrier_horizon))


# How many trading days after a partition's last date the labels read (63 with the default params).
LABEL_LOOKAHEAD_DAYS: Final = LabelParams().lookahead_days
# Trading days of history before a partition's first date the triple barrier wants for its ATR.
# Wilder's recursion never forgets its seed entirely: n days after it the seed weighs (13/14)^n, so
# with 252 days of history (14 for the seed, 238 of recursion) a partition's ATR equals the
# full-history ATR to within about 2e-8 relative; a label could only differ where a price lies that
# close to a barrier. The other labels need no history.
ATR_LOOKBACK_DAYS: Final = 252


def _group_levels(tickers: pl.Series, universe: pl.DataFrame) -> list[np.ndarray]:
    """Integer group codes per ticker for industry, sector and the whole universe (peer fallbacks)."""
    absent = set(tickers.to_list()) - set(universe[c.TICKER].to_list())
    if absent:
        raise ValueError(f"bars hold tickers that are not in the universe: {sorted(absent)[:10]}")
    known = tickers.to_frame(c.TICKER).join(
        universe.select(c.TICKER, c.SECTOR, c.INDUSTRY).unique(c.TICKER), on=c.TICKER, how="left",
        maintain_order="left",
    )
    levels = []
    for name in (c.INDUSTRY, c.SECTOR):
        codes = known[name].rank("dense").fill_null(0).cast(pl.Int64).to_numpy().copy()
        unknown = codes == 0  # no industry/sector given: a group of its own, so it falls back a level
        codes[unknown] = -np.arange(1, int(unknown.sum()) + 1)
        levels.append(codes)
    levels.append(np.zeros(len(tickers), dtype=np.int64))
    return levels


def _int8(values: np.ndarray, valid: np.ndarray) -> pl.Series:
    return pl.Series(np.ma.array(np.where(valid, values, 0).astype(np.int8), mask=~valid))


def _floats(values: np.ndarray) -> pl.Series:
    return pl.Series(values, nan_to_null=True)


def _after_delisting(panel: DensePanel, universe: pl.DataFrame) -> np.ndarray:
    """(dates x tickers) True on the calendar days after each instrument's delisting date."""
    if c.DELISTED not in universe.columns:
        return np.zeros(panel.shape, dtype=bool)
    delisted = panel.tickers.to_frame(c.TICKER).join(
        universe.select(c.TICKER, c.DELISTED), on=c.TICKER, how="left", maintain_order="left"
    )[c.DELISTED].to_physical().to_numpy(allow_copy=True)
    last_day = np.where(np.isnan(delisted.astype(np.float64)), np.inf, delisted.astype(np.float64))
    return panel.calendar[:, None] > last_day[None, :]


def _return_columns(
    panel: DensePanel, returns: np.ndarray, peers: np.ndarray, universe: pl.DataFrame, params: LabelParams
) -> dict[str, pl.Series]:
    """Forward returns, their directions and end dates, and the industry-relative labels.

    `returns`: each instrument's daily log returns (0 after its delisting); `peers`: the returns that
    form the industry proxies (NaN outside the day's cross-section).
    """
    columns: dict[str, pl.Series] = {}
    for horizon, grid in forward_sums(returns, params.end_horizons):
        forward = panel.long(grid)
        complete = ~np.isnan(forward)
        columns[label_end_column(horizon)] = panel.dates_ahead(horizon, complete)
        if horizon in params.horizons:
            columns[forward_return_column(horizon)] = _floats(forward)
            columns[direction_column(horizon)] = _int8(direction(forward, params.flat_threshold), complete)
    levels = _group_levels(panel.tickers, universe)
    for horizon, grid in relative_forward_sums(returns, levels, params.relative_horizons, peers):
        columns[relative_label_column(horizon)] = _floats(panel.long(grid))
    return columns


def _barrier_columns(panel: DensePanel, bars: pl.DataFrame, params: LabelParams) -> dict[str, pl.Series]:
    close, high, low = (panel.dense(bars[name].to_numpy()) for name in (c.CLOSE, c.HIGH, c.LOW))
    atr = wilder_atr(close, high, low, params.atr_period)
    outcome = first_touch(close, high, low, atr, width=params.barrier_width, horizon=params.barrier_horizon)
    available = panel.long(outcome.available)
    label = _int8(panel.long(outcome.label), available)
    return {
        TB_LABEL: label,
        TB_BARRIER: pl.DataFrame({"barrier": label.replace_strict(BARRIER_OF_LABEL, return_dtype=BARRIERS),
                                  "both": panel.long(outcome.both) & available})
        .select(pl.when("both").then(pl.lit("both", dtype=BARRIERS)).otherwise("barrier"))
        .to_series(),
        TB_TOUCH_DATE: panel.dates_ahead(panel.long(outcome.offset), available),
        TB_END: panel.dates_ahead(params.barrier_horizon, available),
    }


def compute_labels(bars: pl.DataFrame, universe: pl.DataFrame, params: LabelParams = LabelParams()) -> pl.DataFrame:
    """Labels for the cross-section rows of `bars` (cleaned bars), keys date and ticker, sorted by them.

    `universe` gives each ticker's industry and sector (the peer groups of the industry-relative labels),
    whether it is tradable and when it delisted; every ticker of `bars` must be in it.
    """
    missing = set(REQUIRED_COLUMNS) - set(bars.columns)
    if missing:
        raise ValueError(f"compute_labels needs bars with columns {sorted(missing)}")
    panel = DensePanel.of(bars)
    in_cross_section = bars.select(cross_section_expr(bars.columns, universe)).to_series().to_numpy()
    returns = panel.dense(bars[c.LOG_RETURN].to_numpy())
    peers = panel.dense(np.where(in_cross_section, bars[c.LOG_RETURN].to_numpy(), np.nan))
    returns[_after_delisting(panel, universe)] = 0.0
    columns = _return_columns(panel, returns, peers, universe, params)
    columns.update(_barrier_columns(panel, bars, params))
    order = [
        *(forward_return_column(k) for k in params.horizons),
        *(relative_label_column(k) for k in params.relative_horizons),
        *(direction_column(k) for k in params.horizons),
        *(label_end_column(k) for k in params.end_horizons),
        TB_LABEL, TB_BARRIER, TB_TOUCH_DATE, TB_END,
    ]
    labelled = panel.long(panel.dense(in_cross_section.astype(np.float64))) == 1.0
    return panel.keys().with_columns(columns[name].alias(name) for name in order).filter(pl.Series(labelled))
