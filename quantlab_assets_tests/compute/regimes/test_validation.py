"""Crisis validation: shares and delays on hand-made labels, and the exit criterion on the real sp500_sample data."""

import datetime as dt

import polars as pl
import pytest

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.regimes.labels import BEAR, CRISIS, LOW_VOL_BULL
from quantlab_assets.compute.regimes.validation import Episode, evaluate_episodes

EPISODE = Episode("test_crash", dt.date(2020, 1, 6), dt.date(2020, 1, 17), min_crisis_share=0.5)


def weekday_labels(first: dt.date, ids: list[int]) -> pl.DataFrame:
    dates = pl.date_range(first, first + dt.timedelta(days=3 * len(ids)), eager=True)
    return pl.DataFrame({c.DATE: dates.filter(dates.dt.weekday() <= 5).head(len(ids)), "regime_id": ids})


def test_share_delay_and_coverage() -> None:
    # 2020-01-01 .. : Wed Thu Fri | Mon 6 .. Fri 17 (10 days): crisis from Wed 8 on, 8 of 10 | Mon 20 ..
    ids = [LOW_VOL_BULL] * 3 + [BEAR, BEAR] + [CRISIS] * 8 + [LOW_VOL_BULL] * 3
    report = evaluate_episodes(weekday_labels(dt.date(2020, 1, 1), ids), (EPISODE,))[0]
    assert (report.trading_days, report.crisis_days, report.crisis_share) == (10, 8, 0.8)
    assert report.first_crisis == dt.date(2020, 1, 8) and report.delay_trading_days == 2
    assert report.crisis_day_before is False and report.covered and report.passed


def test_uncovered_and_failed_windows() -> None:
    late = evaluate_episodes(weekday_labels(dt.date(2020, 1, 13), [CRISIS] * 10), (EPISODE,))[0]
    assert not late.covered and late.passed is None
    calm = evaluate_episodes(weekday_labels(dt.date(2020, 1, 1), [LOW_VOL_BULL] * 20), (EPISODE,))[0]
    assert calm.covered and calm.passed is False and calm.delay_trading_days is None


@pytest.fixture(scope="module")
def sp500_labels() -> pl.DataFrame:
    """The shipped pipeline on the real sp500_sample data: clean -> features -> market state -> HMM -> labels."""
    from quantlab_assets.compute.data.cleaning import clean_bars
    from quantlab_assets.compute.data.sources import fetch_raw_bars
    from quantlab_assets.compute.features.compute import compute_features
    from quantlab_assets.compute.regimes.hmm import HmmParams, filtered_regimes, parameters_frame
    from quantlab_assets.compute.regimes.labels import label_dates, label_states, state_statistics
    from quantlab_assets.compute.regimes.market_state import compute_market_state
    from quantlab_assets.compute.universe import load_universe_catalog, universe_frame

    spec = load_universe_catalog()["sp500_sample"]
    first, last = dt.date(1990, 1, 1), dt.date(2022, 12, 31)
    raw = fetch_raw_bars(spec, first, last, as_of=dt.date(2023, 1, 1)).bars
    universe = universe_frame(spec)
    bars = clean_bars(
        raw, universe[c.TICKER], window=(first, last), as_of=dt.date(2023, 1, 1), close_is_adjusted=spec.close_is_adjusted
    ).cleaned
    state = compute_market_state(compute_features(bars, universe, benchmark=spec.benchmark).frame, universe)
    result = filtered_regimes(state, spec.split.train_end, HmmParams())
    return label_dates(result.probabilities, label_states(state_statistics(parameters_frame(result))))


def test_real_crises_are_crisis_and_2017_is_not(sp500_labels: pl.DataFrame) -> None:
    """The issue's exit criterion, with the default HMM (4 states, yearly refits from 2005)."""
    reports = {report.name: report for report in evaluate_episodes(sp500_labels)}
    for name in ("gfc_autumn_2008", "covid_crash_2020", "calm_2017"):
        assert reports[name].covered and reports[name].passed, reports[name]
    assert reports["gfc_autumn_2008"].crisis_share >= 0.75 and reports["covid_crash_2020"].crisis_share >= 0.75
    assert reports["calm_2017"].crisis_days == 0
    # A filter cannot see the future, but it flags both crashes within 5 trading days of their onset.
    assert reports["gfc_autumn_2008"].delay_trading_days <= 5 and reports["covid_crash_2020"].delay_trading_days <= 5
