"""No look-ahead: perturbing every bar after t leaves every feature at dates <= t bit-for-bit unchanged;
and the sampled check the asset runs catches a feature that reads the future."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.features.base import TICKER_ID
from quantlab_assets.compute.features.compute import compute_features
from quantlab_assets.compute.features.lookahead import perturb_after, sampled_lookahead_violations
from quantlab_assets.compute.features.registry import REGISTRY
from quantlab_assets.compute.features.windows import rolling_mean
from quantlab_assets_tests.compute.features.panels import synthetic_panel


@pytest.fixture(scope="module")
def baseline() -> pl.DataFrame:
    bars, universe = synthetic_panel()
    return compute_features(bars, universe).frame


def cut_dates(bars: pl.DataFrame) -> list[dt.date]:
    """Cut dates from the warm-up (day 5) to the day before the last."""
    dates = bars[c.DATE].unique().sort()
    return [dates[i] for i in (5, 130, 260, 390, dates.len() - 2)]


@pytest.mark.parametrize("position", range(5), ids=lambda i: f"cut{i}")
def test_perturbing_the_future_leaves_every_feature_up_to_t_unchanged(baseline: pl.DataFrame, position: int) -> None:
    bars, universe = synthetic_panel()
    cut = cut_dates(bars)[position]
    perturbed = perturb_after(bars, cut, np.random.default_rng(position))
    after = compute_features(perturbed, universe).frame
    past = pl.col(c.DATE) <= cut
    assert_frame_equal(after.filter(past), baseline.filter(past), check_exact=True)
    # The perturbation is real: features after the cut move.
    future = pl.col(c.DATE) > cut
    assert not after.filter(future)["ret_1d"].equals(baseline.filter(future)["ret_1d"])


def test_the_perturbation_changes_only_rows_after_the_cut() -> None:
    bars, _ = synthetic_panel()
    cut = cut_dates(bars)[2]
    perturbed = perturb_after(bars, cut, np.random.default_rng(0))
    assert_frame_equal(perturbed.filter(pl.col(c.DATE) <= cut), bars.filter(pl.col(c.DATE) <= cut))
    later_before, later_after = bars.filter(pl.col(c.DATE) > cut), perturbed.filter(pl.col(c.DATE) > cut)
    for name in (c.OPEN, c.HIGH, c.LOW, c.CLOSE, c.VOLUME):
        assert (later_before[name] != later_after[name]).mean() > 0.9, name
    assert (later_after[c.HIGH] >= later_after[c.LOW]).all()  # one price factor per row keeps OHLC consistent


def compute(bars: pl.DataFrame, universe: pl.DataFrame) -> pl.DataFrame:
    return compute_features(bars, universe).frame


def test_the_sampled_check_finds_nothing_in_the_lab_features() -> None:
    bars, universe = synthetic_panel()
    assert sampled_lookahead_violations(bars, universe, compute, 2, np.random.default_rng(1)) == []


@pytest.mark.parametrize(
    "leak",
    [
        pytest.param(lambda: pl.col(c.LOG_RETURN).shift(-1).over(TICKER_ID), id="next-return"),
        pytest.param(lambda: pl.col(c.CLOSE).rolling_mean(5, center=True).over(TICKER_ID), id="centred-window"),
        pytest.param(lambda: rolling_mean(pl.col(c.VOLUME), 3).shift(-2), id="shifted-back"),
        pytest.param(lambda: pl.col(c.LOG_RETURN).mean().over(c.TICKER), id="full-sample-mean"),
    ],
)
def test_the_sampled_check_catches_a_leaky_feature(leak: object) -> None:
    registry = REGISTRY.copy()
    registry.feature("leaky", family="price", lookback=1, description="reads the future on purpose")(leak)
    bars, universe = synthetic_panel()

    def leaky_compute(bars: pl.DataFrame, universe: pl.DataFrame) -> object:
        return compute_features(bars, universe, registry=registry)  # a FeatureResult is accepted too

    violations = sampled_lookahead_violations(bars, universe, leaky_compute, 2, np.random.default_rng(2))
    assert violations and all(": leaky:" in violation for violation in violations), violations


def test_explicit_cut_dates_are_used_as_given(baseline: pl.DataFrame) -> None:
    bars, universe = synthetic_panel()
    calls: list[int] = []

    def counting(bars: pl.DataFrame, universe: pl.DataFrame) -> pl.DataFrame:
        calls.append(bars.height)
        return baseline

    cuts = cut_dates(bars)[:3]
    assert sampled_lookahead_violations(bars, universe, counting, cuts, np.random.default_rng(0)) == []
    assert len(calls) == 1 + len(cuts)
