"""The decision ledger: one immutable JSON record per decision date of what the lab recommended.

A record holds the decision date, the targets and orders of every decided strategy (and why the others
were not decided), the code version, the inputs it used (their versions and dates) and the parameters.
Records are canonical JSON (sorted keys, no whitespace), so a record's bytes are a function of its
content; each stores the SHA-256 of its own body (`record_hash`) and the hash of the previous date's
record (`previous_hash`), a hash chain: editing, removing or reordering any past record breaks every
later link, and `verify_ledger` names where.

Append-only: a decision date that already has a record keeps its first record (`append_record` returns
it untouched and says so); a recomputation of that date never rewrites it, whatever it recommends now.
A decision date older than the newest record is refused: the ledger only grows forward in time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.storage import write_text_atomic

LEDGER_FORMAT = 1
RECORD_HASH, PREVIOUS_HASH = "record_hash", "previous_hash"


class LedgerOrderError(ValueError):
    """A decision dated before the ledger's newest record: the ledger never inserts into its past."""


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str, allow_nan=False)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def frame_rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """A frame as JSON rows (dates as ISO strings), the way a record stores it."""
    return json.loads(frame.write_json())


def rows_frame(rows: list[dict[str, Any]], schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """The rows of a record back as a frame of `schema` (ISO dates parsed)."""
    frame = pl.DataFrame(rows, schema={name: pl.String if dtype == pl.Date else dtype for name, dtype in schema.items()})
    return frame.with_columns(pl.col(name).str.to_date() for name, dtype in schema.items() if dtype == pl.Date)


def code_version() -> dict[str, str | None]:
    """The package version and, in a git checkout, the commit (with a flag for uncommitted changes)."""
    root = Path(__file__).resolve().parents[3]
    try:
        version = importlib.metadata.version("quantlab_assets")
    except importlib.metadata.PackageNotFoundError:
        version = None

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    status = git("status", "--porcelain", "--untracked-files=no")
    return {"package": version, "git_commit": git("rev-parse", "HEAD"),
            "uncommitted_changes": None if status is None else str(bool(status))}


def new_record(
    decision_date: dt.date, body: Mapping[str, Any], previous: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The record of `decision_date`: `body` (targets, orders, code_version, inputs, params...) chained to
    the previous record (None: the first)."""
    record = {**body, "format": LEDGER_FORMAT, c.DATE: decision_date.isoformat(),
              PREVIOUS_HASH: previous[RECORD_HASH] if previous else None}
    return {**record, RECORD_HASH: sha256(canonical_json(record))}


@dataclass(frozen=True)
class Appended:
    record: dict[str, Any]
    path: Path
    written: bool  # False: the date already had a record, kept as it was


class DecisionLedger:
    """The records of one universe: `<directory>/<YYYY-MM-DD>.json`, one per decision date."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def paths(self) -> list[Path]:
        return sorted(self.directory.glob("*.json")) if self.directory.exists() else []

    def path(self, decision_date: dt.date) -> Path:
        return self.directory / f"{decision_date.isoformat()}.json"

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(path.read_text(encoding="utf-8")) for path in self.paths()]

    def newest(self) -> dict[str, Any] | None:
        paths = self.paths()
        return json.loads(paths[-1].read_text(encoding="utf-8")) if paths else None

    def append(self, decision_date: dt.date, body: Mapping[str, Any]) -> Appended:
        """Store the record of `decision_date`, or keep the one stored (see the module docstring)."""
        path = self.path(decision_date)
        if path.exists():
            return Appended(json.loads(path.read_text(encoding="utf-8")), path, written=False)
        newest = self.newest()
        if newest is not None and newest[c.DATE] > decision_date.isoformat():
            raise LedgerOrderError(f"decision ledger {self.directory}: a decision dated {decision_date} is older than "
                                   f"the newest record ({newest[c.DATE]}); the ledger only appends forward")
        record = new_record(decision_date, body, newest)
        # Single writer per universe (one run per partition); write_text_atomic never leaves half a record.
        write_text_atomic(canonical_json(record), path)
        return Appended(record, path, written=True)


def verify_ledger(records: list[dict[str, Any]]) -> list[str]:
    """Problems of a ledger read in date order: a record whose body no longer matches its hash, or whose
    previous_hash is not the previous record's hash (an edit, removal or insertion in the past)."""
    problems, previous = [], None
    for record in records:
        body = {k: v for k, v in record.items() if k != RECORD_HASH}
        if sha256(canonical_json(body)) != record.get(RECORD_HASH):
            problems.append(f"{record.get(c.DATE)}: content does not match its record_hash (edited after it was stored)")
        expected = previous[RECORD_HASH] if previous else None
        if record.get(PREVIOUS_HASH) != expected:
            problems.append(f"{record.get(c.DATE)}: previous_hash {record.get(PREVIOUS_HASH)} is not the hash of the "
                            f"previous record ({expected}): a past record was changed, removed or inserted")
        previous = record
    return problems
