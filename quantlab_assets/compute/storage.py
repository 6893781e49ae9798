"""Atomic Parquet and text files (a reader sees the old file or the new one, never half of one), and the
counts that keep a refresh from shrinking what is stored."""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from pathlib import Path

import polars as pl


def write_parquet_atomic(frame: pl.DataFrame, path: Path) -> None:
    """Write `frame` to a temporary file beside `path`, flush it to disk, then rename it over `path`.

    os.replace is atomic on POSIX within one file system, so a run killed mid-write leaves at most a
    stray temporary file (removed here on any exception), and the previous `path` intact.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        frame.write_parquet(temporary, statistics=True)
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_text_atomic(text: str, path: Path) -> Path:
    """`text` (UTF-8) to `path` the way write_parquet_atomic writes a frame; returns `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


class UnreadableParquetError(ValueError):
    """A stored Parquet file cannot be read (truncated, overwritten or damaged on disk).

    Atomic writes never leave such a file, so it was damaged afterwards; `path` says which one.
    """

    def __init__(self, path: Path, cause: Exception) -> None:
        super().__init__(f"{path} is not a readable Parquet file ({type(cause).__name__}: {cause})")
        self.path = path


def read_parquet_file(path: Path) -> pl.DataFrame:
    try:
        return pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as error:
        raise UnreadableParquetError(path, error) from error


def read_parquet_files(paths: list[Path], schema: dict[str, pl.DataType] | None = None) -> pl.DataFrame:
    """Concatenate existing Parquet files in order (an empty list gives an empty frame of `schema`)."""
    if not paths:
        return pl.DataFrame(schema=schema)
    return pl.concat([read_parquet_file(path) for path in paths], how="vertical", rechunk=True)


def parquet_row_count(path: Path) -> int:
    """Rows of a stored Parquet file, from its footer (no column is read)."""
    try:
        return pl.scan_parquet(path).select(pl.len()).collect().item()
    except (pl.exceptions.PolarsError, OSError) as error:
        raise UnreadableParquetError(path, error) from error


def shrinking_counts(stored_rows: Mapping[str, int], delivered_rows: Mapping[str, int]) -> dict[str, tuple[int, int]]:
    """Keys (months, files) that would hold fewer rows after a write than they hold now: key -> (stored, delivered).

    A key absent from `delivered_rows` delivers 0 rows; a key never stored cannot shrink. A refresh
    that shrinks stored history (a header-only file, a vendor that lost a year) must be refused
    unless the user asks for it, because the rows it would drop exist nowhere else.
    """
    return {
        key: (stored, delivered_rows.get(key, 0))
        for key, stored in stored_rows.items()
        if delivered_rows.get(key, 0) < stored
    }
