"""Whether the regime labels find the known crises robustly: the same validation under small changes.

A run relabels a universe from its cleaned bars with one change to the inputs or the fit and scores
the known episodes (validation.py) exactly as the `regime_labels_known_crises` check does:

- an instrument left out (the market proxy, breadth and correlation lose one member);
- every log return jittered by seeded Gaussian noise (`return_noise`, e.g. 10 bp a day);
- the training end moved by some months (the first model's fit span and every refit boundary move).

`crisis_hit_rates` summarises the runs per episode: how many passed their requirement, and the range of
the crisis share. The HMM draws no random number (hmm.py), so there is no model seed to vary; the
jitter's noise is seeded, so every run is reproducible.

The figures in docs/studies.md ("Regime labels on real crises") come from this module's command, on the README's range:

    python -m quantlab_assets.compute.regimes.robustness sp500_sample 1991-01-01 2022-12-31
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.cleaning import clean_bars
from quantlab_assets.compute.data.sources import fetch_raw_bars
from quantlab_assets.compute.features.compute import compute_features
from quantlab_assets.compute.regimes.hmm import HmmParams, filtered_regimes, parameters_frame
from quantlab_assets.compute.regimes.labels import label_dates, label_states, state_statistics
from quantlab_assets.compute.regimes.market_state import compute_market_state
from quantlab_assets.compute.regimes.validation import KNOWN_EPISODES, Episode, episodes_apply, evaluate_episodes
from quantlab_assets.compute.universe import UniverseSpec, load_universe_catalog, universe_frame

PERTURBATION = "perturbation"
EPISODE = "episode"
RUN_COLUMNS = {
    PERTURBATION: pl.String, EPISODE: pl.String, "trading_days": pl.Int64, "crisis_days": pl.Int64,
    "crisis_share": pl.Float64, "required": pl.String, "passed": pl.Boolean,
}


@dataclass(frozen=True)
class Perturbation:
    """One change to a labelling run (module docstring); the default changes nothing."""

    name: str
    drop_tickers: tuple[str, ...] = ()
    return_noise: float = 0.0
    noise_seed: int = 0
    train_end_shift_months: int = 0

    def bars(self, bars: pl.DataFrame) -> pl.DataFrame:
        """The cleaned bars with this perturbation's instruments left out and its noise added to log_return."""
        kept = bars.filter(~pl.col(c.TICKER).is_in(list(self.drop_tickers)))
        if self.return_noise == 0.0:
            return kept
        noise = np.random.default_rng(self.noise_seed).normal(0.0, self.return_noise, kept.height)
        return kept.with_columns(pl.col(c.LOG_RETURN) + pl.Series(noise))

    def train_end(self, train_end: dt.date) -> dt.date:
        return pl.select(pl.lit(train_end).dt.offset_by(f"{self.train_end_shift_months}mo")).item()


BASELINE = Perturbation("baseline")


def default_perturbations(drop_tickers: Sequence[str]) -> tuple[Perturbation, ...]:
    """The baseline; each of `drop_tickers` left out; two 10-bp jitters; the training end a year earlier,
    half a year later and a year later."""
    return (
        BASELINE,
        *(Perturbation(f"drop_{ticker}", drop_tickers=(ticker,)) for ticker in drop_tickers),
        *(Perturbation(f"jitter_10bp_seed{seed}", return_noise=0.001, noise_seed=seed) for seed in (1, 2)),
        *(Perturbation(f"train_end_{months:+d}mo", train_end_shift_months=months) for months in (-12, 6, 12)),
    )


def market_state_of_bars(bars: pl.DataFrame, universe: pl.DataFrame, benchmark: str | None) -> pl.DataFrame:
    """The market state of cleaned bars, through the lab's features (as the features and market_state assets)."""
    return compute_market_state(compute_features(bars, universe, benchmark=benchmark).frame, universe)


def labels_of_market_state(state: pl.DataFrame, train_end: dt.date, params: HmmParams = HmmParams()) -> pl.DataFrame:
    """Regime labels per date after train_end (as regime_hmm, regime_hmm_params and regime_labels chain them)."""
    result = filtered_regimes(state, train_end, params)
    return label_dates(result.probabilities, label_states(state_statistics(parameters_frame(result))))


