"""The lab's IO manager: one Parquet file per partition, written atomically, read back as polars.

Assets partitioned by universe (alone or with month) exchange `dict[universe, pl.DataFrame]`, so one
run (a single-run backfill) can carry several months of several universes. On write, each universe's
frame is split into the months of the run; every month of the run gets a file, empty if it has no
rows, so "materialised" means "looked at". dagster-polars is not used: its reads fail on polars 2
(`scan_parquet` lost the arguments it passes; ../shared/guides/dagster_facts.md).

Assets partitioned by universe and a static dimension (e.g. `oof_predictions`: model_horizon x
universe) exchange `dict[partition key, pl.DataFrame]`, one file per key.

Stored history (`StoredHistory`, returned by raw_ohlcv and cleaned_bars): a write that would leave a
month with fewer rows than it holds is refused before any file is written, naming the months and, for
raw bars, the source files (`allow_shrinking` writes it anyway); months listed as withheld keep their
stored file untouched (a blocking check failed there, the other months of the run are written).

Rows dated outside every month of the partitions definition (before its first month, after its newest)
have no month of their own: they are stored with the newest month of the run, so a source row dated
2099 or 1985 stays in raw storage and in the quarantine with its file and row instead of vanishing.

Reads: a partition an input needs that is not stored raises MissingUpstreamPartitionError, which names
the asset and partitions to materialise first; months a lookback or look-ahead reads beyond a universe's
stored months are read as empty. An input declared with `optional_input()` (an edge of the graph that
may not be built yet) comes back without the partitions that are not stored.

Every materialisation carries `dagster/row_count` per partition and `dagster/column_schema` from the
asset's pandera model (defs/metadata.py). Where each file lives: compute/storage.py's StorageLayout.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.partition_span import outside_span
from quantlab_assets.compute.storage import (
    StorageLayout,
    UnreadableParquetError,
    parquet_row_count,
    read_parquet_file,
    read_parquet_files,
    shrinking_counts,
    write_parquet_atomic,
)
from quantlab_assets.defs.metadata import COLUMN_SCHEMA, ROW_COUNT, column_schema
from quantlab_assets.defs.partitions import MONTH, UNIVERSE, bars_key, month_bounds, months_by_universe

UniverseFrames = dict[str, pl.DataFrame]
KeyedFrames = dict[str, pl.DataFrame]


def _is_keyed(partitions_def: dg.PartitionsDefinition | None) -> bool:
    """Multi-partitioned by universe and a dimension other than month (one file per partition key)."""
    return isinstance(partitions_def, dg.MultiPartitionsDefinition) and MONTH not in {
        d.name for d in partitions_def.partitions_defs
    }


@dataclass(frozen=True)
class StoredHistory:
    """Month-partitioned frames of one run that are stored history: a refresh adds rows, never loses any.

    frames: universe -> the rows of the run's months (what a plain `UniverseFrames` output holds).
    withheld: universe -> month keys ('2024-03-01') whose stored file stays as it is: their blocking
        checks failed, and the other months of the same run are still written.
    allow_shrinking: write months that come back with fewer rows than stored (a source that really
        restated its history); off, such a write is refused before any file is touched.
    """

    frames: UniverseFrames
    withheld: Mapping[str, frozenset[str]] = field(default_factory=dict)
    allow_shrinking: bool = False


class ShrinkingHistoryError(RuntimeError):
    """A refresh would leave stored months with fewer rows; names the asset, months, counts and source files."""


class MissingUpstreamPartitionError(RuntimeError):
    """An input's partitions are not stored: names the asset and the partitions to materialise first."""


# AssetIn metadata key: the input may be absent (an asset the default pipeline does not build, such as a
# GPU-trained classifier, or one built later, such as the regime labels); the IO manager then hands over
# an empty dict (partitioned) or None (unpartitioned), and the asset says in its metadata what it did.
OPTIONAL_INPUT = "quantlab/optional_input"


def optional_input(partition_mapping: dg.PartitionMapping | None = None) -> dg.AssetIn:
    """An input that is an edge of the graph (lineage, staleness, backfill order) but may not be stored yet."""
    return dg.AssetIn(partition_mapping=partition_mapping, metadata={OPTIONAL_INPUT: True})


