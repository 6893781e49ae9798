"""Point-in-time membership and the tradable set: which rows a cross-section at date t may hold.

The universe table (compute/universe.py) gives each instrument `tradable`, `listed`, `delisted` and
`delisting_return`. The data step applies them to the bars:

- raw rows dated after `delisted` are dropped into the quarantine (rule `after_delisting`, action
  `dropped`): nothing of a delisted instrument survives past its last trading day;
- cleaned rows dated after `delisted` are removed: they can only be cleaning's forward fill of the
  last close (never received), and a delisted instrument has no price after its last day;
- bars before `listed` stay as history (a per-instrument window may read them) with `is_member = false`;
- the delisting return is booked on the last member bar (CRSP's convention: the proceeds of the
  delisting relative to the last close): its `log_return` becomes ln(close / previous close) +
  ln(1 + delisting_return), so every forward label and every P&L that holds the name over its last day
  earns it. `close` stays the last traded price.

Every later step reads membership through `cross_section_expr`: a row belongs to the cross-section of
its date when the instrument is a member that day and is tradable. Features, labels, model rows, alphas
and portfolios hold only those rows; the non-tradable ones (indices, benchmark ETFs) feed only the
benchmark return and the benchmark strategy. A frame without an `is_member` column carries no
membership information (every row a member); a universe without `tradable` has every instrument tradable.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.cleaning import ACTION_DROPPED, QUARANTINE_SCHEMA

AFTER_DELISTING = "after_delisting"
MEMBERSHIP_RULES = (AFTER_DELISTING,)
IN_CROSS_SECTION = "_in_cross_section"


class MembershipError(ValueError):
    """The universe's membership contradicts the bars; the message names the universe file and the rule."""


def _spells(universe: pl.DataFrame) -> pl.DataFrame:
    return universe.select(c.TICKER, c.LISTED, c.DELISTED, c.DELISTING_RETURN)


