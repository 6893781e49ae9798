"""Validation of the regime labels on known market episodes (seed 003, Phase 6.5; the issue's exit criterion).

Required, where the labels cover the window (dates after the universe's train_end):

- autumn 2008 (Lehman to year end, 2008-09-15 .. 2008-12-31): at least 75 % of trading days Crisis;
- the COVID crash (2020-02-24 .. 2020-04-30): at least 75 % of trading days Crisis;
- calm 2017 (2017-01-01 .. 2017-12-31): no Crisis day.

Reported without a requirement: August-October 2011 and 2022 (the seed expects Bear there, not Crisis).
Detection delay: trading days from a window's first trading day to its first Crisis day (0 = flagged on
the first day; whether the label was already Crisis the trading day before is reported too).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.regimes.labels import CRISIS, REGIME_ID


COVERAGE_SLACK = dt.timedelta(days=7)


@dataclass(frozen=True)
class Episode:
    """A window of dates and the share of its trading days that must (min) or may (max) be Crisis."""

    name: str
    start: dt.date
    end: dt.date
    min_crisis_share: float | None = None
    max_crisis_share: float | None = None


KNOWN_EPISODES = (
    Episode("gfc_autumn_2008", dt.date(2008, 9, 15), dt.date(2008, 12, 31), min_crisis_share=0.75),
    Episode("covid_crash_2020", dt.date(2020, 2, 24), dt.date(2020, 4, 30), min_crisis_share=0.75),
    Episode("calm_2017", dt.date(2017, 1, 1), dt.date(2017, 12, 31), max_crisis_share=0.0),
    Episode("euro_stress_2011", dt.date(2011, 8, 1), dt.date(2011, 10, 31)),
    Episode("bear_2022", dt.date(2022, 1, 1), dt.date(2022, 12, 31)),
)


@dataclass(frozen=True)
class EpisodeReport:
    name: str
    start: dt.date
    end: dt.date
    trading_days: int
    crisis_days: int
    crisis_share: float | None
    required: str
    passed: bool | None  # None: no requirement, or the labels do not cover the window
    first_crisis: dt.date | None
    delay_trading_days: int | None
    crisis_day_before: bool | None
    covered: bool

    def as_dict(self) -> dict[str, object]:
        return {key: (str(value) if isinstance(value, dt.date) else value) for key, value in asdict(self).items()}


def _required(episode: Episode) -> str:
    if episode.min_crisis_share is not None:
        return f"crisis share >= {episode.min_crisis_share:.0%}"
    if episode.max_crisis_share is not None:
        return f"crisis share <= {episode.max_crisis_share:.0%}"
    return "reported only"


def episodes_apply(source: str) -> bool:
    """Known crises are dates of real markets: a synthetic market's calendar holds none of them, so a
    crisis share measured there says nothing about the labeller."""
    return source != "synthetic"


def evaluate_episodes(labels: pl.DataFrame, episodes: tuple[Episode, ...] = KNOWN_EPISODES) -> list[EpisodeReport]:
    """One report per episode from labels (date, regime_id). A window is covered when the labels span it."""
    frame = labels.select(c.DATE, (pl.col(REGIME_ID) == CRISIS).alias("crisis")).sort(c.DATE)
    first, last = (frame[c.DATE].min(), frame[c.DATE].max()) if frame.height else (None, None)
    reports = []
    for episode in episodes:
        inside = frame.filter(pl.col(c.DATE).is_between(episode.start, episode.end, closed="both"))
        # A week of slack at the end: data may stop before a window's last calendar day (skfolio: 2022-12-28).
        covered = first is not None and first <= episode.start and last >= episode.end - COVERAGE_SLACK and inside.height > 0
        crisis = inside.get_column("crisis")
        crisis_days = int(crisis.sum())
        share = crisis_days / inside.height if inside.height else None
        hits = inside.with_row_index().filter(pl.col("crisis"))
        before = frame.filter(pl.col(c.DATE) < episode.start).tail(1)
        passed = None
        if covered and share is not None:
            if episode.min_crisis_share is not None:
                passed = share >= episode.min_crisis_share
            elif episode.max_crisis_share is not None:
                passed = share <= episode.max_crisis_share
        reports.append(
            EpisodeReport(
                name=episode.name, start=episode.start, end=episode.end, trading_days=inside.height,
                crisis_days=crisis_days, crisis_share=None if share is None else round(share, 4),
                required=_required(episode), passed=passed,
                first_crisis=hits[c.DATE].first() if hits.height else None,
                delay_trading_days=int(hits["index"].first()) if hits.height else None,
                crisis_day_before=bool(before["crisis"][0]) if before.height else None, covered=covered,
            )
        )
    return reports
