"""compute_features as a whole: output contract, determinism, nulls only while windows fill, diagnostics."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.features.compute import (
    FEATURE_LOOKBACK_DAYS,
    INDUSTRY_Z_FEATURES,
    MAX_LOOKBACK_DAYS,
    ROLLING_Z_FEATURES,
    FeatureParams,
    compute_features,
    feature_lookback_days,
)
from quantlab_assets.compute.features.preprocessing import ROLLING_Z_WINDOW
from quantlab_assets.compute.features.registry import REGISTRY
from quantlab_assets_tests.compute.builders import shuffled
from quantlab_assets_tests.compute.features.panels import gap_free_panel, synthetic_panel, universe_frame

KEYS = [c.DATE, c.TICKER]


@pytest.fixture(scope="module")
def synthetic_features() -> pl.DataFrame:
    bars, universe = synthetic_panel()
    return compute_features(bars, universe).frame


def test_one_row_per_input_bar_sorted_by_date_and_ticker(synthetic_features: pl.DataFrame) -> None:
    bars, _ = synthetic_panel()
    assert synthetic_features.height == bars.height
    assert_frame_equal(synthetic_features.select(KEYS), bars.select(KEYS).sort(KEYS))
    expected = [
        *REGISTRY.output_names,
        *(name + "__wz" for name in INDUSTRY_Z_FEATURES),
        *(name + "__rz" for name in ROLLING_Z_FEATURES),
    ]
    assert synthetic_features.columns == [*KEYS, *expected]
    assert all(dtype == pl.Float64 for dtype in synthetic_features.select(expected).dtypes)


def test_row_order_of_the_input_does_not_matter(synthetic_features: pl.DataFrame) -> None:
    bars, universe = synthetic_panel()
    assert_frame_equal(compute_features(shuffled(bars, seed=1), universe).frame, synthetic_features, check_exact=True)


def test_deterministic(synthetic_features: pl.DataFrame) -> None:
    bars, universe = synthetic_panel()
    again = compute_features(bars, universe)
    assert_frame_equal(again.frame, synthetic_features, check_exact=True)


def test_no_nan_or_infinity_only_nulls(synthetic_features: pl.DataFrame) -> None:
    values = synthetic_features.drop(KEYS)
    bad = values.select(pl.all().is_nan().any() | pl.all().is_infinite().any()).row(0, named=True)
    assert not any(bad.values()), [name for name, flag in bad.items() if flag]


def leading_nulls(values: pl.Series) -> tuple[int, bool]:
    """(number of leading nulls, whether every later value is non-null)."""
    nulls = values.is_null().to_numpy()
    first = int(np.argmin(nulls)) if not nulls.all() else nulls.shape[0]
    return first, not nulls[first:].any()


def test_nulls_only_while_the_window_fills() -> None:
    """On complete data, each per-instrument feature is null on exactly its declared warm-up rows (e.g.
    ret_252d on the first 252 rows, whose first return is null), and never after."""
    bars, universe = gap_free_panel()
    one_industry = universe.with_columns(pl.lit("all").alias(c.INDUSTRY))
    frame = compute_features(bars, one_industry).frame
    assert frame.height == bars.height > 300
    for ticker in frame[c.TICKER].unique().sort():
        rows = frame.filter(pl.col(c.TICKER) == ticker)
        for spec in REGISTRY:
            if spec.hidden or spec.scope.startswith("market"):
                continue
            assert leading_nulls(rows[spec.name]) == (spec.warmup, True), (ticker, spec.name)
        for name in INDUSTRY_Z_FEATURES:
            assert leading_nulls(rows[name + "__wz"]) == (REGISTRY[name].warmup, True), (ticker, name)
        for name in ROLLING_Z_FEATURES:
            warmup = REGISTRY[name].warmup + ROLLING_Z_WINDOW - 1
            assert leading_nulls(rows[name + "__rz"]) == (warmup, True), (ticker, name)
    per_date = frame.group_by(c.DATE, maintain_order=True).first()
    for spec in REGISTRY:
        if spec.scope.startswith("market") and spec.name != "adv_decline_ratio":  # null on days nobody falls
            assert leading_nulls(per_date[spec.name]) == (spec.warmup, True), spec.name
    assert leading_nulls(frame.filter(pl.col(c.TICKER) == frame[c.TICKER][0])["ret_252d"]) == (252, True)


def test_lookback_covers_every_feature_within_thirteen_months() -> None:
    assert FEATURE_LOOKBACK_DAYS == feature_lookback_days()
    assert FEATURE_LOOKBACK_DAYS <= MAX_LOOKBACK_DAYS
    assert max(spec.lookback for spec in REGISTRY) == 252  # 252-day windows are the longest
    assert FEATURE_LOOKBACK_DAYS == max(REGISTRY[name].lookback + ROLLING_Z_WINDOW - 1 for name in ROLLING_Z_FEATURES)
    longer = FeatureParams(rolling_z_features=("ret_252d",))
    assert feature_lookback_days(params=longer) == 252 + 251


def test_diagnostics(synthetic_features: pl.DataFrame) -> None:
    bars, universe = synthetic_panel()
    result = compute_features(bars, universe, benchmark="SYN003")
    diagnostics = result.diagnostics
    assert diagnostics.feature_count == synthetic_features.width - 2
    assert diagnostics.rows == bars.height and diagnostics.instruments == universe.height
    assert diagnostics.benchmark_source == "ticker:SYN003"
    assert diagnostics.lookback_days == FEATURE_LOOKBACK_DAYS and diagnostics.compute_seconds > 0
    assert set(diagnostics.null_share) == set(synthetic_features.columns) - set(KEYS)
    assert diagnostics.null_share["ret_1d"] == pytest.approx(synthetic_features["ret_1d"].null_count() / bars.height)
    assert diagnostics.benchmark_missing_dates == 1  # the first date: no return yet
    # The benchmark changes cross-asset features only.
    differs = [name for name in synthetic_features.columns[2:] if not result.frame[name].equals(synthetic_features[name])]
    assert differs and all(name.startswith(("corr_", "beta_", "rel_strength_")) for name in differs)


def test_a_benchmark_without_bars_voids_cross_asset_features_instead_of_switching_series() -> None:
    # One definition per universe: a partition that loads none of the benchmark's bars must not fall back
    # to the equal-weighted mean, or the same date would get different betas in different partitions.
    bars, universe = synthetic_panel()
    result = compute_features(bars, universe, benchmark="NOT_THERE")
    assert result.diagnostics.benchmark_source == "ticker:NOT_THERE"
    assert result.diagnostics.benchmark_missing_dates == bars[c.DATE].n_unique()
    for name in result.frame.columns[2:]:
        if name.startswith(("corr_", "beta_", "rel_strength_")):
            assert result.frame[name].null_count() == bars.height, name


def test_a_subset_of_features_computes_their_inputs_without_outputting_them() -> None:
    bars, universe = synthetic_panel()
    params = FeatureParams(features=("rank_mom_12_1", "rsi_14"), industry_z_features=("rsi_14",), rolling_z_features=())
    frame = compute_features(bars, universe, params=params).frame
    assert frame.columns == [*KEYS, "rsi_14", "rank_mom_12_1", "rsi_14__wz"]
    assert frame["rank_mom_12_1"].drop_nulls().is_between(0.0, 1.0).all()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        pytest.param(FeatureParams(industry_z_features=("no_such",)), "unknown feature", id="unknown-variant"),
        pytest.param(FeatureParams(industry_z_features=("breadth_up",)), "market-wide", id="market-variant"),
        pytest.param(FeatureParams(features=("_rsi_gain",)), "hidden", id="hidden-output"),
    ],
)
def test_invalid_params_are_refused(params: FeatureParams, message: str) -> None:
    bars, universe = synthetic_panel()
    with pytest.raises((ValueError, KeyError), match=message):
        compute_features(bars, universe, params=params)


def test_missing_bar_columns_are_named() -> None:
    bars, universe = synthetic_panel()
    with pytest.raises(ValueError, match="volume"):
        compute_features(bars.drop(c.VOLUME), universe)


def test_empty_bars_give_an_empty_frame(synthetic_features: pl.DataFrame) -> None:
    bars, universe = synthetic_panel()
    result = compute_features(bars.clear(), universe)
    assert result.frame.height == 0 and result.frame.columns == synthetic_features.columns


def test_a_ticker_missing_from_the_universe_table_still_gets_features() -> None:
    bars, universe = synthetic_panel()
    partial = universe_frame(universe[c.TICKER].to_list()[:-1])
    frame = compute_features(bars, partial).frame
    assert frame.height == bars.height
    assert frame.filter(pl.col(c.TICKER) == universe[c.TICKER][-1])["ret_21d"].drop_nulls().len() > 0