def split_after_delisting(
    raw: pl.DataFrame, universe: pl.DataFrame, window: tuple[dt.date, dt.date]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(raw rows to clean, quarantine rows in `window`): rows dated after their instrument's delisting.

    The detail says when no raw row of the instrument is dated on or before its delisting: then the
    delisting date precedes the instrument's first bar (in the loaded data), a configuration error to fix.
    """
    judged = raw.join(_spells(universe).select(c.TICKER, c.DELISTED), on=c.TICKER, how="left", maintain_order="left")
    judged = judged.with_columns((pl.col(c.DATE) > pl.col(c.DELISTED)).fill_null(False).alias("_after"))
    judged = judged.with_columns((~pl.col("_after")).any().over(c.TICKER).alias("_has_earlier"))
    dropped = judged.filter(pl.col("_after")).with_columns(
        pl.lit(AFTER_DELISTING).alias(c.RULE),
        pl.lit(ACTION_DROPPED).alias(c.ACTION),
        pl.when(pl.col("_has_earlier"))
        .then(pl.format("dated after the instrument's delisting date {} (its last trading day)", pl.col(c.DELISTED)))
        .otherwise(pl.format("dated after the instrument's delisting date {}, which precedes its first bar: "
                             "check the universe's delisted date", pl.col(c.DELISTED)))
        .alias(c.DETAIL),
    )
    quarantine = dropped.filter(pl.col(c.DATE).is_between(*window, closed="both")).select(
        pl.col(name).cast(dtype) if name in dropped.columns else pl.lit(None, dtype=dtype).alias(name)
        for name, dtype in QUARANTINE_SCHEMA.items()
    )
    return judged.filter(~pl.col("_after")).select(raw.columns), quarantine


def mark_members(cleaned: pl.DataFrame, universe: pl.DataFrame, window_end: dt.date) -> pl.DataFrame:
    """`cleaned` with `is_member` and the delisting return booked on the last member bar, without rows after
    a delisting (module docstring).

    The return is booked only where the delisting date lies in the cleaned window (<= window_end), so
    the last bar of the loaded window is the instrument's last bar, not just the newest one stored.
    """
    spells = cleaned.select(c.TICKER, c.DATE).join(_spells(universe), on=c.TICKER, how="left", maintain_order="left")
    date = pl.col(c.DATE)
    member = (
        (pl.col(c.LISTED).is_null() | (date >= pl.col(c.LISTED)))
        & (pl.col(c.DELISTED).is_null() | (date <= pl.col(c.DELISTED)))
    )
    last_member = (
        (pl.col(c.DELISTED) <= window_end).fill_null(False)
        & pl.col(c.DELISTING_RETURN).is_not_null()
        & (date == date.filter(member).max().over(c.TICKER))
        & member
    )
    booked = spells.select(
        member.alias(c.IS_MEMBER),
        pl.when(last_member).then(pl.col(c.DELISTING_RETURN).log1p()).otherwise(0.0).alias("_delisting_log"),
    )
    after_delisting = spells.select((date > pl.col(c.DELISTED)).fill_null(False)).to_series()
    return cleaned.with_columns(
        booked[c.IS_MEMBER],
        pl.when(booked["_delisting_log"] != 0.0)
        .then(pl.col(c.LOG_RETURN).fill_null(0.0) + booked["_delisting_log"])
        .otherwise(pl.col(c.LOG_RETURN))
        .alias(c.LOG_RETURN),
    ).filter(~after_delisting)


def spells_without_bars(
    raw: pl.DataFrame, universe: pl.DataFrame, window: tuple[dt.date, dt.date], config_path: Path
) -> None:
    """Raise where an instrument with a stated spell (`listed` given) has no raw bar on any trading day of it.

    Trading days are the dates received for any instrument inside `window`, so a spell that only spans
    a weekend or starts after the newest bar is not an error. Raw rows, not cleaned ones: a series that
    cleaning quarantines whole (too short, too many gaps) was received, and the quarantine says why.
    """
    received = raw.filter(pl.col(c.DATE).is_between(*window, closed="both"))
    calendar = received.select(pl.col(c.DATE).unique())
    stated = _spells(universe).filter(pl.col(c.LISTED).is_not_null())
    in_spell = calendar.join(stated, how="cross").filter(
        (pl.col(c.DATE) >= pl.col(c.LISTED)) & (pl.col(c.DELISTED).is_null() | (pl.col(c.DATE) <= pl.col(c.DELISTED)))
    )
    covered = in_spell.group_by(c.TICKER).agg(pl.col(c.DATE).min().alias("first"), pl.col(c.DATE).max().alias("last"))
    missing = covered.join(received.select(c.TICKER).unique(), on=c.TICKER, how="anti").sort(c.TICKER)
    if missing.height:
        named = ", ".join(f"{row[c.TICKER]} ({row['first']}..{row['last']})"
                          for row in missing.head(10).iter_rows(named=True))
        raise MembershipError(
            f"{config_path}: {missing.height} instrument(s) are members by their listed/delisted dates but have no "
            f"bar on any trading day of that spell: {named}. Fix the dates or the source."
        )


def tradable_tickers(universe: pl.DataFrame) -> pl.Series:
    """The instruments a model or portfolio may hold (see the module docstring for a universe without `tradable`)."""
    if c.TRADABLE not in universe.columns:
        return universe.get_column(c.TICKER)
    return universe.filter(pl.col(c.TRADABLE)).get_column(c.TICKER)


def non_tradable_tickers(universe: pl.DataFrame) -> list[str]:
    return sorted(set(universe[c.TICKER].to_list()) - set(tradable_tickers(universe).to_list()))


def cross_section_expr(columns: list[str], universe: pl.DataFrame) -> pl.Expr:
    """True on the rows of a (date, ticker) frame with `columns` that a cross-section at their date holds."""
    member = pl.col(c.IS_MEMBER) if c.IS_MEMBER in columns else pl.lit(True)
    excluded = pl.Series(non_tradable_tickers(universe), dtype=pl.String)
    return (member & ~pl.col(c.TICKER).is_in(excluded.implode())).alias(IN_CROSS_SECTION)


def cross_section_rows(frame: pl.DataFrame, universe: pl.DataFrame) -> pl.DataFrame:
    """The rows of `frame` (date, ticker, ...) in their date's cross-section: tradable members."""
    return frame.filter(cross_section_expr(frame.columns, universe))


def membership_note(universe: pl.DataFrame) -> str:
    """One sentence for a report's header: the universe's dated listings and delistings, or its survivorship."""
    listings, delistings = universe[c.LISTED].is_not_null().sum(), universe[c.DELISTED].is_not_null().sum()
    excluded = ", ".join(non_tradable_tickers(universe)) or "none"
    if delistings == 0:
        membership = ("Survivorship: no instrument of this universe has a delisting date; a list of today's survivors "
                      "backtested over its history overstates every strategy (see the universe's description).")
    else:
        membership = f"Point-in-time membership: {listings} listing and {delistings} delisting dates."
    return f"{membership} Not tradable (benchmarks only): {excluded}."


def members_per_date(frame: pl.DataFrame, universe: pl.DataFrame) -> dict[str, float]:
    """min / median / max of tradable members per date (for asset metadata); zeros on an empty frame."""
    counts = cross_section_rows(frame, universe).group_by(c.DATE).len()["len"]
    if counts.is_empty():
        return {"min": 0, "median": 0.0, "max": 0}
    return {"min": int(counts.min()), "median": float(counts.median()), "max": int(counts.max())}
