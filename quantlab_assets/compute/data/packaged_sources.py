"""Real daily prices that ship inside PyPI packages, so the `sp500_sample` universe works offline.

- skfolio's `sp500_dataset.csv.gz`: 20 US large caps, daily *adjusted* close, 1990-01-02 .. 2022-12-28.
  It is close-only: open/high/low/adj_close/volume stay null (nothing is invented) and the one price it
  has is stored as `close`; the universe declares `close_is_adjusted: true`, so cleaning books it as the
  total-return price.
- arch's `sp500.csv.gz` and `nasdaq.csv.gz`: S&P 500 (^GSPC) and NASDAQ Composite (^IXIC) index
  OHLC, adjusted close and volume, 1999-01-04 .. 2018-12-31.

The files are read straight from the installed packages (not through their pandas loaders), so each
row keeps the file and line it came from.
"""

from __future__ import annotations

from importlib import metadata, resources
from pathlib import Path

import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.csv_source import FIRST_DATA_LINE, CsvLayout, read_bar_file
from quantlab_assets.compute.data.raw import as_raw_frame

SOURCE = "sp500_sample"
ARCH_INDEX_FILES = {"^GSPC": ("arch.data.sp500", "sp500.csv.gz"), "^IXIC": ("arch.data.nasdaq", "nasdaq.csv.gz")}
ARCH_LAYOUT = CsvLayout(
    columns={
        c.DATE: "Date", c.OPEN: "Open", c.HIGH: "High", c.LOW: "Low", c.CLOSE: "Close",
        c.ADJ_CLOSE: "Adj Close", c.VOLUME: "Volume",
    },
    ticker_from_filename=True,
    date_format="%m/%d/%Y",
)


SKFOLIO_SP500 = ("skfolio.datasets.data", "sp500_dataset.csv.gz")


def _package_file(package: str, name: str) -> Path:
    return Path(str(resources.files(package).joinpath(name)))


def _package_label(package: str, name: str) -> str:
    """A machine-independent name for a packaged file: distribution, version and resource path."""
    distribution = package.split(".")[0]
    return f"{distribution}=={metadata.version(distribution)}:{package.replace('.', '/')}/{name}"


def read_skfolio_sp500() -> pl.DataFrame:
    """skfolio's wide close-price table as long raw bars (one row per date and stock)."""
    path = _package_file(*SKFOLIO_SP500)
    wide = pl.read_csv(path, try_parse_dates=True).with_row_index(c.SOURCE_ROW, offset=FIRST_DATA_LINE)
    long = wide.unpivot(index=["Date", c.SOURCE_ROW], variable_name=c.TICKER, value_name=c.CLOSE).filter(
        pl.col(c.CLOSE).is_not_null()
    )
    bars = long.select(
        pl.col("Date").cast(pl.Date).alias(c.DATE),
        c.TICKER,
        pl.col(c.CLOSE).cast(pl.Float64),
        pl.col(c.SOURCE_ROW).cast(pl.Int64),
    )
    return as_raw_frame(bars, source=SOURCE, source_file=_package_label(*SKFOLIO_SP500))


def read_arch_indices() -> pl.DataFrame:
    """arch's S&P 500 and NASDAQ index OHLCV files as raw bars, tickers ^GSPC and ^IXIC."""
    frames = []
    for ticker, (package, name) in ARCH_INDEX_FILES.items():
        frame = read_bar_file(
            _package_file(package, name), ARCH_LAYOUT, source=SOURCE, source_file=_package_label(package, name)
        )
        frames.append(frame.with_columns(pl.lit(ticker).alias(c.TICKER)))
    return pl.concat(frames)


def read_sp500_sample() -> pl.DataFrame:
    """All rows of the sp500_sample universe (stocks first, then indices), as received."""
    return pl.concat([read_skfolio_sp500(), read_arch_indices()])