def _missing(asset_key: dg.AssetKey, partitions: list[str], why: str = "") -> MissingUpstreamPartitionError:
    named = f" [{', '.join(partitions)}]" if partitions else ""
    return MissingUpstreamPartitionError(
        f"input {asset_key.to_user_string()}{named} is not materialised{why}: "
        f"materialise {asset_key.to_user_string()}{named} first"
    )


class UnreadablePartitionError(RuntimeError):
    """A stored partition's file cannot be read: names the asset, the partition and the file to re-materialise."""


class PartitionedParquetIOManager(dg.ConfigurableIOManager):
    base_dir: str

    @property
    def layout(self) -> StorageLayout:
        """Where every artifact lives; assets ask it for the side files (checkpoints, reports) they write."""
        return StorageLayout(self.base_dir)

    def _asset_dir(self, asset_key: dg.AssetKey) -> Path:
        return self.layout.asset_dir(asset_key.path)

    def _paths(self, asset_key: dg.AssetKey, partition_keys: list[str], multi: bool) -> dict[str, list[tuple[str, Path]]]:
        """universe -> [(month key or '', path)] for the given partition keys."""
        if multi:
            return {
                universe: [(month, self.layout.month_file(asset_key.path, universe, month)) for month in months]
                for universe, months in months_by_universe(partition_keys).items()
            }
        return {key: [("", self.layout.partition_file(asset_key.path, key))] for key in partition_keys}

    def _keyed_path(self, asset_key: dg.AssetKey, partitions_def: dg.MultiPartitionsDefinition, key: str) -> Path:
        by_dimension = partitions_def.get_partition_key_from_str(str(key)).keys_by_dimension
        other = "_".join(v for d, v in sorted(by_dimension.items()) if d != UNIVERSE)
        return self.layout.keyed_file(asset_key.path, by_dimension[UNIVERSE], other)

    def handle_output(self, context: dg.OutputContext, obj: UniverseFrames | pl.DataFrame | None) -> None:
        if obj is None:
            return
        if context.has_asset_partitions and _is_keyed(context.asset_partitions_def):
            for key in context.asset_partition_keys:
                write_parquet_atomic(obj[key], self._keyed_path(context.asset_key, context.asset_partitions_def, key))
            _record_rows(context, {str(k): obj[k].height for k in context.asset_partition_keys}, next(iter(obj.values())))
            return
        if not context.has_asset_partitions:
            path = self.layout.unpartitioned_file(context.asset_key.path)
            write_parquet_atomic(obj, path)
            context.add_output_metadata({"path": dg.MetadataValue.path(str(path)), ROW_COUNT: obj.height,
                                         COLUMN_SCHEMA: column_schema(context.asset_key, obj)})
            return
        history = obj if isinstance(obj, StoredHistory) else StoredHistory(obj, allow_shrinking=True)
        multi = isinstance(context.asset_partitions_def, dg.MultiPartitionsDefinition)
        targets = self._paths(context.asset_key, list(context.asset_partition_keys), multi)
        unexpected = set(history.frames) - set(targets)
        if unexpected:
            raise ValueError(f"{context.asset_key.to_user_string()}: output for universes {sorted(unexpected)} outside this run")
        span = months_span(context.asset_partitions_def) if multi else None
        writes: list[tuple[str, Path, pl.DataFrame]] = []  # (universe, path, rows), withheld months left out
        rows_by_key: dict[str, int] = {}
        for universe, month_paths in targets.items():
            frame = history.frames[universe]
            if not multi:
                writes.append((universe, month_paths[0][1], frame))
                rows_by_key[universe] = frame.height
                continue
            withheld = history.withheld.get(universe, frozenset())
            parts = _split_by_month(frame, [month for month, _ in month_paths], span)
            if sum(part.height for part in parts.values()) != frame.height:
                raise ValueError(
                    f"{context.asset_key.to_user_string()}[{universe}]: {frame.height - sum(p.height for p in parts.values())} "
                    f"rows fall outside the run's months {month_paths[0][0]}..{month_paths[-1][0]}"
                )
            writes.extend((universe, path, parts[month]) for month, path in month_paths if month not in withheld)
            rows_by_key.update({str(bars_key(month, universe)): parts[month].height for month, _ in month_paths
                                if month not in withheld})
        if not history.allow_shrinking:
            _refuse_shrinking(context.asset_key, writes)
        for _, path, part in writes:
            write_parquet_atomic(part, path)
        context.add_output_metadata(
            {"partitions_written": len(writes),
             "partitions_withheld": sum(len(months) for months in history.withheld.values()),
             "path": dg.MetadataValue.path(str(self._asset_dir(context.asset_key)))}
        )
        if writes:
            _record_rows(context, rows_by_key, writes[0][2])

    def load_input(self, context: dg.InputContext) -> UniverseFrames | pl.DataFrame | None:
        """The stored frames of the input's partitions. A partition that is not stored raises
        MissingUpstreamPartitionError naming the asset and partition to materialise, except for an optional
        input (None or an empty dict) and for months a lookback or look-ahead reads beyond a universe's
        stored span (read as empty)."""
        optional = bool(context.definition_metadata.get(OPTIONAL_INPUT))
        if not context.has_asset_partitions:
            path = self.layout.unpartitioned_file(context.asset_key.path)
            if not path.exists():
                if optional:
                    return None
                raise _missing(context.asset_key, [])
            with _naming_the_partition(context, {path: "(unpartitioned)"}):
                return read_parquet_file(path)
        if _is_keyed(context.asset_partitions_def):
            paths = {key: self._keyed_path(context.asset_key, context.asset_partitions_def, key) for key in context.asset_partition_keys}
            absent = [str(key) for key, path in paths.items() if not path.exists()]
            if absent and not optional:
                raise _missing(context.asset_key, absent)
            with _naming_the_partition(context, {path: str(key) for key, path in paths.items()}):
                return {str(key): read_parquet_file(path) for key, path in paths.items() if path.exists()}
        multi = isinstance(context.asset_partitions_def, dg.MultiPartitionsDefinition)
        targets = self._paths(context.asset_key, list(context.asset_partition_keys), multi)
        if not multi:
            absent = [universe for universe, [(_, path)] in targets.items() if not path.exists()]
            if absent and not optional:
                raise _missing(context.asset_key, absent)
            with _naming_the_partition(context, {path: universe for universe, [(_, path)] in targets.items()}):
                return {universe: read_parquet_file(path) for universe, [(_, path)] in targets.items() if path.exists()}
        frames: UniverseFrames = {}
        for universe, month_paths in targets.items():
            present = [path for _, path in month_paths if path.exists()]
            missing = [month for month, path in month_paths if not path.exists()]
            if not present:
                if optional:
                    continue
                raise _missing(context.asset_key, [_month_range(universe, missing)],
                               " (no month of the span this run reads is stored)")
            gaps = _months_between_materialised(month_paths)
            if gaps:
                raise _missing(context.asset_key, [bars_key(m, universe) for m in gaps],
                               " although months before and after it are (another run may still be writing them; "
                               "read as empty they would change this run's result)")
            if missing:
                # Lookback months before a universe's first materialised month, and look-ahead months after
                # its newest one, are expected to be absent.
                context.log.warning(
                    f"{context.asset_key.to_user_string()}[{universe}]: {len(missing)} partition(s) not "
                    f"materialised, read as empty: {missing[:3]}{'...' if len(missing) > 3 else ''}"
                )
            keys = {path: bars_key(month, universe) for month, path in month_paths}
            with _naming_the_partition(context, keys):
                frames[universe] = read_parquet_files(present)
        return frames