def label_robustness(
    bars: pl.DataFrame,
    universe: pl.DataFrame,
    benchmark: str | None,
    train_end: dt.date,
    perturbations: Sequence[Perturbation],
    params: HmmParams = HmmParams(),
    episodes: tuple[Episode, ...] = KNOWN_EPISODES,
) -> pl.DataFrame:
    """One row per perturbation and episode (RUN_COLUMNS): the episode report of that run's labels."""
    states: dict[tuple[tuple[str, ...], float, int], pl.DataFrame] = {}
    rows = []
    for perturbation in perturbations:
        # Runs that change only the training end share their market state.
        key = (perturbation.drop_tickers, perturbation.return_noise, perturbation.noise_seed)
        if key not in states:
            states[key] = market_state_of_bars(perturbation.bars(bars), universe, benchmark)
        labels = labels_of_market_state(states[key], perturbation.train_end(train_end), params)
        rows += [
            {PERTURBATION: perturbation.name, EPISODE: report.name, "trading_days": report.trading_days,
             "crisis_days": report.crisis_days, "crisis_share": report.crisis_share, "required": report.required,
             "passed": report.passed}
            for report in evaluate_episodes(labels, episodes)
        ]
    return pl.DataFrame(rows, schema=RUN_COLUMNS)


def crisis_hit_rates(runs: pl.DataFrame) -> pl.DataFrame:
    """Per episode with a requirement: runs scored, runs passed, their share, and the crisis share's range."""
    return (
        runs.filter(pl.col("passed").is_not_null())
        .group_by(EPISODE, "required", maintain_order=True)
        .agg(
            pl.len().alias("runs"),
            pl.col("passed").sum().cast(pl.Int64).alias("passed"),
            pl.col("passed").mean().alias("hit_rate"),
            pl.col("crisis_share").min().alias("min_crisis_share"),
            pl.col("crisis_share").max().alias("max_crisis_share"),
            pl.col(PERTURBATION).filter(~pl.col("passed")).alias("failed_runs"),
        )
    )


def cleaned_universe_bars(spec: UniverseSpec, window: tuple[dt.date, dt.date], as_of: dt.date) -> pl.DataFrame:
    """The universe's bars of `window` from its source, cleaned as cleaned_bars cleans a run of that range
    (nothing before window[0] stored, so the cleaning's history starts there)."""
    raw = fetch_raw_bars(spec, *window, as_of=as_of).bars
    return clean_bars(
        raw, universe_frame(spec)[c.TICKER], window=window, as_of=as_of, holidays=spec.holidays,
        close_is_adjusted=spec.close_is_adjusted,
    ).cleaned


# Instruments left out one at a time by the command: the largest weights of sp500_sample's sectors.
COMMAND_DROPS = ("AAPL", "BAC", "XOM", "GE")


def main(argv: Sequence[str] | None = None) -> None:
    """Print the crisis days of every known episode per run and the required episodes' hit rates, as markdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("universe")
    parser.add_argument("first", type=dt.date.fromisoformat)
    parser.add_argument("last", type=dt.date.fromisoformat)
    args = parser.parse_args(argv)
    spec = load_universe_catalog()[args.universe]
    if not episodes_apply(spec.source):
        raise SystemExit(f"{args.universe}: the known episodes are dates of real markets, not of source {spec.source!r}")
    bars = cleaned_universe_bars(spec, (args.first, args.last), as_of=args.last + dt.timedelta(days=1))
    drops = [ticker for ticker in COMMAND_DROPS if ticker in bars[c.TICKER]]
    runs = label_robustness(bars, universe_frame(spec), spec.benchmark, spec.split.train_end, default_perturbations(drops))
    days = runs.with_columns(pl.format("{} of {}", "crisis_days", "trading_days").alias("days"))
    markdown = pl.Config(tbl_formatting="MARKDOWN", tbl_hide_column_data_types=True, tbl_hide_dataframe_shape=True,
                         tbl_rows=-1, tbl_cols=-1, tbl_width_chars=1000, fmt_str_lengths=1000)
    with markdown:
        print(days.pivot(on=EPISODE, index=PERTURBATION, values="days"))
        print()
        print(crisis_hit_rates(runs).with_columns(pl.col("failed_runs").list.join(", ")))

if __name__ == "__main__":
    main()
