"""Market state from a hand-made features panel: constituents only, trailing windows, no look-ahead."""

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.regimes import market_state
from quantlab_assets.compute.regimes.market_state import compute_market_state, truncation_violations

UNIVERSE = pl.DataFrame({
    c.TICKER: ["AAA", "BBB", "CCC", "IDX"], c.SECTOR: ["Tech", "Energy", "Tech", "Index"],
    c.TRADABLE: [True, True, True, False],  # the index measures the market and is not part of it
})


def features_panel(n_days: int = 60, seed: int = 0, identical: bool = False) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    dates = [dt.date(2020, 1, 1) + dt.timedelta(days=i) for i in range(n_days)]
    common = rng.normal(0, 0.01, n_days)
    rows = []
    for ticker in UNIVERSE[c.TICKER]:
        own = common if identical else common + rng.normal(0, 0.01, n_days)
        rows.append(pl.DataFrame({
            c.DATE: dates, c.TICKER: ticker, "ret_1d": own, "vol_21d": pl.Series(own).rolling_std(21) * math.sqrt(252),
            "vol_ratio_21d_126d": rng.uniform(0.5, 1.5, n_days), "breadth_ma_21d": 0.5, "breadth_above_ma50": 0.6,
            "volume_shock_21d": rng.normal(0, 0.1, n_days) if ticker == "IDX" else None,
        }, schema_overrides={"volume_shock_21d": pl.Float64}))
    return pl.concat(rows)


def test_market_is_the_equal_weighted_constituents() -> None:
    panel = features_panel()
    state = compute_market_state(panel, UNIVERSE)
    members = panel.filter(pl.col(c.TICKER) != "IDX")
    expected = members.group_by(c.DATE).agg(pl.col("ret_1d").mean()).sort(c.DATE)["ret_1d"]
    np.testing.assert_allclose(state["market_return_1d"], expected, rtol=1e-12)
    assert state["constituents"].unique().to_list() == [3]
    window = expected.tail(21)
    assert state["market_return_21d"][-1] == pytest.approx(window.sum(), rel=1e-12)
    assert state["market_vol_21d"][-1] == pytest.approx(window.std() * math.sqrt(252), rel=1e-12)
    assert state["market_vol_21d"].head(20).null_count() == 20
    # The index is the only instrument with volume: volume shock comes from all instruments, not only constituents.
    assert state["volume_shock_21d"].null_count() == 0


def test_identical_constituents_are_perfectly_correlated() -> None:
    state = compute_market_state(features_panel(identical=True), UNIVERSE)
    assert state["average_correlation_21d"].drop_nulls().len() > 0
    # sum(s_i^2)/N^2 equals (sum(s_i)/N)^2 / N here, so the implied correlation is exactly 1 up to rounding.
    np.testing.assert_allclose(state["average_correlation_21d"].drop_nulls(), 1.0, atol=1e-9)


def test_no_lookahead_under_truncation() -> None:
    panel = features_panel(n_days=90, seed=3)
    cuts = [dt.date(2020, 1, 25), dt.date(2020, 2, 20), dt.date(2020, 3, 10)]
    assert truncation_violations(panel, UNIVERSE, cuts) == []


def test_the_truncation_check_catches_a_leak(monkeypatch: pytest.MonkeyPatch) -> None:
    """A market state that reads 3 dates ahead must be reported: the check is not vacuous."""
    honest = market_state.compute_market_state

    def leaky(features: pl.DataFrame, universe: pl.DataFrame) -> pl.DataFrame:
        return honest(features, universe).with_columns(pl.col("market_return_1d").shift(-3))

    monkeypatch.setattr(market_state, "compute_market_state", leaky)
    violations = truncation_violations(features_panel(n_days=90, seed=3), UNIVERSE, [dt.date(2020, 2, 20)])
    assert violations == ["market state up to 2020-02-20 changes when the features after 2020-02-20 are removed"]


def test_empty_and_incomplete_inputs() -> None:
    assert compute_market_state(pl.DataFrame(), UNIVERSE).height == 0
    with pytest.raises(ValueError, match="vol_21d"):
        compute_market_state(features_panel().drop("vol_21d"), UNIVERSE)