def _record_rows(context: dg.OutputContext, rows_by_key: dict[str, int], sample: pl.DataFrame) -> None:
    """`dagster/row_count` on each partition written (its own rows, not the run's total: a single-run
    backfill of 264 months records 264 materialisations) and the column schema on all of them."""
    context.add_output_metadata({COLUMN_SCHEMA: column_schema(context.asset_key, sample)})
    for key, rows in rows_by_key.items():
        # OutputContext has no per-partition metadata; the step's accumulator (what
        # AssetExecutionContext.add_asset_metadata writes to) attaches it to that partition's materialisation.
        context.step_context.add_asset_metadata({ROW_COUNT: rows}, asset_key=context.asset_key, partition_key=key)


def _month_range(universe: str, months: list[str]) -> str:
    """'2024-01..2024-03|synthetic': the months to materialise for one universe, as the CLI's range reads them."""
    return f"{months[0][:7]}..{months[-1][:7]}|{universe}" if len(months) > 1 else str(bars_key(months[0], universe))


def months_span(partitions_def: dg.MultiPartitionsDefinition) -> tuple[dt.date, dt.date]:
    """First day of the first month partition and last day of the newest one."""
    months = next(d.partitions_def for d in partitions_def.partitions_defs if d.name == MONTH)
    newest = months.get_last_partition_window()
    return months.start.date(), (newest.end - dt.timedelta(days=1)).date()


