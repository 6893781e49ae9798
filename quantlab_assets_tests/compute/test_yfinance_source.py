"""download_yfinance_bars against recorded Yahoo responses, through yfinance's real HTTP and parsing code.

Yahoo is replaced at the lowest seam yfinance offers: the `session=` it sends every request through.
`FakeYahoo` is a genuine curl_cffi `Session` (yfinance rejects anything else) whose `request` answers
from fixtures with genuine curl_cffi `Response` objects, so yfinance's cookie/crumb handshake, timezone
lookup, chart parsing and multi-ticker reshaping all run unmodified, and nothing can reach the network:
a URL the fake does not know is recorded and fails the test.

Fixtures (`quantlab_assets_tests/fixtures/yfinance/`) are hand-written in the exact shape of Yahoo's v8
chart API (float32-rounded values, bars stamped at the 09:30 New York open, dividend events), with
approximate February 2024 prices. Three defects are deliberate, because raw bars must keep what Yahoo
sent and invent nothing: AAPL's 2024-02-15 bar has no open, MSFT's 2024-02-12 bar is all zeros, and MSFT
has no bar on 2024-02-13 (yfinance pads it with an all-NaN row, which must not become a bar).
`chart_not_found.json` is Yahoo's 404 body for a symbol it does not know.
`chart_AAPL_2020-08.json` holds AAPL from 2020-08-03 to 2020-09-03, across its 4:1 split of 2020-08-31 and
its 0.205-a-share (0.82 before the split) dividend that went ex on 2020-08-07; how it was built is in
the fixtures' README.md.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import polars as pl
import pytest
import yfinance as yf
from curl_cffi import requests as curl_requests
from curl_cffi.requests.exceptions import Timeout
from curl_cffi.requests.headers import Headers
from curl_cffi.requests.models import Response
from polars.testing import assert_frame_equal

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.cleaning import CleaningParams, clean_bars
from quantlab_assets.compute.data.raw import RAW_SCHEMA
from quantlab_assets.compute.data.yfinance_source import (
    YFinanceError,
    YFinanceParams,
    download_yfinance_bars,
)

# yfinance 1.7 still passes inplace=True to pandas 3.1, which warns on every parsed chart.
pytestmark = pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")

FIXTURES = Path(__file__).parents[1] / "fixtures" / "yfinance"
NEW_YORK = ZoneInfo("America/New_York")
START, END = dt.date(2024, 2, 7), dt.date(2024, 2, 16)
UNKNOWN = "NOTATICKER"
JSON = "application/json;charset=utf-8"
HTML = "text/html; charset=utf-8"

Outage = int | Exception  # an HTTP status to answer with, or an error to raise instead of answering


def _response(url: str, status: int, body: bytes, content_type: str = JSON) -> Response:
    response = Response()
    response.url = url
    response.status_code = status
    response.reason = HTTPStatus(status).phrase
    response.ok = status < 400
    response.content = body
    response.headers = Headers({"content-type": content_type})
    return response


def _json(url: str, status: int, document: object) -> Response:
    return _response(url, status, json.dumps(document).encode())


class FakeYahoo(curl_requests.Session):
    """Answers like Yahoo: the chart in `charts` for a known symbol, the 404 chart body for any other.

    `outages` makes a symbol's chart requests fail (HTTP status or raised error) until removed.
    """

    def __init__(self) -> None:
        super().__init__()
        self.charts = {symbol: (FIXTURES / f"chart_{symbol}.json").read_bytes() for symbol in ("AAPL", "MSFT")}
        self.outages: dict[str, Outage] = {}
        self.chart_requests: list[tuple[str, dict[str, Any]]] = []
        self.unexpected: list[str] = []

    def request(self, method: str, url: str, params: dict[str, Any] | None = None, **_: Any) -> Response:
        parts = urlsplit(url)
        if parts.path.startswith("/v8/finance/chart/"):
            symbol = parts.path.rsplit("/", 1)[1]
            self.chart_requests.append((symbol, dict(params or {})))
            return self._chart(url, symbol)
        # yfinance's cookie/crumb handshake (fc.yahoo.com answers 404 for real, with a cookie).
        if parts.hostname == "fc.yahoo.com":
            return _response(url, 404, b"<html><body>Not Found</body></html>", HTML)
        if parts.path == "/v1/test/getcrumb":
            return _response(url, 200, b"Fk3crumbQ1z", "text/plain;charset=utf-8")
        if parts.hostname == "guce.yahoo.com":  # no consent form outside the EU
            return _response(url, 200, b"<html><body></body></html>", HTML)
        # Ticker.info, yfinance's timezone fallback for a symbol whose chart request failed.
        if parts.path.startswith("/v10/finance/quoteSummary/"):
            symbol = parts.path.rsplit("/", 1)[1]
            error = {"code": "Not Found", "description": f"Quote not found for symbol: {symbol}"}
            return _json(url, 404, {"quoteSummary": {"result": None, "error": error}})
        if parts.path == "/v7/finance/quote":
            return _json(url, 200, {"quoteResponse": {"result": [], "error": None}})
        if parts.path.startswith("/ws/fundamentals-timeseries/"):
            return _json(url, 200, {"timeseries": {"result": [], "error": None}})
        self.unexpected.append(f"{method} {url}")
        raise AssertionError(f"FakeYahoo has no answer for {method} {url}")

    def _chart(self, url: str, symbol: str) -> Response:
        outage = self.outages.get(symbol)
        if isinstance(outage, Exception):
            raise outage
        if outage is not None:
            return _response(url, outage, f"<html><body>{HTTPStatus(outage).phrase}</body></html>".encode(), HTML)
        if symbol in self.charts:
            return _response(url, 200, self.charts[symbol])
        return _response(url, 404, (FIXTURES / "chart_not_found.json").read_bytes())

    def last_chart_params(self, symbol: str) -> dict[str, Any]:
        return [params for requested, params in self.chart_requests if requested == symbol][-1]

    def requested_symbols(self) -> set[str]:
        return {symbol for symbol, _ in self.chart_requests}


@pytest.fixture(scope="module", autouse=True)
def _yfinance_caches_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> None:
    """yfinance keeps timezone and cookie caches (SQLite) under the user cache dir; keep ours in tmp.

    yfinance binds the location on first use, so this must run before any test touches yfinance.
    """
    yf.set_tz_cache_location(str(tmp_path_factory.mktemp("yfinance-cache")))


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any real curl_cffi session (e.g. the production default) fails instead of going online."""

    def refuse(self: curl_requests.Session, method: str, url: str, **_: Any) -> Response:
        raise AssertionError(f"network access in a test: {method} {url}")

    monkeypatch.setattr(curl_requests.Session, "request", refuse)


