"""Atomic writes (Parquet, text, any writer): a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import torch
from polars.testing import assert_frame_equal

from quantlab_assets.compute.storage import (
    UnreadableParquetError,
    parquet_row_count,
    read_parquet_files,
    shrinking_counts,
    write_atomic,
    write_parquet_atomic,
    write_text_atomic,
)

OLD = pl.DataFrame({"x": [1, 2, 3], "y": ["a", "b", "c"]})
NEW = pl.DataFrame({"x": [10, 20], "y": ["new", "rows"]})


class Interrupted(RuntimeError):
    pass


def _files(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


def test_write_creates_parent_directories_and_the_file(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "frame.parquet"
    write_parquet_atomic(OLD, path)
    assert_frame_equal(pl.read_parquet(path), OLD)
    assert _files(path.parent) == ["frame.parquet"]


def test_a_successful_write_replaces_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "frame.parquet"
    write_parquet_atomic(OLD, path)
    write_parquet_atomic(NEW, path)
    assert_frame_equal(pl.read_parquet(path), NEW)
    assert _files(tmp_path) == ["frame.parquet"]


@pytest.mark.parametrize("existing", [pytest.param(True, id="old-file-exists"), pytest.param(False, id="no-old-file")])
def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, existing: bool
) -> None:
    path = tmp_path / "frame.parquet"
    if existing:
        write_parquet_atomic(OLD, path)
    real_write = pl.DataFrame.write_parquet
    written: list[Path] = []

    def partial_then_crash(self: pl.DataFrame, file: Any, *args: Any, **kwargs: Any) -> None:
        real_write(self, file, *args, **kwargs)
        data = Path(file).read_bytes()
        Path(file).write_bytes(data[: len(data) // 2])  # half a file on disk, then the process "dies"
        written.append(Path(file))
        raise Interrupted("killed mid-write")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", partial_then_crash)
    with pytest.raises(Interrupted):
        write_parquet_atomic(NEW, path)
    monkeypatch.undo()

    assert written and written[0] != path and written[0].parent == path.parent
    assert not written[0].exists()
    if existing:
        assert _files(tmp_path) == ["frame.parquet"]
        assert_frame_equal(pl.read_parquet(path), OLD)
    else:
        assert _files(tmp_path) == []


def test_a_failing_rename_leaves_the_old_file_and_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "frame.parquet"
    write_parquet_atomic(OLD, path)

    def no_rename(src: Any, dst: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(OSError, match="disk full"):
        write_parquet_atomic(NEW, path)
    monkeypatch.undo()
    assert _files(tmp_path) == ["frame.parquet"]
    assert_frame_equal(pl.read_parquet(path), OLD)


def test_read_parquet_files_concatenates_in_order(tmp_path: Path) -> None:
    first, second = tmp_path / "1.parquet", tmp_path / "2.parquet"
    write_parquet_atomic(OLD, first)
    write_parquet_atomic(NEW, second)
    assert_frame_equal(read_parquet_files([second, first]), pl.concat([NEW, OLD]))


def test_read_parquet_files_of_no_files_is_an_empty_frame_of_the_schema() -> None:
    schema = {"x": pl.Int64, "y": pl.String}
    empty = read_parquet_files([], schema)
    assert empty.height == 0 and empty.schema == pl.Schema(schema)
    assert read_parquet_files([]).shape == (0, 0)


def _half_then_crash(content: bytes, seen: list[Path]):
    def write(temporary: Path) -> None:
        seen.append(temporary)
        temporary.write_bytes(content[: len(content) // 2])  # half a file on disk, then the process "dies"
        raise Interrupted("killed mid-write")
    return write


@pytest.mark.parametrize("failing", ["writer", "fsync", "rename"])
def test_write_atomic_failing_anywhere_keeps_the_previous_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    path = tmp_path / "checkpoint.pt"
    write_atomic(path, lambda temporary: temporary.write_bytes(b"previous checkpoint"))
    seen: list[Path] = []
    write = _half_then_crash(b"the new checkpoint, longer", seen)
    if failing != "writer":
        def write(temporary: Path) -> None:
            seen.append(temporary)
            temporary.write_bytes(b"the new checkpoint, longer")

        def broken(*args: Any) -> None:
            raise OSError(f"{failing} failed")

        monkeypatch.setattr(os, "fsync" if failing == "fsync" else "replace", broken)
    with pytest.raises((Interrupted, OSError)):
        write_atomic(path, write)
    monkeypatch.undo()
    assert seen and seen[0].parent == path.parent and seen[0] != path
    assert path.read_bytes() == b"previous checkpoint"
    assert _files(tmp_path) == ["checkpoint.pt"]


def test_write_atomic_flushes_the_file_and_the_directory_and_never_reuses_a_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flushed: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(descriptor: int) -> None:
        flushed.append("directory" if stat.S_ISDIR(os.fstat(descriptor).st_mode) else "file")
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    temporaries: list[Path] = []

    def write(temporary: Path) -> None:
        temporaries.append(temporary)
        temporary.write_text("x")

    path = tmp_path / "report.html"
    assert write_atomic(path, write) == path
    write_atomic(path, write)
    assert flushed == ["file", "directory"] * 2
    assert temporaries[0] != temporaries[1] and all(t.name.startswith(".report.html.") for t in temporaries)


def test_text_and_torch_checkpoints_round_trip(tmp_path: Path) -> None:
    text = tmp_path / "reports" / "study.json"
    assert write_text_atomic('{"verdict": "met"} \u2713', text).read_text(encoding="utf-8") == '{"verdict": "met"} \u2713'
    checkpoint = {"state": {"weight": torch.arange(3.0)}, "features": ["ret_1d"]}
    path = write_atomic(tmp_path / "encoder.pt", lambda temporary: torch.save(checkpoint, temporary))
    loaded = torch.load(path, weights_only=True)
    assert loaded["features"] == ["ret_1d"] and torch.equal(loaded["state"]["weight"], torch.arange(3.0))
    assert _files(tmp_path) == ["encoder.pt", "reports"]
def test_parquet_row_count_reads_the_rows_of_a_stored_file(tmp_path: Path) -> None:
    path = tmp_path / "frame.parquet"
    write_parquet_atomic(OLD, path)
    assert parquet_row_count(path) == 3
    write_parquet_atomic(OLD.head(0), path)
    assert parquet_row_count(path) == 0


def test_parquet_row_count_of_a_damaged_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "frame.parquet"
    path.write_bytes(b"not parquet")
    with pytest.raises(UnreadableParquetError) as error:
        parquet_row_count(path)
    assert error.value.path == path


def test_shrinking_counts_lists_only_stored_keys_that_would_hold_fewer_rows() -> None:
    stored = {"2024-01": 63, "2024-02": 60, "2024-03": 0, "2024-04": 10}
    delivered = {"2024-01": 63, "2024-02": 40, "2024-03": 0, "2024-05": 5}  # 2024-04 delivers nothing
    assert shrinking_counts(stored, delivered) == {"2024-02": (60, 40), "2024-04": (10, 0)}


def test_growing_or_new_keys_never_count_as_shrinking() -> None:
    assert shrinking_counts({"a.csv": 5}, {"a.csv": 6, "b.csv": 1}) == {}
    assert shrinking_counts({}, {}) == {}
