"""Crisis validation: shares and delays on hand-made labels, and the exit criterion on the real sp500_sample data
(the README's run, and small changes to its inputs)."""

import datetime as dt

import polars as pl
import pytest

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.regimes.labels import BEAR, CRISIS, LOW_VOL_BULL
from quantlab_assets.compute.regimes.robustness import (
    Perturbation,
    cleaned_universe_bars,
    crisis_hit_rates,
    label_robustness,
    labels_of_market_state,
    market_state_of_bars,
)
from quantlab_assets.compute.regimes.validation import Episode, evaluate_episodes
from quantlab_assets.compute.universe import load_universe_catalog, universe_frame

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


# The README's run: bars from 1991-01 to 2022-12, nothing before 1991 stored (cleaning's history starts there).
README_RANGE = (dt.date(1991, 1, 1), dt.date(2022, 12, 31))
AS_OF = dt.date(2023, 1, 1)
REQUIRED = ("gfc_autumn_2008", "covid_crash_2020", "calm_2017")


@pytest.fixture(scope="module")
def sp500_inputs() -> dict:
    """The real sp500_sample bars of the README's range, cleaned as cleaned_bars cleans them."""
    spec = load_universe_catalog()["sp500_sample"]
    return {"bars": cleaned_universe_bars(spec, README_RANGE, as_of=AS_OF), "universe": universe_frame(spec),
            "benchmark": spec.benchmark, "train_end": spec.split.train_end}


@pytest.mark.slow
def test_real_crises_are_crisis_and_2017_is_not(sp500_inputs: dict) -> None:
    """The exit criterion on the README's sp500_sample run: packaged bars -> cleaning -> features -> market
    state -> HMM -> labels, with the default HMM (4 states, yearly refits from 2005)."""
    state = market_state_of_bars(sp500_inputs["bars"], sp500_inputs["universe"], sp500_inputs["benchmark"])
    reports = {report.name: report for report in evaluate_episodes(labels_of_market_state(state, sp500_inputs["train_end"]))}
    for name in REQUIRED:
        assert reports[name].covered and reports[name].passed, reports[name]
    # A filter cannot see the future, but it flags both crashes within 5 trading days of their onset.
    assert reports["gfc_autumn_2008"].delay_trading_days <= 5 and reports["covid_crash_2020"].delay_trading_days <= 5


@pytest.mark.slow
def test_real_crises_survive_small_input_changes(sp500_inputs: dict) -> None:
    """Changes under which the HMM's former random start (random_state 7) labelled March 2020 Crisis on
    only 34-35 of 48 days (AAPL or GE left out, the training end half a year later), and a jitter of
    10 bp a day, about the rounding noise of a price feed."""
    perturbations = (
        Perturbation("drop_AAPL", drop_tickers=("AAPL",)),
        Perturbation("drop_GE", drop_tickers=("GE",)),
        Perturbation("jitter_10bp_seed1", return_noise=0.001, noise_seed=1),
        Perturbation("train_end_+6mo", train_end_shift_months=6),
    )
    runs = label_robustness(sp500_inputs["bars"], sp500_inputs["universe"], sp500_inputs["benchmark"],
                            sp500_inputs["train_end"], perturbations)
    rates = crisis_hit_rates(runs)
    assert sorted(rates["episode"].to_list()) == sorted(REQUIRED)
    failed = runs.filter(~pl.col("passed")).select("perturbation", "episode", "crisis_days", "trading_days")
    assert rates["hit_rate"].to_list() == [1.0] * len(REQUIRED), failed.rows()


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="known weakness: without XOM the most volatile state of the 1991-2019 fit "
                   "has a lower mean correlation (0.27) than the Transition state (0.36), and March 2020's record "
                   "correlation keeps 2020-02-25..2020-03-11 in Transition: Crisis on 35 of 48 days")
def test_march_2020_without_xom(sp500_inputs: dict) -> None:
    runs = label_robustness(sp500_inputs["bars"], sp500_inputs["universe"], sp500_inputs["benchmark"],
                            sp500_inputs["train_end"], (Perturbation("drop_XOM", drop_tickers=("XOM",)),))
    assert runs.filter(pl.col("episode") == "covid_crash_2020")["passed"].item()
