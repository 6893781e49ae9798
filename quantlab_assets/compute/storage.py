"""The lab's one way to write a file, atomically: a reader sees the old file or the new one, never half of one;
and the row counts that keep a refresh from shrinking what is stored.

Every stored file (Parquet partitions, JSON and text, torch checkpoints, saved RL models, figures, HTML
reports) goes through `write_atomic`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

import polars as pl


def write_atomic(path: Path, write: Callable[[Path], object]) -> Path:
    """`write(temporary)` writes the whole file to a temporary path beside `path`; it is flushed to disk,
    renamed over `path`, and the rename is flushed too; returns `path`.

    The temporary name is unique (process id and a random part), so concurrent writers of one path never
    share a file; it lies in the same directory, because os.replace is atomic only within one file system.
    A failure anywhere (the writer, the flush, the rename) leaves the previous `path` intact and removes the
    temporary. The writer must not choose the format from the file name's suffix, which is `.tmp`.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        write(temporary)
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    _fsync_directory(path.parent)
    return path


def _fsync_directory(directory: Path) -> None:
    """Flush the directory entry, so that after a crash the rename is on disk, not only the data."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_parquet_atomic(frame: pl.DataFrame, path: Path) -> Path:
    """`frame` as Parquet (with column statistics) at `path`, atomically."""
    return write_atomic(path, lambda temporary: frame.write_parquet(temporary, statistics=True))


def write_text_atomic(text: str, path: Path) -> Path:
    """`text` (UTF-8) at `path`, atomically."""
    return write_atomic(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


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
