"""Shared fixtures of the test suite (builders of the frames they hold: quantlab_assets_tests/compute/builders.py)."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.raw import as_raw_frame
from quantlab_assets.compute.data.synthetic import SyntheticMarket, SyntheticMarketParams, generate_synthetic_market
from quantlab_assets_tests.compute.builders import SMALL_MARKET_PARAMS, SYNTHETIC_SOURCE_FILE, bar, raw_frame


@pytest.fixture(scope="session")
def small_market_params() -> SyntheticMarketParams:
    return SMALL_MARKET_PARAMS


@pytest.fixture(scope="session")
def small_market(small_market_params: SyntheticMarketParams) -> SyntheticMarket:
    return generate_synthetic_market(small_market_params)


@pytest.fixture(scope="session")
def small_raw(small_market: SyntheticMarket) -> pl.DataFrame:
    """The small market's bars as raw bars (source_row = position in the panel)."""
    return as_raw_frame(small_market.bars, source="synthetic", source_file=SYNTHETIC_SOURCE_FILE)


@pytest.fixture(scope="session")
def small_tickers(small_market: SyntheticMarket) -> list[str]:
    return small_market.universe[c.TICKER].to_list()


@pytest.fixture(scope="session")
def dirty_small_raw(small_raw: pl.DataFrame, small_tickers: list[str]) -> pl.DataFrame:
    """The small market's raw bars with rows that trip the row rules a synthetic panel cannot produce.

    Two received bars get a NaN close; appended at the end (so the original of a duplicate arrives first):
    a duplicate with a different close, a Saturday bar, an unknown instrument, a null ticker and an
    unparseable value (a second row for its date, but the parse error is judged first).
    """
    first = small_raw.filter(pl.col(c.TICKER) == small_tickers[2]).sort(c.DATE)
    picked = first[[300, 310, 320, 330, 340, 350]]
    nan_close = pl.col(c.SOURCE_ROW).is_in(
        small_raw.filter(pl.col(c.DATE).is_in(picked[c.DATE][4:6].implode()) & (pl.col(c.TICKER) == small_tickers[4]))[
            c.SOURCE_ROW
        ].implode()
    )
    with_nan = small_raw.with_columns(pl.when(nan_close).then(float("nan")).otherwise(pl.col(c.CLOSE)).alias(c.CLOSE))
    extra = [
        bar(picked[c.DATE][0], small_tickers[2], picked[c.CLOSE][0] * 1.01),
        bar(dt.date(2020, 6, 13), small_tickers[2], 50.0),
        bar(picked[c.DATE][1], "NOT_IN_UNIVERSE", 50.0),
        bar(picked[c.DATE][2], None, 50.0),
        bar(picked[c.DATE][3], small_tickers[3], None, parse_error="close: n/a is not a number"),
    ]
    appended = raw_frame(extra, source_file="extra.csv").with_columns(pl.col(c.SOURCE_ROW) + 2)
    return pl.concat([with_nan, appended])


# --- Tiny torch models: one intra-op thread ---------------------------------------------------


@pytest.fixture(scope="module")
def one_torch_thread():
    """Torch on one thread for a module of tiny-model tests: their kernels are too small to split, and with
    pytest-xdist's two workers on two cores a second thread each only spins (measured: a 2-epoch pre-training
    took 0.2 s of CPU on one thread, 1.7-7.6 s on two under load)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
