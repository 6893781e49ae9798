"""Helper columns every feature may read, built once at the start of the feature query.

The query sorts the cleaned bars by (ticker, date) once; the helpers below are then computed either
with `.over(TICKER_ID)` or as whole-column operations masked by POS (a shift by k rows is valid where
the instrument already has k earlier rows). None of them survives into the output.

The *return index* PRICE is `exp(cumulative sum of the cleaned log returns)`, 1 on an instrument's first
row. Price-path features (moving-average gaps, drawdowns, RSI) read it rather than `close`: it equals
the adjusted close / first adjusted close (cleaning never rewrites a return), so every price feature
agrees with the return features. Ratios to its own history (MA gap,
drawdown, RSI) are unchanged by the arbitrary starting level.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import polars as pl

from quantlab_assets.compute import columns as c

TICKER_ID: Final = "_tid"  # UInt32 instrument number in ticker order (the frame is sorted by it, then date)
POS: Final = "_pos"  # row number within the instrument, 0 on its first row
LOG_PRICE: Final = "_lp"  # cumulative log return since the instrument's first row
PRICE: Final = "_p"  # return index exp(LOG_PRICE)
PRICE_CHANGE: Final = "_dp"  # PRICE - previous PRICE (null on the first row)
GAP: Final = "_gap"  # overnight gap log(open_t / close_{t-1}) (null on the first row or without an open)
DOLLAR_VOLUME: Final = "_dv"  # close * volume
BENCHMARK: Final = "_bench"  # the benchmark's log return on the row's date
INDUSTRY_GROUP: Final = "_industry_group"  # (date, industry) as one integer, for per-industry statistics
# On the frame sorted by (date, ticker): the date's first row, and the date's number (0, 1, ...).
FIRST_OF_DATE: Final = "_first_of_date"
DATE_INDEX: Final = "_date_index"


def ticker_id_expr(tickers: Sequence[str]) -> pl.Expr:
    """TICKER_ID: the ticker's position in `tickers` (sorted, unique), so it orders like the ticker."""
    return pl.col(c.TICKER).cast(pl.Enum(list(tickers))).to_physical().cast(pl.UInt32).alias(TICKER_ID)


# Single integer sort keys (an integer sort is several times faster than sorting by a string column).
_DAY_BITS = 23  # days since 1970 shifted by 2^22: any date within 11,000 years of 1970
_DAY_OFFSET = 1 << (_DAY_BITS - 1)


def _day_number() -> pl.Expr:
    return pl.col(c.DATE).to_physical().cast(pl.Int64) + _DAY_OFFSET


def instrument_order_key() -> pl.Expr:
    """Sorts like (ticker, date) given TICKER_ID."""
    return pl.col(TICKER_ID).cast(pl.Int64) * (1 << _DAY_BITS) + _day_number()


def date_order_key() -> pl.Expr:
    """Sorts like (date, ticker) given TICKER_ID."""
    return _day_number() * (1 << 32) + pl.col(TICKER_ID).cast(pl.Int64)


def instrument_key_exprs() -> list[pl.Expr]:
    """TICKER_ID flagged sorted, and POS, on a frame sorted by (TICKER_ID, date), without a group-by."""
    first_row = (pl.col(TICKER_ID) != pl.col(TICKER_ID).shift(1)).fill_null(True)
    row = pl.int_range(pl.len(), dtype=pl.Int64)
    return [
        pl.col(TICKER_ID).set_sorted(),
        (row - pl.when(first_row).then(row).forward_fill()).alias(POS),
    ]


def lagged(expr: pl.Expr, rows: int = 1) -> pl.Expr:
    """`expr` from `rows` rows earlier of the same instrument (null where it has no such row)."""
    return pl.when(pl.col(POS) >= rows).then(expr.shift(rows))


def price_exprs(benchmark: pl.Expr) -> list[pl.Expr]:
    """LOG_PRICE, GAP, DOLLAR_VOLUME and BENCHMARK (needs TICKER_ID and POS)."""
    return [
        pl.col(c.LOG_RETURN).fill_null(0.0).cum_sum().over(TICKER_ID).alias(LOG_PRICE),
        (pl.col(c.OPEN) / lagged(pl.col(c.CLOSE))).log().alias(GAP),
        (pl.col(c.CLOSE) * pl.col(c.VOLUME)).alias(DOLLAR_VOLUME),
        benchmark.alias(BENCHMARK),
    ]


def index_exprs() -> list[pl.Expr]:
    """PRICE and PRICE_CHANGE (needs LOG_PRICE)."""
    price = pl.col(LOG_PRICE).exp()
    return [price.alias(PRICE), (price - lagged(price)).alias(PRICE_CHANGE)]


def date_key_exprs() -> list[pl.Expr]:
    """FIRST_OF_DATE and DATE_INDEX on a frame sorted by (date, ticker)."""
    first = (pl.col(c.DATE) != pl.col(c.DATE).shift(1)).fill_null(True)
    return [
        pl.col(c.DATE).set_sorted(),
        first.alias(FIRST_OF_DATE),
        (first.cum_sum().cast(pl.Int64) - 1).alias(DATE_INDEX),
    ]
