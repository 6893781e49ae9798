"""Robustness runs of the crisis validation: perturbations of the bars and the training end, hit rates by hand.

The runs on the real sp500_sample data are in test_validation.py."""

import datetime as dt

import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.regimes.robustness import (
    BASELINE,
    RUN_COLUMNS,
    Perturbation,
    crisis_hit_rates,
    default_perturbations,
)

BARS = pl.DataFrame({
    c.DATE: [dt.date(2020, 1, 2)] * 3 + [dt.date(2020, 1, 3)] * 3,
    c.TICKER: ["A", "B", "C"] * 2,
    c.LOG_RETURN: [None, 0.01, -0.02, 0.03, None, 0.0],
})


def test_baseline_changes_nothing() -> None:
    assert BASELINE.bars(BARS).equals(BARS)
    assert BASELINE.train_end(dt.date(2004, 12, 31)) == dt.date(2004, 12, 31)


def test_dropping_and_jittering_are_seeded_and_leave_missing_returns_missing() -> None:
    dropped = Perturbation("drop_B", drop_tickers=("B",)).bars(BARS)
    assert dropped[c.TICKER].to_list() == ["A", "C", "A", "C"]
    jitter = Perturbation("jitter", return_noise=0.001, noise_seed=3)
    once, again = jitter.bars(BARS), jitter.bars(BARS)
    assert once.equals(again)
    assert once[c.LOG_RETURN].is_null().to_list() == BARS[c.LOG_RETURN].is_null().to_list()
    moved = (once[c.LOG_RETURN] - BARS[c.LOG_RETURN]).drop_nulls()
    assert moved.abs().max() < 0.005 and (moved != 0).all()
    other_seed = Perturbation("jitter", return_noise=0.001, noise_seed=4).bars(BARS)
    assert not other_seed.equals(once)


def test_training_end_moves_by_calendar_months() -> None:
    assert Perturbation("later", train_end_shift_months=6).train_end(dt.date(2004, 12, 31)) == dt.date(2005, 6, 30)
    assert Perturbation("earlier", train_end_shift_months=-12).train_end(dt.date(2004, 12, 31)) == dt.date(2003, 12, 31)


def test_default_perturbations_are_named_once() -> None:
    names = [p.name for p in default_perturbations(["AAPL", "BAC"])]
    assert names[0] == "baseline" and {"drop_AAPL", "drop_BAC", "train_end_+6mo"} <= set(names)
    assert len(names) == len(set(names))


def test_hit_rates_count_passing_runs_per_episode_and_ignore_unscored_ones() -> None:
    runs = pl.DataFrame(
        [
            ("baseline", "crash", 48, 46, 0.9583, "crisis share >= 75%", True),
            ("drop_X", "crash", 48, 33, 0.6875, "crisis share >= 75%", False),
            ("baseline", "calm", 251, 0, 0.0, "crisis share <= 0%", True),
            ("drop_X", "calm", 251, 0, 0.0, "crisis share <= 0%", True),
            ("baseline", "reported", 65, 10, 0.1538, "reported only", None),
        ],
        schema=RUN_COLUMNS, orient="row",
    )
    rates = crisis_hit_rates(runs)
    assert rates["episode"].to_list() == ["crash", "calm"]
    assert rates["runs"].to_list() == [2, 2] and rates["passed"].to_list() == [1, 2]
    assert rates["hit_rate"].to_list() == [0.5, 1.0]
    assert rates["min_crisis_share"].to_list() == [0.6875, 0.0] and rates["failed_runs"].to_list() == [["drop_X"], []]