def _split_by_month(frame: pl.DataFrame, months: list[str], span: tuple[dt.date, dt.date]) -> dict[str, pl.DataFrame]:
    """The rows of each month of the run (every month gets a frame, possibly empty).

    Rows dated outside every month partition (`span`) go with the run's newest month, the one place a
    run can keep them; rows inside `span` but outside the run's months are left out for the caller to refuse.
    """
    parts = {month: frame.filter(pl.col(c.DATE).is_between(*month_bounds(month), closed="both")) for month in months}
    parts[months[-1]] = pl.concat([parts[months[-1]], frame.filter(outside_span(span))])
    return parts


def _refuse_shrinking(asset_key: dg.AssetKey, writes: list[tuple[str, Path, pl.DataFrame]]) -> None:
    """Raise ShrinkingHistoryError if any planned write holds fewer rows than the file it replaces."""
    stored = {str(path): _readable_rows(path) for _, path, _ in writes if path.exists()}
    shrunk = shrinking_counts(stored, {str(path): part.height for _, path, part in writes})
    if not shrunk:
        return
    by_path = {str(path): (universe, part) for universe, path, part in writes}
    months = "; ".join(
        f"{by_path[path][0]} {Path(path).stem}: {stored_rows} rows stored, {delivered} delivered"
        for path, (stored_rows, delivered) in sorted(shrunk.items())
    )
    message = (
        f"{asset_key.to_user_string()}: this run would shrink the stored history, so no partition was written. "
        f"Months: {months}."
    )
    files = _shrunk_source_files([Path(path) for path in shrunk], [by_path[path][1] for path in shrunk])
    if files:
        message += f" Source files with fewer rows than stored: {files}."
    raise ShrinkingHistoryError(
        message + f" If the source really restated these months, rerun with the run config "
        f"ops: {{{asset_key.to_user_string()}: {{config: {{allow_shrinking_history: true}}}}}}."
    )


def _readable_rows(path: Path) -> int:
    """Rows a stored file holds; a damaged file holds none that a write could lose, so its repair goes through."""
    try:
        return parquet_row_count(path)
    except UnreadableParquetError:
        return 0


def _shrunk_source_files(stored_paths: list[Path], delivered: list[pl.DataFrame]) -> str:
    """'file (stored -> delivered rows)' for each source file that lost rows, where the rows name their file."""
    if not delivered or c.SOURCE_FILE not in delivered[0].columns:
        return ""
    stored_rows = dict(pl.concat([read_parquet_file(path).select(c.SOURCE_FILE) for path in stored_paths])
                       .group_by(c.SOURCE_FILE).len().iter_rows())
    delivered_rows = dict(pl.concat(delivered).group_by(c.SOURCE_FILE).len().iter_rows())
    return ", ".join(f"{name} ({rows} rows stored, {now} delivered)"
                     for name, (rows, now) in sorted(shrinking_counts(stored_rows, delivered_rows).items()))


def _months_between_materialised(month_paths: list[tuple[str, Path]]) -> list[str]:
    """Months without a file that lie between months with one: a hole in the history, never expected."""
    stored = [path.exists() for _, path in month_paths]
    if True not in stored:
        return []
    first, last = stored.index(True), len(stored) - 1 - stored[::-1].index(True)
    return [month for (month, _), exists in zip(month_paths[first:last + 1], stored[first:last + 1]) if not exists]


@contextmanager
def _naming_the_partition(context: dg.InputContext, partition_of: dict[Path, str]) -> Iterator[None]:
    """Turn an unreadable file into an error that says which asset and partition to re-materialise."""
    try:
        yield
    except UnreadableParquetError as error:
        raise UnreadablePartitionError(
            f"asset {context.asset_key.to_user_string()}, partition {partition_of.get(error.path, '?')}: "
            f"stored file {error.path} cannot be read; re-materialise that partition (cause: {error.__cause__})"
        ) from error
