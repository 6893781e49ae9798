"""Daily bars from Yahoo Finance (through yfinance), in the raw-bars contract.

yfinance reports every per-ticker failure the same way: an empty column and a log line. An HTTP 500,
a timeout and a symbol Yahoo has never heard of all look alike in `yf.download`'s frame, yet only the
last may be accepted (and reported); the others must be retried and, if they persist, must fail the
call, or a month of bars would be stored with silent holes. The HTTP status is only visible on the
session, because yfinance never calls `raise_for_status` on chart responses, so every download runs
with a `_ChartResponseLog` that notes how the last chart request of each symbol ended.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import pandas as pd
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.raw import as_raw_frame, empty_raw_frame

if TYPE_CHECKING:
    from curl_cffi import requests as curl_requests

SOURCE = "yfinance"

_CHART_PATH = "/v8/finance/chart/"
# yfinance 1.x requests daily bars from this endpoint; rows name it as the request they came from.
_CHART_URL = "https://query2.finance.yahoo.com" + _CHART_PATH
# Yahoo's answer for a symbol it has no data for (typo, delisted): definitive, so never retried.
_NOT_FOUND = 404
# yfinance's wide-frame field names, mapped to the lab's columns.
_YAHOO_COLUMNS: Mapping[str, str] = {
    "Open": c.OPEN,
    "High": c.HIGH,
    "Low": c.LOW,
    "Close": c.CLOSE,
    "Adj Close": c.ADJ_CLOSE,
    "Volume": c.VOLUME,
}
_PRICE_FIELDS = (*c.PRICE_COLUMNS, c.ADJ_CLOSE)


@dataclass(frozen=True)
class YFinanceParams:
    """How to page through Yahoo and how hard to insist when it fails."""

    batch_size: int = 50  # tickers per yf.download call
    max_retries: int = 3  # extra attempts per batch after an HTTP or network failure
    backoff_seconds: float = 1.0  # sleep before retry k (0-based) is backoff_seconds * 2**k
    timeout_seconds: float = 30.0  # per chart request (yfinance's cookie and timezone calls use their own)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.backoff_seconds < 0:
            raise ValueError(f"backoff_seconds must be >= 0, got {self.backoff_seconds}")
        if self.timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be > 0, got {self.timeout_seconds}")


@dataclass(frozen=True)
class YFinanceDownload:
    """What Yahoo delivered: bars as received, and the tickers it had nothing for.

    `failed_batches` is only ever non-empty on the partial download a `YFinanceError` carries: a
    returned download is complete by construction.
    """

    bars: pl.DataFrame
    unknown_tickers: tuple[str, ...] = ()
    failed_batches: tuple[str, ...] = ()
    retries: int = 0  # yf.download calls repeated after a transient failure, over all batches


class YFinanceError(RuntimeError):
    """A batch still failed after all retries; `download` holds what arrived before it, for diagnosis.

    Raised rather than returning the partial bars, because storing them would pass off holes left by
    an outage as missing data.
    """

    def __init__(self, batch: str, failures: Mapping[str, str], attempts: int, download: YFinanceDownload) -> None:
        causes = "; ".join(f"{ticker}: {cause}" for ticker, cause in failures.items())
        super().__init__(f"yfinance {batch} failed after {attempts} attempt(s): {causes}")
        self.batch = batch
        self.failures = dict(failures)
        self.attempts = attempts
        self.download = download


@dataclass(frozen=True)
class _ChartOutcome:
    """How the last chart request of one symbol ended.

    `status` is None when the request raised (timeout, connection reset) before any response. `answered`
    means Yahoo returned a well-formed chart result, and `priced_bars` counts its bars with a close: a
    symbol that yfinance turned into no rows despite priced bars was lost in parsing, not absent.
    """

    status: int | None
    detail: str
    answered: bool = False
    priced_bars: int = 0


@dataclass
class _ChartResponseLog:
    """Notes the outcome of every chart request made through `session` while the log is open.

    The session's `request` is wrapped on the instance rather than subclassed: yfinance insists on a
    genuine curl_cffi (or requests) session, and the caller's session must keep its own class.
    """

    session: Any
    outcomes: dict[str, _ChartOutcome] = field(default_factory=dict)

    def __enter__(self) -> _ChartResponseLog:
        send = self.session.request

        def request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            path = urlsplit(url).path
            if not path.startswith(_CHART_PATH):
                return send(method, url, *args, **kwargs)
            symbol = unquote(path.removeprefix(_CHART_PATH)).upper()
            try:
                response = send(method, url, *args, **kwargs)
            except Exception as error:
                self.outcomes[symbol] = _ChartOutcome(status=None, detail=f"{type(error).__name__}: {error}")
                raise
            self.outcomes[symbol] = _judge_chart_response(response)
            return response

        self.session.request = request
        return self

    def __exit__(self, *exc_info: object) -> None:
        del self.session.request


def _judge_chart_response(response: Any) -> _ChartOutcome:
    """Read the status and body yfinance is about to parse, so its silence can be interpreted later."""
    status = int(response.status_code)
    try:
        chart = json.loads(response.text).get("chart") or {}
    except (ValueError, AttributeError):
        return _ChartOutcome(status=status, detail=f"HTTP {status} with a body that is not chart JSON")
    error = chart.get("error") or {}
    detail = f"HTTP {status}" + (f" {error.get('code')}: {error.get('description')}" if error else "")
    results = chart.get("result") or []
    if status != 200 or not results:
        return _ChartOutcome(status=status, detail=detail)
    quotes = (results[0].get("indicators") or {}).get("quote") or [{}]
    closes = quotes[0].get("close") or []
    return _ChartOutcome(
        status=status, detail=detail, answered=True, priced_bars=sum(close is not None for close in closes)
    )


@dataclass(frozen=True)
class _Attempt:
    """One yf.download call's verdict on each of its tickers."""

    bars: pl.DataFrame
    unknown: tuple[str, ...]
    failures: dict[str, str]  # ticker -> why; these are retried


