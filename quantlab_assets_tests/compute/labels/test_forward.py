"""Forward returns, industry-relative forward returns and direction labels, on hand-computed examples
and against an independent loop implementation of the leave-one-out industry proxy."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.labels.compute import LabelParams, compute_labels
from quantlab_assets_tests.compute.builders import weekdays
from quantlab_assets_tests.compute.labels.helpers import bars_from_grid, universe_frame

NAN = math.nan
DAYS = weekdays(dt.date(2024, 1, 1), 100)  # bars_from_grid's days


def column(labels: pl.DataFrame, ticker: str, name: str) -> list:
    return labels.filter(pl.col(c.TICKER) == ticker).sort(c.DATE)[name].to_list()


def approx_list(values: list[float | None]) -> list:
    return [None if value is None else pytest.approx(value, abs=1e-15) for value in values]


@pytest.fixture(scope="module")
def two_tickers() -> pl.DataFrame:
    """A trades every day; B has no bar on day 3 (a gap). Log returns are set by hand."""
    returns = np.array(
        [[NAN, NAN], [0.01, 0.02], [-0.02, 0.01], [0.03, NAN], [0.005, 0.04], [-0.01, 0.0]]
    )
    close = 100 * np.exp(np.nan_to_num(returns).cumsum(axis=0))
    close[3, 1] = NAN
    return bars_from_grid(["A", "B"], close, log_return=returns)


def test_forward_returns_sum_the_next_k_daily_returns(two_tickers: pl.DataFrame) -> None:
    params = LabelParams(horizons=(1, 2), relative_horizons=())
    labels = compute_labels(two_tickers, universe_frame({"A": ("s", "i"), "B": ("s", "i")}), params)
    assert column(labels, "A", "fwd_return_1d") == approx_list([0.01, -0.02, 0.03, 0.005, -0.01, None])
    assert column(labels, "A", "fwd_return_2d") == approx_list([0.01 - 0.02, -0.02 + 0.03, 0.03 + 0.005, 0.005 - 0.01, None, None])
    assert column(labels, "A", "label_end_1d") == [*DAYS[1:6], None]
    assert column(labels, "A", "label_end_2d") == [*DAYS[2:6], None, None]
    # B's rows are days 0, 1, 2, 4, 5: a window over day 3 (no bar) has no label.
    assert column(labels, "B", "fwd_return_1d") == approx_list([0.02, 0.01, None, 0.0, None])
    assert column(labels, "B", "fwd_return_2d") == approx_list([0.02 + 0.01, None, None, None, None])
    assert column(labels, "B", "label_end_1d") == [DAYS[1], DAYS[2], None, DAYS[5], None]


def test_direction_is_the_sign_with_a_flat_band_that_includes_its_edge(two_tickers: pl.DataFrame) -> None:
    params = LabelParams(horizons=(1,), relative_horizons=(), flat_threshold=0.01)
    labels = compute_labels(two_tickers, universe_frame({"A": ("s", "i"), "B": ("s", "i")}), params)
    # fwd_return_1d of A: 0.01, -0.02, 0.03, 0.005, -0.01, null.
    assert column(labels, "A", "direction_1d") == [0, -1, 1, 0, 0, None]
    assert labels.schema["direction_1d"] == pl.Int8


def test_industry_relative_label_leaves_the_instrument_out_and_falls_back_to_sector_then_universe() -> None:
    """A, B, C share industry X; D is alone in industry Y (sector S1); E is alone in sector S2. C has no bar on day 2."""
    tickers = ["A", "B", "C", "D", "E"]
    returns = np.array(
        [
            [NAN] * 5,
            [0.01, 0.03, -0.01, 0.02, 0.05],
            [0.0, 0.01, NAN, -0.03, 0.01],
        ]
    )
    close = 100 * np.exp(np.nan_to_num(returns).cumsum(axis=0))
    close[2, 2] = NAN
    universe = universe_frame({"A": ("S1", "X"), "B": ("S1", "X"), "C": ("S1", "X"), "D": ("S1", "Y"), "E": ("S2", "Z")})
    labels = compute_labels(
        bars_from_grid(tickers, close, log_return=returns), universe, LabelParams(horizons=(1,), relative_horizons=(1, 2))
    )
    on = {day: dict(zip(*labels.filter(pl.col(c.DATE) == DAYS[day]).select(c.TICKER, "label_1d"), strict=True)) for day in (0, 1)}
    assert on[0] == {
        "A": pytest.approx(0.01 - (0.03 - 0.01) / 2),  # industry peers B, C
        "B": pytest.approx(0.03 - (0.01 - 0.01) / 2),
        "C": pytest.approx(-0.01 - (0.01 + 0.03) / 2),
        "D": pytest.approx(0.02 - (0.01 + 0.03 - 0.01) / 3),  # no industry peer: sector peers A, B, C
        "E": pytest.approx(0.05 - (0.01 + 0.03 - 0.01 + 0.02) / 4),  # alone in its sector: every other instrument
    }
    assert on[1] == {
        "A": pytest.approx(0.0 - 0.01),  # C has no bar on day 2: B is A's only peer
        "B": pytest.approx(0.01 - 0.0),
        "C": None,
        "D": pytest.approx(-0.03 - (0.0 + 0.01) / 2),
        "E": pytest.approx(0.01 - (0.0 + 0.01 - 0.03) / 3),
    }
    label_2d = dict(zip(*labels.filter(pl.col(c.DATE) == DAYS[0]).select(c.TICKER, "label_2d"), strict=True))
    assert label_2d["A"] == pytest.approx((0.01 - 0.01) + (0.0 - 0.01))
    assert label_2d["C"] is None
    # label_end of the 2-day window is there even though fwd_return_2d is not an output column.
    assert labels.filter(pl.col(c.DATE) == DAYS[0])["label_end_2d"].to_list() == [DAYS[2], DAYS[2], None, DAYS[2], DAYS[2]]


def _loop_peer_mean(returns: np.ndarray, day: int, ticker: int, groups: list[list[int]]) -> float:
    """Equal-weighted return of the other instruments of the first group level that has one with a return."""
    for level in groups:
        peers = [j for j in range(returns.shape[1]) if j != ticker and level[j] == level[ticker] and np.isfinite(returns[day, j])]
        if peers:
            return float(np.mean([returns[day, j] for j in peers]))
    return NAN


def test_industry_relative_label_equals_an_independent_loop_computation() -> None:
    rng = np.random.default_rng(7)
    n_days, horizons = 70, (3, 7)
    tickers = [f"T{i}" for i in range(8)]
    groups = {  # sector, industry: X has 3 members, Y 2, Z and W and V are alone (W, V alone in their sectors too)
        "T0": ("S1", "X"), "T1": ("S1", "X"), "T2": ("S1", "X"), "T3": ("S1", "Y"), "T4": ("S1", "Y"),
        "T5": ("S1", "Z"), "T6": ("S2", "W"), "T7": ("S3", "V"),
    }
    returns = rng.normal(0, 0.02, size=(n_days, len(tickers)))
    returns[rng.uniform(size=returns.shape) < 0.08] = NAN  # missing days
    returns[:20, 2] = NAN  # T2 lists late
    returns[45:, 4] = NAN  # T4 delists
    returns[0] = NAN
    close = 50 * np.exp(np.nan_to_num(returns).cumsum(axis=0))
    close[np.isnan(returns)] = NAN
    close[0] = 50.0
    labels = compute_labels(
        bars_from_grid(tickers, close, log_return=returns), universe_frame(groups),
        LabelParams(horizons=(1,), relative_horizons=horizons),
    )

    levels = [[groups[t][1] for t in tickers], [groups[t][0] for t in tickers], ["all"] * len(tickers)]
    proxy = np.array([[_loop_peer_mean(returns, d, i, levels) for i in range(len(tickers))] for d in range(n_days)])
    rows = []
    for d in range(n_days):
        for i, ticker in enumerate(tickers):
            if not np.isfinite(close[d, i]):
                continue
            row = {c.DATE: DAYS[d], c.TICKER: ticker}
            for k in horizons:
                window = range(d + 1, d + k + 1)
                complete = d + k < n_days and all(np.isfinite(returns[s, i]) for s in window)
                row[f"label_{k}d"] = sum(returns[s, i] - proxy[s, i] for s in window) if complete else None
            rows.append(row)
    expected = pl.DataFrame(rows, schema={c.DATE: pl.Date, c.TICKER: pl.String, "label_3d": pl.Float64, "label_7d": pl.Float64})

    got = labels.select(c.DATE, c.TICKER, "label_3d", "label_7d")
    assert got.select(c.DATE, c.TICKER).equals(expected.select(c.DATE, c.TICKER))
    for name in ("label_3d", "label_7d"):
        assert got[name].is_null().to_list() == expected[name].is_null().to_list()
        np.testing.assert_allclose(got[name].drop_nulls().to_numpy(), expected[name].drop_nulls().to_numpy(), rtol=0, atol=1e-12)
    assert expected["label_7d"].drop_nulls().len() > 150
    assert set(got.drop_nulls("label_3d")[c.TICKER]) == set(tickers)  # every fallback level was used
