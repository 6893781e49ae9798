"""Every bar a return-capping outlier rule would have rewritten, and what the cleaning step does with it now.

The seed's 10-sigma rule once *capped* the return of every bar beyond 10 robust sigmas, so a real crash
(Merck's Vioxx withdrawal, -31 % on 2004-09-30) reached labels and P&L as a -10 % day. Cleaning now only
flags such a bar and quarantines it only when it is a bad print that reverts on the next bar (see
compute/data/cleaning.py). `review_capped_bars` lists the bars beyond the bound, each with its verdict,
so the policy can be read off real data (docs/real_data.md; scripts/outlier_review.py prints the table).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable

import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.cleaning import REVERTED_SPIKE, CleaningParams, clean_bars

VERDICT = "verdict"
KEPT_RETURN = "kept_log_return"
REVERTED_TICK = "reverted tick (quarantined)"
REAL_MOVE = "real move (kept)"
AFTER_TICK = "reversal of a quarantined tick (kept; return from the last good close)"


def review_capped_bars(
    raw: pl.DataFrame,
    universe_tickers: Iterable[str],
    *,
    window: tuple[dt.date, dt.date],
    as_of: dt.date,
    holidays: Iterable[dt.date] = (),
    close_is_adjusted: bool | None = None,
    params: CleaningParams = CleaningParams(),
) -> pl.DataFrame:
    """(date, ticker, log_return, kept_log_return, verdict) for each bar beyond the outlier bound.

    The bars are those the flag-only pass (no bad-print rule) finds beyond `outlier_sigma` robust sigmas,
    i.e. exactly the bars a capping rule with the same yardstick rewrote; `log_return` is the bar's return
    as received, `kept_log_return` what cleaned bars hold now (null for a quarantined tick).
    """
    tickers = list(universe_tickers)
    holidays = list(holidays)

    def run(run_params: CleaningParams):
        return clean_bars(
            raw, tickers, window=window, as_of=as_of, params=run_params, holidays=holidays,
            close_is_adjusted=close_is_adjusted,
        )

    flag_only = run(dataclasses.replace(params, reversion_share=None))
    current = run(params)
    keys = [c.DATE, c.TICKER]
    beyond = flag_only.cleaned.filter(pl.col(c.IS_OUTLIER)).select(*keys, c.LOG_RETURN)
    ticks = current.quarantine.filter(pl.col(c.RULE) == REVERTED_SPIKE).select(*keys, pl.lit(True).alias("tick"))
    kept = current.cleaned.select(*keys, pl.col(c.LOG_RETURN).alias(KEPT_RETURN))
    review = beyond.join(ticks, on=keys, how="left").join(kept, on=keys, how="left")
    verdict = (
        pl.when(pl.col("tick")).then(pl.lit(REVERTED_TICK))
        .when(pl.col(KEPT_RETURN) == pl.col(c.LOG_RETURN)).then(pl.lit(REAL_MOVE))
        .otherwise(pl.lit(AFTER_TICK))
    )
    return review.select(*keys, c.LOG_RETURN, KEPT_RETURN, verdict.alias(VERDICT)).sort(keys)