def download_yfinance_bars(
    tickers: Sequence[str],
    start: dt.date,
    end: dt.date,
    params: YFinanceParams = YFinanceParams(),
    *,
    session: curl_requests.Session | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> YFinanceDownload:
    """Daily OHLC, adjusted close and volume for `tickers` over [start, end] (end inclusive).

    Tickers go to Yahoo in batches of `params.batch_size`. Within a batch, tickers whose request failed
    (HTTP error, timeout, unparseable answer) are retried after `backoff_seconds * 2**k`; tickers Yahoo
    answers 404 for are reported in `unknown_tickers` and never retried. A batch that still fails after
    `max_retries` raises `YFinanceError` and no later batch is requested: a persistent failure usually
    means Yahoo is throttling, and more requests would prolong it.

    Symbols are upper-cased (Yahoo's are case-insensitive and yfinance upper-cases them) and de-duplicated.
    `session` defaults to the curl_cffi browser-impersonating session yfinance would create itself.
    """
    if start > end:
        raise ValueError(f"start {start} is after end {end}")
    symbols = tuple(dict.fromkeys(ticker.strip().upper() for ticker in tickers))
    if "" in symbols:
        raise ValueError("empty ticker symbol")
    # Imported here: yfinance with curl_cffi takes about 0.3 s to import, and every run process loads this module.
    from curl_cffi import requests as curl_requests

    session = curl_requests.Session(impersonate="chrome") if session is None else session
    batches = [symbols[i : i + params.batch_size] for i in range(0, len(symbols), params.batch_size)]

    frames: list[pl.DataFrame] = []
    unknown: list[str] = []
    retries = 0
    for number, batch in enumerate(batches, start=1):
        pending = batch
        for attempt in range(params.max_retries + 1):
            if attempt:
                sleep(params.backoff_seconds * 2 ** (attempt - 1))
                retries += 1
            result = _download_attempt(pending, start, end, params, session)
            frames.append(result.bars)
            unknown.extend(result.unknown)
            if not result.failures:
                break
            pending = tuple(ticker for ticker in pending if ticker in result.failures)
        else:
            described = f"batch {number}/{len(batches)} [{', '.join(batch)}]"
            partial = YFinanceDownload(_concat(frames), tuple(unknown), failed_batches=(described,), retries=retries)
            raise YFinanceError(described, result.failures, params.max_retries + 1, partial)
    return YFinanceDownload(_concat(frames), tuple(unknown), retries=retries)


def _download_attempt(
    tickers: tuple[str, ...], start: dt.date, end: dt.date, params: YFinanceParams, session: curl_requests.Session
) -> _Attempt:
    """One `yf.download` call, then each ticker judged by its rows and its last chart response."""
    # Imported here: yfinance with curl_cffi takes about 0.3 s to import, and every run process loads this module.
    import yfinance as yf
    from yfinance.data import YfData

    # yfinance memoises past-range chart responses, failed ones included, for the life of the process:
    # without this a retry would be answered from memory instead of by Yahoo.
    YfData.cache_get.cache_clear()
    with _ChartResponseLog(session) as log:
        wide = yf.download(
            list(tickers),
            start=start,
            end=end + dt.timedelta(days=1),  # yfinance's end is exclusive
            interval="1d",
            auto_adjust=False,  # Yahoo's close (split-adjusted, no dividends) and its Adj Close, as sent
            actions=False,
            keepna=True,  # yfinance would otherwise drop bars that are all zero, a judgement cleaning makes
            threads=False,
            progress=False,
            timeout=params.timeout_seconds,
            session=session,
            multi_level_index=True,
        )
    frames: list[pl.DataFrame] = []
    unknown: list[str] = []
    failures: dict[str, str] = {}
    for ticker in tickers:
        bars = _ticker_bars(wide, ticker)
        outcome = log.outcomes.get(ticker)
        if bars.height:
            frames.append(as_raw_frame(bars, source=SOURCE, source_file=f"{SOURCE}:{_CHART_URL}{ticker}"))
        elif outcome is None:
            failures[ticker] = "no chart request reached Yahoo (see the yfinance log)"
        elif outcome.status == _NOT_FOUND:
            unknown.append(ticker)
        elif not outcome.answered:
            failures[ticker] = outcome.detail
        elif outcome.priced_bars:
            failures[ticker] = f"yfinance parsed no rows from {outcome.priced_bars} priced bars (see the yfinance log)"
    return _Attempt(_concat(frames), tuple(unknown), failures)


def _ticker_bars(wide: pd.DataFrame, ticker: str) -> pl.DataFrame:
    """One ticker's rows of yf.download's (field, ticker) frame, in the lab's long layout.

    A row is dropped only when every price field is missing: that is how yfinance pads a ticker to the
    union of all tickers' dates (and how Yahoo marks a bar it has no trade for). Partly missing bars stay.
    Volume is never null: yfinance itself turns a missing volume into 0 before we see it.
    """
    fields = wide.xs(ticker, axis=1, level="Ticker")
    frame = pl.DataFrame(
        {
            c.DATE: pl.Series(fields.index.date.tolist(), dtype=pl.Date),
            **{name: fields[yahoo].to_numpy(dtype="float64") for yahoo, name in _YAHOO_COLUMNS.items()},
        },
        nan_to_null=True,
    )
    return frame.filter(~pl.all_horizontal(pl.col(_PRICE_FIELDS).is_null())).with_columns(
        pl.lit(ticker).alias(c.TICKER)
    )


def _concat(frames: list[pl.DataFrame]) -> pl.DataFrame:
    return pl.concat(frames) if frames else empty_raw_frame()
