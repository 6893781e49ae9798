"""Rule-based target weights: top-n equal weight, top-k with dropout and hysteresis, equal weight, buy-and-hold,
and seed 002's threshold profiles.

Every function returns date, ticker, weight, signal_date: `date` is the decision date (the engine
trades at its close + delay), `signal_date` the date of the information used, so the engine's
look-ahead guard can refuse a weight built from a later signal. Weights of a date sum to at most 1;
the rest is cash. Only instruments with a weight on a date are listed (absent = 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.backtest.engine import SIGNAL_DATE, WEIGHT
from quantlab_assets.compute.portfolio.names import AUDITED, RECKLESS, SNIPER

WEIGHT_COLUMNS = (c.DATE, c.TICKER, WEIGHT, SIGNAL_DATE)


def rebalance_dates(dates: pl.Series, every: int) -> pl.Series:
    """Every `every`-th distinct date, from the first."""
    return dates.unique().sort().gather_every(every)


def _on_rebalance_dates(frame: pl.DataFrame, every: int) -> pl.DataFrame:
    return frame.filter(pl.col(c.DATE).is_in(rebalance_dates(frame[c.DATE], every).implode()))


def _equal_among_selected(selected: pl.LazyFrame, max_position: float) -> pl.DataFrame:
    """Equal weight per date among the selected rows, each capped at max_position (the excess stays in cash)."""
    return (
        selected.with_columns(
            pl.min_horizontal(1.0 / pl.len().over(c.DATE), pl.lit(max_position)).alias(WEIGHT),
            pl.col(c.DATE).alias(SIGNAL_DATE),
        )
        .select(WEIGHT_COLUMNS)
        .sort(c.DATE, c.TICKER)
        .collect()
    )


def top_n_equal(alpha: pl.DataFrame, score: str, n: int = 5, max_position: float = 0.20, every: int = 1) -> pl.DataFrame:
    """The n highest scores per date, equal weight capped at max_position (seed 003: top 5, 20 %).

    Ties are broken by ticker so the selection is deterministic.
    """
    ranked = (
        _on_rebalance_dates(alpha.filter(pl.col(score).is_not_null() & pl.col(score).is_not_nan()), every)
        .lazy()
        .sort(c.DATE, score, c.TICKER, descending=[False, True, False])
        .filter(pl.int_range(pl.len()).over(c.DATE) < n)
    )
    return _equal_among_selected(ranked, max_position)


def topk_step(held: list[str], ranking: list[str], k: int, n_drop: int, buffer: int) -> list[str]:
    """The holdings after one rebalance: `ranking` lists the date's candidates best first.

    Held names absent from the ranking (no longer tradable members) are sold. Of the held names ranked
    below k + buffer (hysteresis: a name enters in the top k and leaves only below rank k + buffer), the
    n_drop worst are sold (dropout: at most n_drop such sells per rebalance); the best-ranked names not
    held fill the book back to k. With buffer 0 on a full book this is the rule of Qlib's TopkDropoutStrategy
    (sell the held names among the n_drop worst of holdings + the n_drop best non-held, buy as many of those).
    Returns the holdings, best-ranked first.
    """
    rank = {ticker: i for i, ticker in enumerate(ranking)}
    kept = [ticker for ticker in held if ticker in rank]
    worst_first = sorted((t for t in kept if rank[t] >= k + buffer), key=rank.__getitem__, reverse=True)
    sold = set(worst_first[:n_drop])
    remaining = [t for t in kept if t not in sold]
    holding = set(remaining)
    bought = [t for t in ranking if t not in holding][: max(k - len(remaining), 0)]
    return sorted(remaining + bought, key=rank.__getitem__)


def topk_dropout(alpha: pl.DataFrame, score: str, k: int = 10, n_drop: int = 2, buffer: int = 0, every: int = 5,
                 max_position: float = 0.20) -> pl.DataFrame:
    """Long-only top-k book with turnover control: every `every`-th date, `topk_step` on that date's ranking
    (score descending, ties by ticker), the holdings equal-weighted and capped at max_position."""
    ranked = (
        _on_rebalance_dates(alpha.filter(pl.col(score).is_not_null() & pl.col(score).is_not_nan()), every)
        .sort(c.DATE, score, c.TICKER, descending=[False, True, False])
        .group_by(c.DATE, maintain_order=True)
        .agg(pl.col(c.TICKER))
    )
    held: list[str] = []
    books = []
    for date, ranking in ranked.iter_rows():
        held = topk_step(held, ranking, k, n_drop, buffer)
        books.append((date, held))
    holdings = pl.DataFrame(books, schema={c.DATE: pl.Date, c.TICKER: pl.List(pl.String)}, orient="row").explode(c.TICKER)
    return _equal_among_selected(holdings.drop_nulls(c.TICKER).lazy(), max_position)


def equal_weight(universe_by_date: pl.DataFrame, every: int = 21) -> pl.DataFrame:
    """1/N over the instruments present on each rebalance date (monthly by default: 21 trading days)."""
    return _equal_among_selected(_on_rebalance_dates(universe_by_date.select(c.DATE, c.TICKER), every).lazy(), 1.0)


def buy_and_hold(universe_by_date: pl.DataFrame) -> pl.DataFrame:
    """Equal weight over the instruments present on the first date, then never traded (the weights drift).

    Instruments that appear later are not bought: this is the passive benchmark of the first day's universe.
    """
    first = universe_by_date.filter(pl.col(c.DATE) == pl.col(c.DATE).min()).select(c.DATE, c.TICKER)
    return _equal_among_selected(first.lazy(), 1.0)


@dataclass(frozen=True)
class ThresholdProfile:
    """Seed 002's strategy profiles: enter where the primary model's probability clears a threshold."""

    name: str
    min_probability: float
    use_auditor: bool
    use_regime_filter: bool


PROFILES = {
    p.name: p
    for p in (
        ThresholdProfile(SNIPER, 0.95, use_auditor=False, use_regime_filter=True),
        ThresholdProfile(AUDITED, 0.75, use_auditor=True, use_regime_filter=True),
        ThresholdProfile(RECKLESS, 0.75, use_auditor=False, use_regime_filter=False),
    )
}
# The seed's filter blocked its HMM's range-bound state for a trend model; for a long-only book we stand
# aside where the regime labeller says the market falls.
BLOCKED_REGIMES = ("Bear", "Crisis")
AUDITOR_THRESHOLD = 0.5


def threshold_profile(
    signals: pl.DataFrame,
    profile: ThresholdProfile,
    max_position: float = 0.20,
    blocked_regimes: tuple[str, ...] = BLOCKED_REGIMES,
) -> pl.DataFrame:
    """Weights of a profile from signals: date, ticker, probability[, auditor_probability][, regime].

    Every date with signals is a decision date; a date where nothing qualifies is all cash (so exits
    happen). Qualifying names get equal weight capped at max_position.
    """
    rule = pl.col("probability") >= profile.min_probability
    if profile.use_auditor:
        rule &= pl.col("auditor_probability") >= AUDITOR_THRESHOLD
    if profile.use_regime_filter:
        rule &= ~pl.col("regime").is_in(list(blocked_regimes)).fill_null(False)
    chosen = _equal_among_selected(signals.lazy().filter(rule.fill_null(False)), max_position)
    # Dates where nothing qualifies still count as decisions: an explicit zero weight closes the book.
    empty_dates = (
        signals.select(c.DATE).unique().join(chosen.select(c.DATE).unique(), on=c.DATE, how="anti")
        .join(signals.group_by(c.DATE).agg(pl.col(c.TICKER).min()), on=c.DATE)
        .with_columns(pl.lit(0.0).alias(WEIGHT), pl.col(c.DATE).alias(SIGNAL_DATE))
        .select(WEIGHT_COLUMNS)
    )
    return pl.concat([chosen, empty_dates]).sort(c.DATE, c.TICKER)
