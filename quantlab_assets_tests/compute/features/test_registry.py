"""The feature registry: one function and one decorator line add a feature to the output."""

from __future__ import annotations

import math

import polars as pl
import pytest

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.features.compute import FeatureParams, compute_features
from quantlab_assets.compute.features.registry import FAMILIES, REGISTRY, FeatureRegistry, FeatureSpec
from quantlab_assets.compute.features.windows import rolling_mean
from quantlab_assets_tests.compute.features.panels import bars_frame, column, random_walks, universe_frame

ISSUE_FEATURES = {
    "price": ["ret_1d", "ret_252d", "vol_5d", "vol_252d", "mom_21d", "mdd_21d", "mdd_252d"],
    "technical": [
        "mom_12_1", "reversal_1m", "ma_gap_20", "ma_gap_50", "ma_gap_200", "rsi_14", "dd_252d", "days_since_high_252d",
    ],
    "microstructure": ["volume_ratio_5d_63d", "volume_ratio_21d_63d", "turnover_21d", "amihud_21d"],
    "cross_asset": [
        "corr_21d", "corr_63d", "corr_126d", "beta_63d", "beta_126d", "beta_252d", "rel_strength_21d",
        "rel_strength_63d", "rel_strength_126d", "rank_ret_21d", "rank_vol_21d", "rank_mom_12_1",
    ],
    "regime": [
        "vol_ratio_21d_126d", "volume_shock_5d", "volume_shock_21d", "gap_mean_21d", "gap_std_21d", "gap_maxabs_21d",
        "breadth_up", "breadth_above_ma50", "adv_decline_ratio", "breadth_ma_21d",
    ],
}


def test_the_issue_features_are_registered_in_their_families() -> None:
    for family, names in ISSUE_FEATURES.items():
        for name in names:
            assert REGISTRY[name].family == family, name
    assert {spec.family for spec in REGISTRY} == set(FAMILIES)
    described = REGISTRY.describe()
    assert described.height == len(REGISTRY.output_names) and described["description"].str.len_chars().min() > 20


def test_adding_a_feature_makes_it_appear_in_the_output() -> None:
    registry = REGISTRY.copy()

    @registry.feature(
        "log_volume_vs_mean_{w}d", windows=(3, 7), family="technical", lookback=lambda w: w,
        description="Test feature: log volume over its {w}-day mean.",
    )
    def log_volume_vs_mean(window: int) -> pl.Expr:
        return pl.col(c.VOLUME).log() - rolling_mean(pl.col(c.VOLUME), window).log()

    assert log_volume_vs_mean(3) is not None  # the decorated function stays callable
    bars = bars_frame(random_walks(["A", "B"], 12, seed=1), volumes={"A": [float(v) for v in range(1, 13)]})
    frame = compute_features(bars, universe_frame(["A", "B"]), registry=registry).frame
    first_variant = next(i for i, name in enumerate(frame.columns) if "__" in name)
    assert frame.columns[first_variant - 2 : first_variant] == ["log_volume_vs_mean_3d", "log_volume_vs_mean_7d"]
    values = column(frame, "A", "log_volume_vs_mean_3d")
    assert values[2] == pytest.approx(math.log(3.0) - math.log(2.0))  # volumes 1, 2, 3: mean 2
    assert "log_volume_vs_mean_3d" not in REGISTRY  # the lab's registry is untouched
    assert "log_volume_vs_mean_3d" not in compute_features(bars, universe_frame(["A", "B"])).frame.columns


def test_windows_expand_into_one_feature_each_with_formatted_texts() -> None:
    registry = FeatureRegistry()

    @registry.feature("x_{w}d", windows=(2, 5), family="price", lookback=lambda w: w + 1, description="x over {w} days")
    def x(window: int) -> pl.Expr:
        return pl.lit(float(window))

    assert registry.names == ["x_2d", "x_5d"]
    assert registry["x_5d"].description == "x over 5 days"
    assert (registry["x_5d"].lookback, registry["x_5d"].warmup) == (6, 5)

    @registry.feature("y", family="price", scope="row", inputs=("x_5d",), description="y from x")
    def y() -> pl.Expr:
        return pl.col("x_5d")

    assert (registry["y"].lookback, registry["y"].warmup) == (6, 5)  # derived from the input
    assert [spec.name for spec in registry.closure(["y"])] == ["x_5d", "y"]
    assert registry.without("x_5d").names == ["x_2d"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"name": "ret_1d"}, "already registered", id="duplicate"),
        pytest.param({"name": "z", "inputs": ("nope",), "scope": "row"}, "not registered", id="unknown-input"),
        pytest.param({"name": "z", "inputs": ("rank_ret_21d",), "scope": "row"}, "cannot read", id="scope-order"),
        pytest.param({"name": "z", "family": "astrology"}, "family", id="family"),
        pytest.param({"name": "_z"}, "hidden", id="hidden-name"),
        pytest.param({"name": "z__wz"}, "reserved", id="suffix"),
    ],
)
def test_malformed_features_are_refused(kwargs: dict[str, object], message: str) -> None:
    registry = REGISTRY.copy()
    options: dict[str, object] = {"family": "price", "description": "test", "lookback": 1} | kwargs
    name = options.pop("name")
    with pytest.raises(ValueError, match=message):
        registry.feature(name, **options)(lambda: pl.lit(0.0))  # type: ignore[arg-type]


def test_specs_are_frozen() -> None:
    spec = REGISTRY["ret_1d"]
    assert isinstance(spec, FeatureSpec)
    with pytest.raises(AttributeError):
        spec.lookback = 3  # type: ignore[misc]


def test_params_can_select_a_subset() -> None:
    bars = bars_frame(random_walks(["A"], 30, seed=2))
    params = FeatureParams(features=("ret_5d", "ma_gap_20"), industry_z_features=(), rolling_z_features=())
    frame = compute_features(bars, universe_frame(["A"]), params=params).frame
    assert frame.columns == [c.DATE, c.TICKER, "ret_5d", "ma_gap_20"]  # registry order
