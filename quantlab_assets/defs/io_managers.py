"""The lab's IO manager: one Parquet file per partition, written atomically, read back as polars.

Assets partitioned by universe (alone or with month) exchange `dict[universe, pl.DataFrame]`, so one
run (a single-run backfill) can carry several months of several universes. On write, each universe's
frame is split into the months of the run; every month of the run gets a file, empty if it has no
rows, so "materialised" means "looked at". dagster-polars is not used: its reads fail on polars 2
(`scan_parquet` lost the arguments it passes; ../shared/guides/dagster_facts.md).

Assets partitioned by universe and a static dimension (e.g. `oof_predictions`: model_horizon x
universe) exchange `dict[partition key, pl.DataFrame]`, one file per key.

Layout under `base_dir`: <asset>/<universe>/<YYYY-MM>.parquet, <asset>/<universe>.parquet, <asset>.parquet,
<asset>/<universe>/<other key>.parquet.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.storage import (
    UnreadableParquetError,
    read_parquet_file,
    read_parquet_files,
    write_parquet_atomic,
)
from quantlab_assets.defs.partitions import MONTH, UNIVERSE, bars_key, month_bounds, months_by_universe

UniverseFrames = dict[str, pl.DataFrame]
KeyedFrames = dict[str, pl.DataFrame]


def _is_keyed(partitions_def: dg.PartitionsDefinition | None) -> bool:
    """Multi-partitioned by universe and a dimension other than month (one file per partition key)."""
    return isinstance(partitions_def, dg.MultiPartitionsDefinition) and MONTH not in {
        d.name for d in partitions_def.partitions_defs
    }


class MissingUpstreamPartitionError(RuntimeError):
    """Months inside the span a run reads are not stored: names the asset, universe and months to materialise."""


class UnreadablePartitionError(RuntimeError):
    """A stored partition's file cannot be read: names the asset, the partition and the file to re-materialise."""


class PartitionedParquetIOManager(dg.ConfigurableIOManager):
    base_dir: str

    def _asset_dir(self, asset_key: dg.AssetKey) -> Path:
        return Path(self.base_dir).joinpath(*asset_key.path)

    def _paths(self, asset_key: dg.AssetKey, partition_keys: list[str], multi: bool) -> dict[str, list[tuple[str, Path]]]:
        """universe -> [(month key or '', path)] for the given partition keys."""
        root = self._asset_dir(asset_key)
        if multi:
            return {
                universe: [(month, root / universe / f"{month[:7]}.parquet") for month in months]
                for universe, months in months_by_universe(partition_keys).items()
            }
        return {key: [("", root / f"{key}.parquet")] for key in partition_keys}

    def _keyed_path(self, asset_key: dg.AssetKey, partitions_def: dg.MultiPartitionsDefinition, key: str) -> Path:
        by_dimension = partitions_def.get_partition_key_from_str(str(key)).keys_by_dimension
        other = "_".join(v for d, v in sorted(by_dimension.items()) if d != UNIVERSE)
        return self._asset_dir(asset_key) / by_dimension[UNIVERSE] / f"{other}.parquet"

    def handle_output(self, context: dg.OutputContext, obj: UniverseFrames | pl.DataFrame | None) -> None:
        if obj is None:
            return
        if context.has_asset_partitions and _is_keyed(context.asset_partitions_def):
            for key in context.asset_partition_keys:
                write_parquet_atomic(obj[key], self._keyed_path(context.asset_key, context.asset_partitions_def, key))
            context.add_output_metadata({"rows": sum(obj[k].height for k in context.asset_partition_keys)})
            return
        if not context.has_asset_partitions:
            path = self._asset_dir(context.asset_key).with_suffix(".parquet")
            write_parquet_atomic(obj, path)
            context.add_output_metadata({"path": dg.MetadataValue.path(str(path)), "rows": obj.height})
            return
        multi = isinstance(context.asset_partitions_def, dg.MultiPartitionsDefinition)
        targets = self._paths(context.asset_key, list(context.asset_partition_keys), multi)
        unexpected = set(obj) - set(targets)
        if unexpected:
            raise ValueError(f"{context.asset_key.to_user_string()}: output for universes {sorted(unexpected)} outside this run")
        rows = 0
        for universe, month_paths in targets.items():
            frame = obj[universe]
            if not multi:
                write_parquet_atomic(frame, month_paths[0][1])
                rows += frame.height
                continue
            written = 0
            for month, path in month_paths:
                first, last = month_bounds(month)
                part = frame.filter(pl.col(c.DATE).is_between(first, last, closed="both"))
                write_parquet_atomic(part, path)
                written += part.height
            if written != frame.height:
                raise ValueError(
                    f"{context.asset_key.to_user_string()}[{universe}]: {frame.height - written} rows fall "
                    f"outside the run's months {month_paths[0][0]}..{month_paths[-1][0]}"
                )
            rows += written
        context.add_output_metadata(
            {"rows": rows, "partitions_written": sum(len(p) for p in targets.values()),
             "path": dg.MetadataValue.path(str(self._asset_dir(context.asset_key)))}
        )

    def load_input(self, context: dg.InputContext) -> UniverseFrames | pl.DataFrame:
        if not context.has_asset_partitions:
            path = self._asset_dir(context.asset_key).with_suffix(".parquet")
            with _naming_the_partition(context, {path: "(unpartitioned)"}):
                return read_parquet_file(path)
        if _is_keyed(context.asset_partitions_def):
            paths = {key: self._keyed_path(context.asset_key, context.asset_partitions_def, key) for key in context.asset_partition_keys}
            absent = [key for key, path in paths.items() if not path.exists()]
            if absent:
                raise FileNotFoundError(f"{context.asset_key.to_user_string()}: partitions {absent} not materialised")
            with _naming_the_partition(context, {path: str(key) for key, path in paths.items()}):
                return {str(key): read_parquet_file(path) for key, path in paths.items()}
        multi = isinstance(context.asset_partitions_def, dg.MultiPartitionsDefinition)
        targets = self._paths(context.asset_key, list(context.asset_partition_keys), multi)
        frames: UniverseFrames = {}
        for universe, month_paths in targets.items():
            present = [path for _, path in month_paths if path.exists()]
            missing = [month for month, path in month_paths if not path.exists()]
            gaps = _months_between_materialised(month_paths)
            if gaps:
                raise MissingUpstreamPartitionError(
                    f"{context.asset_key.to_user_string()}[{universe}]: months {', '.join(m[:7] for m in gaps)} lie "
                    f"between materialised months but are not materialised (another run may still be writing them); "
                    f"materialise them first: read as empty they would change this run's result"
                )
            if missing:
                # Lookback months before a universe's first materialised month, and look-ahead months after
                # its newest one, are expected to be absent.
                context.log.warning(
                    f"{context.asset_key.to_user_string()}[{universe}]: {len(missing)} partition(s) not "
                    f"materialised, read as empty: {missing[:3]}{'...' if len(missing) > 3 else ''}"
                )
            keys = {path: bars_key(month, universe) if multi else universe for month, path in month_paths}
            with _naming_the_partition(context, keys):
                frames[universe] = read_parquet_files(present)
        return frames


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
