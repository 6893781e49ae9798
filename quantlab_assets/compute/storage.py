"""The lab's one way to write a file, atomically: a reader sees the old file or the new one, never half of one;
the row counts that keep a refresh from shrinking what is stored; and `StorageLayout`, the one place that
knows where each stored artifact lives.

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


# Seed 000 stores its results in outputs/_phase2_headIRM/; here that folder lives under the data dir.
HEDGING_STUDY_FOLDER = Path("outputs") / "_phase2_headIRM"


class StorageLayout:
    """Where every stored artifact lives under the data directory; the one place that knows the layout.

    Asset frames (the IO manager's files): <asset>.parquet, <asset>/<universe>.parquet,
    <asset>/<universe>/<YYYY-MM>.parquet, <asset>/<universe>/<other key>.parquet. Files an asset writes
    beside its frame (checkpoints, models, reports, JSON, study folders) live under a folder named by kind
    and asset, so an asset that reads one declares that asset as its input or dependency and asks here.
    """

    def __init__(self, base_dir: str | Path) -> None:
        self.base_dir = Path(base_dir)

    def asset_dir(self, asset_path: tuple[str, ...] | list[str] | str) -> Path:
        parts = [asset_path] if isinstance(asset_path, str) else list(asset_path)
        return self.base_dir.joinpath(*parts)

    def unpartitioned_file(self, asset_path: tuple[str, ...] | list[str] | str) -> Path:
        return self.asset_dir(asset_path).with_suffix(".parquet")

    def partition_file(self, asset_path: tuple[str, ...] | list[str] | str, key: str) -> Path:
        """One file per partition key (a universe, a strategy|universe key flattened by the caller, a policy)."""
        return self.asset_dir(asset_path) / f"{key}.parquet"

    def month_file(self, asset_path: tuple[str, ...] | list[str] | str, universe: str, month_key: str) -> Path:
        return self.asset_dir(asset_path) / universe / f"{month_key[:7]}.parquet"

    def keyed_file(self, asset_path: tuple[str, ...] | list[str] | str, universe: str, other_key: str) -> Path:
        return self.asset_dir(asset_path) / universe / f"{other_key}.parquet"

    def checkpoint(self, asset: str, universe: str) -> Path:
        """A torch checkpoint `asset` writes for `universe` (masked_encoder, supcon_encoder)."""
        return self.base_dir / "checkpoints" / asset / f"{universe}.pt"

    def artifact(self, asset: str, file_name: str) -> Path:
        """A side file of `asset` (hyperparameter_search's tuned parameters as JSON)."""
        return self.base_dir / "artifacts" / asset / file_name

    def ledger(self, asset: str, universe: str) -> Path:
        """The folder of `asset`'s append-only records of `universe`, one JSON file per decision date."""
        return self.base_dir / "ledgers" / asset / universe

    def report(self, asset: str, key: str) -> Path:
        """The HTML report `asset` writes for partition `key`."""
        return self.base_dir / "reports" / asset / f"{key}.html"

    def rl_model(self, universe: str, variant: str) -> Path:
        """The saved agent rl_policy writes for one variant of `universe` (a Stable-Baselines3 zip)."""
        return self.base_dir / "rl_models" / universe / f"{variant}.zip"

    def hedging_study_folder(self, preset: str) -> Path:
        """The folder of the hedging study's files for `preset` (scorecard, metrics, metadata)."""
        return self.base_dir / HEDGING_STUDY_FOLDER / preset
