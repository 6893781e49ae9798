"""raw_ohlcv from Yahoo through a real materialisation: a transient error is retried, an unknown ticker is
set aside and named, and the other tickers' bars land (recorded responses, no network)."""

import dataclasses
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import pytest
from curl_cffi.requests.models import Response

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.universe import UniverseSpec
from quantlab_assets.defs.assets.data import raw_ohlcv
from quantlab_assets.defs.io_managers import PartitionedParquetIOManager
from quantlab_assets.defs.resources import MarketDataResource
from quantlab_assets_tests.compute.test_yfinance_source import (  # noqa: F401 - fixtures used by name
    FakeYahoo,
    _no_network,
    _yfinance_caches_in_tmp,
)

pytestmark = pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")

UNIVERSE = "yfinance_us_large_caps"
PARTITION = f"2024-02-01|{UNIVERSE}"
KNOWN, UNKNOWN = ("AAPL", "MSFT"), "NVDA"  # the fake knows only the recorded charts: NVDA answers 404


class FlakyYahoo(FakeYahoo):
    """MSFT's first two requests for bars answer 503 (Yahoo throttling); later ones answer normally.

    Two, because yfinance itself repeats a chart request once; the second 503 reaches the source's retry.
    Only requests for a date range count: yfinance's time-zone lookups go to the same endpoint.
    """

    def __init__(self) -> None:
        super().__init__()
        self.failures_left = {"MSFT": 2}

    def request(self, method: str, url: str, params: dict[str, Any] | None = None, **kwargs: Any) -> Response:
        symbol = url.rsplit("/", 1)[-1]
        if "/v8/finance/chart/" in url and "period1" in (params or {}) and self.failures_left.get(symbol, 0):
            self.failures_left[symbol] -= 1
            self.outages[symbol] = 503
            try:
                return super().request(method, url, params=params, **kwargs)
            finally:
                del self.outages[symbol]
        return super().request(method, url, params=params, **kwargs)


YAHOO = FlakyYahoo()


class RecordedYahooMarketData(MarketDataResource):
    """The packaged yfinance universe narrowed to three tickers, fetched through the recorded fake."""

    def universe(self, name: str) -> UniverseSpec:
        spec = super().universe(name)
        instruments = spec.instruments.filter(pl.col(c.TICKER).is_in([*KNOWN, UNKNOWN]))
        return dataclasses.replace(spec, instruments=instruments, options={**spec.options, "backoff_seconds": 0.01})

    def http_session(self) -> Any:
        return YAHOO


def test_a_transient_error_is_retried_and_an_unknown_ticker_is_set_aside_while_the_rest_lands(tmp_path: Path) -> None:
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = dg.materialize(
            [raw_ohlcv], partition_key=PARTITION, instance=instance,
            resources={"io_manager": PartitionedParquetIOManager(base_dir=str(tmp_path / "data")),
                       "market_data": RecordedYahooMarketData(as_of="2024-02-29")},
        )
    assert result.success
    (materialisation,) = result.asset_materializations_for_node("raw_ohlcv")
    notes = materialisation.metadata["by_universe"].value[UNIVERSE]
    assert (notes["unknown_tickers"], notes["failed_batches"], notes["retries"]) == ([UNKNOWN], [], 1)
    stored = pl.read_parquet(tmp_path / "data" / "raw_ohlcv" / UNIVERSE / "2024-02.parquet")
    assert set(stored[c.TICKER]) == set(KNOWN)
    assert stored.filter(pl.col(c.TICKER) == "MSFT").height == 7  # every recorded MSFT bar, after the retry
    assert YAHOO.failures_left == {"MSFT": 0} and YAHOO.unexpected == []
