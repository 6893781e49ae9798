"""A user's own price files (CSV or Parquet) read into the raw-bars contract, with nothing repaired.

Every value is read as text first and parsed afterwards, so a value that does not parse is kept as a
row with `parse_error` naming the column and the text, instead of silently becoming null or aborting
the whole file. Structural problems (a file that is not CSV, a missing column, an unparseable date)
raise `SourceFileError`, naming the file, the line and what was expected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import csv
import gzip

import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.raw import RAW_SCHEMA, as_raw_frame

NUMERIC_COLUMNS = (c.OPEN, c.HIGH, c.LOW, c.CLOSE, c.ADJ_CLOSE, c.VOLUME)
# CSV rows are numbered by line (a header line precedes the first data row, lines start at 1);
# Parquet rows by position from 0.
FIRST_DATA_LINE = 2
MAX_LISTED_LINES = 5


class SourceFileError(ValueError):
    """A source file cannot be read as bars at all; the message names file, line(s) and rule."""


DEFAULT_COLUMNS: Mapping[str, str] = {
    c.DATE: "date", c.TICKER: "ticker", c.OPEN: "open", c.HIGH: "high", c.LOW: "low",
    c.CLOSE: "close", c.ADJ_CLOSE: "adj_close", c.VOLUME: "volume",
}


@dataclass(frozen=True)
class CsvLayout:
    """How a user's files map onto bar columns.

    columns: our column name -> the file's header. None reads DEFAULT_COLUMNS, where only `date`,
    `close` (and `ticker`, unless taken from the file name) must be present. A mapping the user
    writes is a promise about the file: every bar column it names must be there, so a renamed or
    dropped `volume` column is an error rather than a silently null volume.
    ticker_from_filename: one file per instrument, the ticker being the file name without extension.
    date_format: strptime format of the date column (None: ISO 8601).
    """

    columns: Mapping[str, str] | None = None
    ticker_from_filename: bool = False
    date_format: str | None = None


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() == ".parquet"


def _short_lines(path: Path) -> list[int]:
    """Line numbers of CSV records with fewer fields than the header.

    polars pads such records with empty values, which would turn a truncated line into a row with a
    missing close instead of the malformed file it is. The csv module counts fields quote-aware.
    """
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    with opener(path, "rt", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        return [reader.line_num for record in reader if record and len(record) < len(header)]


def _read_text_frame(path: Path) -> pl.DataFrame:
    try:
        if _is_parquet(path):
            return pl.read_parquet(path).select(pl.all().cast(pl.String))
        short = _short_lines(path)
        if short:
            raise SourceFileError(f"{path}: line(s) {_lines(pl.Series(short))} have fewer fields than the header")
        return pl.read_csv(path, infer_schema=False, truncate_ragged_lines=False)
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError, OSError, UnicodeDecodeError, csv.Error) as error:
        raise SourceFileError(f"{path}: cannot be read as a table of bars ({error})") from error


def _lines(rows: pl.Series) -> str:
    listed = ", ".join(str(line) for line in rows.head(MAX_LISTED_LINES).to_list())
    return listed + (f" and {rows.len() - MAX_LISTED_LINES} more" if rows.len() > MAX_LISTED_LINES else "")


def read_bar_file(
    path: Path, layout: CsvLayout = CsvLayout(), *, source: str = "csv", source_file: str | None = None
) -> pl.DataFrame:
    """Read one CSV/Parquet file into a RAW_SCHEMA frame (source_row = the line number in the file).

    `source_file` labels the rows (default: the path); packaged data uses a machine-independent label.
    """
    text = _read_text_frame(path)
    wanted = {ours: theirs for ours, theirs in (DEFAULT_COLUMNS if layout.columns is None else layout.columns).items() if ours in RAW_SCHEMA}
    if layout.ticker_from_filename:
        wanted.pop(c.TICKER, None)
    required = {c.DATE, c.CLOSE} | ({c.TICKER} if not layout.ticker_from_filename else set())
    if layout.columns is not None:
        required |= set(wanted)
    missing = sorted(ours for ours in required if wanted.get(ours) not in text.columns)
    if missing:
        expected = {ours: wanted.get(ours) for ours in missing}
        raise SourceFileError(
            f"{path}: missing column(s) {expected} (ours: theirs); the file has {text.columns}"
        )
    present = {ours: theirs for ours, theirs in wanted.items() if theirs in text.columns}
    text = text.select(pl.col(theirs).str.strip_chars().alias(ours) for ours, theirs in present.items())
    first_row = 0 if _is_parquet(path) else FIRST_DATA_LINE
    text = text.with_row_index(c.SOURCE_ROW, offset=first_row).with_columns(pl.col(c.SOURCE_ROW).cast(pl.Int64))
    if layout.ticker_from_filename:
        text = text.with_columns(pl.lit(path.stem).alias(c.TICKER))

    dates = (
        pl.col(c.DATE).str.to_date(layout.date_format, strict=False)
        if layout.date_format
        else pl.col(c.DATE).str.to_date(strict=False)
    )
    parsed = text.with_columns(dates.alias("parsed_date"))
    bad_dates = parsed.filter(pl.col("parsed_date").is_null())
    if bad_dates.height:
        examples = bad_dates.head(MAX_LISTED_LINES)[c.DATE].to_list()
        raise SourceFileError(
            f"{path}: line(s) {_lines(bad_dates[c.SOURCE_ROW])}: column {present[c.DATE]!r} is not a date "
            f"(format {layout.date_format or 'ISO 8601'}); values {examples}"
        )

    numeric = [name for name in NUMERIC_COLUMNS if name in present]
    casts = {name: pl.col(name).str.replace_all(",", "").cast(pl.Float64, strict=False) for name in numeric}
    failed = [
        pl.when(pl.col(name).is_not_null() & (pl.col(name) != "") & casts[name].is_null())
        .then(pl.format("{}: {} is not a number", pl.lit(present[name]), pl.col(name)))
        for name in numeric
    ]
    parse_error = pl.concat_str(failed, separator="; ", ignore_nulls=True) if failed else pl.lit(None, pl.String)
    bars = parsed.select(
        pl.col("parsed_date").alias(c.DATE),
        pl.col(c.TICKER).replace("", None),
        *[casts[name].alias(name) for name in numeric],
        c.SOURCE_ROW,
        pl.when(parse_error == "").then(None).otherwise(parse_error).alias(c.PARSE_ERROR),
    )
    return as_raw_frame(bars, source=source, source_file=source_file or str(path))


def resolve_paths(patterns: Sequence[str], base_dir: Path) -> list[Path]:
    """Expand glob patterns (relative ones against `base_dir`) into a sorted list of existing files."""
    paths: list[Path] = []
    for pattern in patterns:
        candidate = Path(pattern)
        root, glob = (Path(candidate.anchor), str(candidate.relative_to(candidate.anchor))) if candidate.is_absolute() else (base_dir, pattern)
        matches = sorted(root.glob(glob))
        if not matches:
            raise SourceFileError(f"no file matches {pattern!r} (relative to {base_dir})")
        paths.extend(matches)
    return paths


def read_bar_files(paths: Sequence[Path], layout: CsvLayout = CsvLayout()) -> pl.DataFrame:
    """Read and stack several files; rows keep their own file and line."""
    frames = [read_bar_file(path, layout) for path in paths]
    return pl.concat(frames) if frames else pl.DataFrame(schema=RAW_SCHEMA)