@pytest.fixture
def yahoo() -> Iterator[FakeYahoo]:
    fake = FakeYahoo()
    yield fake
    assert fake.unexpected == []


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The tickers of every yf.download call, in call order (yf.download itself still runs)."""
    calls: list[list[str]] = []
    real_download = yf.download

    def recording(tickers: list[str], *args: Any, **kwargs: Any) -> Any:
        calls.append(list(tickers))
        return real_download(tickers, *args, **kwargs)

    monkeypatch.setattr(yf, "download", recording)
    return calls


def _recording_sleep(sleeps: list[float], then: Callable[[], None] = lambda: None) -> Callable[[float], None]:
    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        then()

    return sleep


def _bars_in_fixture(symbol: str) -> pl.DataFrame:
    """The bars of a chart fixture read straight from its JSON, independently of yfinance."""
    result = json.loads((FIXTURES / f"chart_{symbol}.json").read_text())["chart"]["result"][0]
    quote = result["indicators"]["quote"][0]
    return pl.DataFrame(
        {
            c.DATE: [dt.datetime.fromtimestamp(stamp, NEW_YORK).date() for stamp in result["timestamp"]],
            c.OPEN: quote["open"],
            c.HIGH: quote["high"],
            c.LOW: quote["low"],
            c.CLOSE: quote["close"],
            c.ADJ_CLOSE: result["indicators"]["adjclose"][0]["adjclose"],
            c.VOLUME: quote["volume"],
        },
        schema_overrides={name: pl.Float64 for name in c.BAR_COLUMNS},
    )


def _rows_of(bars: pl.DataFrame, ticker: str) -> pl.DataFrame:
    return bars.filter(pl.col(c.TICKER) == ticker)


def test_known_tickers_arrive_as_raw_bars_exactly_as_recorded(yahoo: FakeYahoo) -> None:
    sleeps: list[float] = []
    download = download_yfinance_bars(["AAPL", "MSFT"], START, END, session=yahoo, sleep=_recording_sleep(sleeps))

    assert download.bars.schema == pl.Schema(RAW_SCHEMA)
    assert (download.unknown_tickers, download.failed_batches, sleeps) == ((), (), [])
    for ticker in ("AAPL", "MSFT"):
        rows = _rows_of(download.bars, ticker)
        assert_frame_equal(rows.select(c.DATE, *c.BAR_COLUMNS), _bars_in_fixture(ticker))
        assert rows[c.SOURCE].unique().to_list() == ["yfinance"]
        assert rows[c.SOURCE_FILE].unique().to_list() == [
            f"yfinance:https://query2.finance.yahoo.com/v8/finance/chart/{ticker}"
        ]
        assert rows[c.SOURCE_ROW].to_list() == list(range(rows.height))
        assert rows[c.PARSE_ERROR].null_count() == rows.height

    # Raw close and adjusted close stay apart (auto_adjust=False).
    first = _rows_of(download.bars, "AAPL").row(0, named=True)
    assert first[c.DATE] == dt.date(2024, 2, 7)
    assert first[c.CLOSE] == pytest.approx(189.41, abs=1e-4)
    assert first[c.ADJ_CLOSE] == pytest.approx(188.91, abs=1e-4)
    assert first[c.VOLUME] == 53_438_955
    # A partly missing bar is kept as received; the day MSFT lacks is not invented.
    partial = _rows_of(download.bars, "AAPL").filter(pl.col(c.DATE) == dt.date(2024, 2, 15))
    assert partial[c.OPEN].to_list() == [None] and partial[c.CLOSE].to_list() == [pytest.approx(183.86, abs=1e-4)]
    zeros = _rows_of(download.bars, "MSFT").filter(pl.col(c.DATE) == dt.date(2024, 2, 12))
    assert zeros.select(*c.BAR_COLUMNS).row(0) == (0.0,) * len(c.BAR_COLUMNS)
    assert dt.date(2024, 2, 13) not in _rows_of(download.bars, "MSFT")[c.DATE].to_list()

    # The requested range is [START, END] inclusive, in the exchange's time zone.
    params = yahoo.last_chart_params("AAPL")
    assert params["interval"] == "1d"
    assert params["period1"] == dt.datetime(2024, 2, 7, tzinfo=NEW_YORK).timestamp()
    assert params["period2"] == dt.datetime(2024, 2, 17, tzinfo=NEW_YORK).timestamp()


def test_an_unknown_ticker_is_reported_not_retried(yahoo: FakeYahoo, downloads: list[list[str]]) -> None:
    sleeps: list[float] = []
    download = download_yfinance_bars(
        ["AAPL", UNKNOWN, "MSFT"], START, END, session=yahoo, sleep=_recording_sleep(sleeps)
    )

    assert download.unknown_tickers == (UNKNOWN,)
    assert set(download.bars[c.TICKER]) == {"AAPL", "MSFT"}
    assert (sleeps, downloads, download.failed_batches) == ([], [["AAPL", UNKNOWN, "MSFT"]], ())


def _chart_without(symbol: str, yahoo: FakeYahoo, drop: Callable[[dict[str, Any]], None]) -> bytes:
    document = json.loads(yahoo.charts[symbol])
    drop(document["chart"]["result"][0])
    return json.dumps(document).encode()


def test_a_known_ticker_without_bars_in_range_is_neither_unknown_nor_failed(yahoo: FakeYahoo) -> None:
    # Yahoo's answer for a range before a listing: the symbol's meta, no timestamps, an empty quote.
    def bars(result: dict[str, Any]) -> None:
        del result["timestamp"], result["events"]
        result["indicators"] = {"quote": [{}], "adjclose": [{}]}

    yahoo.charts["MSFT"] = _chart_without("MSFT", yahoo, bars)
    sleeps: list[float] = []
    download = download_yfinance_bars(["AAPL", "MSFT"], START, END, session=yahoo, sleep=_recording_sleep(sleeps))

    assert set(download.bars[c.TICKER]) == {"AAPL"}
    assert (download.unknown_tickers, sleeps) == ((), [])


def test_a_chart_yfinance_cannot_parse_fails_instead_of_vanishing(yahoo: FakeYahoo) -> None:
    # A format change: yfinance raises on the missing field, and download() would only log it.
    yahoo.charts["MSFT"] = _chart_without("MSFT", yahoo, lambda result: result["meta"].pop("instrumentType"))

    with pytest.raises(YFinanceError, match=r"MSFT: yfinance parsed no rows from 7 priced bars"):
        download_yfinance_bars(
            ["AAPL", "MSFT"], START, END, YFinanceParams(max_retries=1), session=yahoo, sleep=_recording_sleep([])
        )


def test_only_unknown_tickers_give_an_empty_raw_frame(yahoo: FakeYahoo) -> None:
    download = download_yfinance_bars([UNKNOWN], START, END, session=yahoo, sleep=_recording_sleep([]))

    assert download.bars.schema == pl.Schema(RAW_SCHEMA) and download.bars.is_empty()
    assert download.unknown_tickers == (UNKNOWN,)


@pytest.mark.parametrize(
    "outage",
    [500, 503, 429, Timeout("Operation timed out after 30001 milliseconds")],
    ids=["http-500", "http-503", "http-429", "timeout"],
)
def test_a_transient_failure_is_retried_after_backoff(
    yahoo: FakeYahoo, downloads: list[list[str]], outage: Outage
) -> None:
    yahoo.outages["MSFT"] = outage
    sleeps: list[float] = []
    download = download_yfinance_bars(
        ["AAPL", "MSFT"],
        START,
        END,
        YFinanceParams(backoff_seconds=0.25),
        session=yahoo,
        sleep=_recording_sleep(sleeps, then=yahoo.outages.clear),  # the outage ends during the backoff
    )

    assert sleeps == [0.25]
    assert downloads == [["AAPL", "MSFT"], ["MSFT"]]  # only the failed ticker is asked again
    assert (download.unknown_tickers, download.retries) == ((), 1)
    assert_frame_equal(_rows_of(download.bars, "MSFT").select(c.DATE, *c.BAR_COLUMNS), _bars_in_fixture("MSFT"))
    assert _rows_of(download.bars, "AAPL").height == _bars_in_fixture("AAPL").height


def test_a_failure_that_outlasts_the_retries_raises_naming_the_batch(
    yahoo: FakeYahoo, downloads: list[list[str]]
) -> None:
    yahoo.outages["MSFT"] = 503
    sleeps: list[float] = []
    with pytest.raises(YFinanceError) as raised:
        download_yfinance_bars(
            ["AAPL", "MSFT", UNKNOWN],
            START,
            END,
            YFinanceParams(batch_size=1, max_retries=2, backoff_seconds=0.5),
            session=yahoo,
            sleep=_recording_sleep(sleeps),
        )

    error = raised.value
    assert "batch 2/3 [MSFT]" in str(error) and "3 attempt(s)" in str(error) and "HTTP 503" in str(error)
    assert (error.batch, error.attempts, list(error.failures)) == ("batch 2/3 [MSFT]", 3, ["MSFT"])
    assert sleeps == [0.5, 1.0]
    # Batches after the failed one are never requested; what came before is kept for diagnosis only.
    assert downloads == [["AAPL"], ["MSFT"], ["MSFT"], ["MSFT"]]
    assert UNKNOWN not in yahoo.requested_symbols()
    assert set(error.download.bars[c.TICKER]) == {"AAPL"}
    assert error.download.failed_batches == ("batch 2/3 [MSFT]",)


def test_tickers_are_requested_in_batches_of_batch_size(yahoo: FakeYahoo, downloads: list[list[str]]) -> None:
    one_by_one = download_yfinance_bars(
        ["AAPL", "MSFT"], START, END, YFinanceParams(batch_size=1), session=yahoo, sleep=_recording_sleep([])
    )
    assert downloads == [["AAPL"], ["MSFT"]]

    downloads.clear()
    together = download_yfinance_bars(["aapl", "MSFT", "AAPL"], START, END, session=yahoo, sleep=_recording_sleep([]))
    assert downloads == [["AAPL", "MSFT"]]  # upper-cased and de-duplicated first
    assert_frame_equal(one_by_one.bars, together.bars)


@pytest.mark.parametrize(
    ("tickers", "start", "params"),
    [
        (["AAPL"], END + dt.timedelta(days=1), {}),
        (["AAPL", " "], START, {}),
        (["AAPL"], START, {"batch_size": 0}),
        (["AAPL"], START, {"max_retries": -1}),
    ],
    ids=["start-after-end", "blank-ticker", "empty-batches", "negative-retries"],
)
def test_invalid_arguments_are_rejected_before_any_request(
    yahoo: FakeYahoo, tickers: list[str], start: dt.date, params: dict[str, int]
) -> None:
    with pytest.raises(ValueError):
        download_yfinance_bars(tickers, start, END, YFinanceParams(**params), session=yahoo, sleep=_recording_sleep([]))
    assert yahoo.chart_requests == []


# --- A real split and a real dividend, through cleaning ----------------------------------------------------

SPLIT_START, SPLIT_END = dt.date(2020, 8, 3), dt.date(2020, 9, 3)
SPLIT_DAY, EX_DIVIDEND_DAY, DIVIDEND = dt.date(2020, 8, 31), dt.date(2020, 8, 7), 0.205


def _traded_before_the_split(chart: bytes) -> bytes:
    """The same response with the bars before the 4:1 split as traded (prices x 4, shares / 4).

    Yahoo sends closes already split-adjusted (only Adj Close has the dividends); a vendor, a user's CSV,
    or Yahoo itself before it applies a fresh split, delivers the traded prices instead.
    """
    document = json.loads(chart)
    result = document["chart"]["result"][0]
    split_stamp = int(next(iter(result["events"]["splits"])))
    before = [stamp < split_stamp for stamp in result["timestamp"]]
    quote = result["indicators"]["quote"][0]
    for name in ("open", "high", "low", "close"):
        quote[name] = [value * 4 if early else value for value, early in zip(quote[name], before, strict=True)]
    quote["volume"] = [volume // 4 if early else volume for volume, early in zip(quote["volume"], before, strict=True)]
    return json.dumps(document).encode()


@pytest.mark.parametrize("traded", [False, True], ids=["as-recorded", "traded-prices-before-the-split"])
def test_cleaned_returns_are_continuous_across_a_real_split_and_dividend(yahoo: FakeYahoo, traded: bool) -> None:
    recorded = (FIXTURES / "chart_AAPL_2020-08.json").read_bytes()
    yahoo.charts["AAPL"] = _traded_before_the_split(recorded) if traded else recorded
    download = download_yfinance_bars(["AAPL"], SPLIT_START, SPLIT_END, session=yahoo, sleep=_recording_sleep([]))
    result = clean_bars(
        download.bars, ["AAPL"], window=(SPLIT_START, SPLIT_END), as_of=SPLIT_END,
        params=CleaningParams(min_history_days=1, max_missing_share=1.0),
    )
    assert result.quarantine.height == 0  # the split is neither an outlier nor an unexplained factor jump
    bars = result.cleaned.sort(c.DATE)
    adjusted = bars[c.CLOSE].to_list()
    close_on = dict(zip(bars[c.DATE].to_list(), bars[c.RAW_CLOSE].to_list(), strict=True))
    returns = dict(zip(bars[c.DATE].to_list(), bars[c.LOG_RETURN].to_list(), strict=True))

    # The split day returns +3.3 % (124.81 -> 129.04 a share, in post-split shares), not ln(1/4) = -1.386.
    assert returns[SPLIT_DAY] == pytest.approx(math.log(129.04 / 124.81), abs=1e-6)
    assert close_on[dt.date(2020, 8, 28)] == pytest.approx(124.81 * (4 if traded else 1), rel=1e-6)
    # Ex-dividend day: the traded close falls 113.90 -> 111.11, the holder also gets 0.205 a share.
    price_return = math.log(111.11 / 113.90)
    assert returns[EX_DIVIDEND_DAY] == pytest.approx(math.log(111.11 / (113.90 - DIVIDEND)), abs=1e-6)
    assert returns[EX_DIVIDEND_DAY] - price_return == pytest.approx(DIVIDEND / 111.11, abs=1e-4)  # + dividend yield
    assert sum(value for value in returns.values() if value is not None) == pytest.approx(math.log(adjusted[-1] / adjusted[0]))
    # Share volume is continuous in post-split shares, whichever way the bars came.
    assert bars.filter(pl.col(c.DATE) == dt.date(2020, 8, 28))[c.VOLUME].item() == pytest.approx(187_630_000)
