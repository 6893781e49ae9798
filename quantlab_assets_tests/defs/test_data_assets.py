"""Real materialisations of the data layer on a temporary instance (in process)."""

import datetime as dt
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quantlab_assets.compute import columns as c
from quantlab_assets.defs.assets.data import CHECKS, cleaned_bars, raw_ohlcv, universe
from quantlab_assets.defs.partitions import bars_key
from quantlab_assets_tests.defs.conftest import lab_resources, range_tags

BAR_ASSETS = ["raw_ohlcv", "cleaned_bars", "rejected_bars"]
CLEANING = ["cleaned_bars", "rejected_bars"]
ALL_ASSETS = [universe, raw_ohlcv, cleaned_bars]


def _read_months(data_dir: Path, asset: str, universe_name: str) -> pl.DataFrame:
    files = sorted((data_dir / asset / universe_name).glob("*.parquet"))
    return pl.concat([pl.read_parquet(f) for f in files])


def _materialise_universe(name: str, instance: dg.DagsterInstance, data_dir: Path, as_of: str) -> None:
    result = dg.materialize([universe], partition_key=name, instance=instance, resources=lab_resources(data_dir, as_of))
    assert result.success


def test_a_multi_month_backfill_runs_as_one_run_and_writes_one_file_per_partition(
    instance: dg.DagsterInstance, data_dir: Path
) -> None:
    _materialise_universe("synthetic", instance, data_dir, "2006-12-29")
    result = dg.materialize(
        ALL_ASSETS,
        selection=BAR_ASSETS,
        instance=instance,
        resources=lab_resources(data_dir, "2006-12-29"),
        tags=range_tags("2005-01-01", "2006-12-01", "synthetic"),
    )
    assert result.success
    assert len(instance.get_run_records()) == 2  # the universe run and one run for 24 months
    for asset in ("raw_ohlcv", "cleaned_bars", "rejected_bars"):
        stored = instance.get_materialized_partitions(dg.AssetKey(asset))
        assert len(stored) == 24, asset
        assert len(list((data_dir / asset / "synthetic").glob("*.parquet"))) == 24
    evaluations = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert evaluations == {f"cleaned_bars_{name}": True for name in CHECKS}

    cleaned = _read_months(data_dir, "cleaned_bars", "synthetic")
    raw = _read_months(data_dir, "raw_ohlcv", "synthetic")
    # The first 252 trading days of every instrument are history only (quarantined as dropped).
    assert cleaned[c.DATE].min() >= dt.date(2005, 12, 1)
    assert cleaned[c.DATE].max() == dt.date(2006, 12, 29)
    assert raw[c.DATE].min() == dt.date(2005, 1, 3)
    quarantine = _read_months(data_dir, "rejected_bars", "synthetic")
    assert set(quarantine[c.RULE].unique()) >= {"insufficient_history"}


def test_one_month_alone_reads_its_lookback_and_matches_the_backfill(
    instance: dg.DagsterInstance, data_dir: Path, tmp_path: Path
) -> None:
    as_of = "2006-12-29"
    _materialise_universe("synthetic", instance, data_dir, as_of)
    resources = lab_resources(data_dir, as_of)
    tags = range_tags("2005-01-01", "2006-12-01", "synthetic")
    assert dg.materialize(ALL_ASSETS, selection=BAR_ASSETS, instance=instance, resources=resources, tags=tags).success
    from_backfill = pl.read_parquet(data_dir / "cleaned_bars" / "synthetic" / "2006-06.parquet")

    # Re-clean June 2006 alone into a second data directory holding only the raw months it may read.
    alone_dir = tmp_path / "alone"
    for month in range(5, 13):
        for year, months in ((2005, range(month, month + 1)), (2006, range(1, 7))):
            for m in months:
                source = data_dir / "raw_ohlcv" / "synthetic" / f"{year}-{m:02d}.parquet"
                target = alone_dir / "raw_ohlcv" / "synthetic" / source.name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(source.read_bytes())
    (alone_dir / "universe").mkdir(parents=True)
    (alone_dir / "universe" / "synthetic.parquet").write_bytes((data_dir / "universe" / "synthetic.parquet").read_bytes())
    result = dg.materialize(
        ALL_ASSETS,
        selection=CLEANING,
        partition_key=bars_key("2006-06-01", "synthetic"),
        instance=instance,
        resources=lab_resources(alone_dir, as_of),
    )
    assert result.success
    alone = pl.read_parquet(alone_dir / "cleaned_bars" / "synthetic" / "2006-06.parquet")
    assert alone.height > 0
    assert_frame_equal(alone, from_backfill)


def test_a_hole_in_the_lookback_fails_the_cleaning_and_names_the_months_instead_of_reading_them_as_empty(
    instance: dg.DagsterInstance, data_dir: Path
) -> None:
    # Two overlapping backfills at once left this state: 2005 stored, 2006-01..03 still being written by
    # the other run. Read as empty, they shortened the instruments' history and emptied April 2006.
    as_of = "2006-12-29"
    _materialise_universe("synthetic", instance, data_dir, as_of)
    resources = lab_resources(data_dir, as_of)
    for first, last in (("2005-01-01", "2005-12-01"), ("2006-04-01", "2006-06-01")):
        assert dg.materialize(ALL_ASSETS, selection=["raw_ohlcv"], instance=instance, resources=resources,
                              tags=range_tags(first, last, "synthetic")).success

    result = dg.materialize(ALL_ASSETS, selection=CLEANING, partition_key=bars_key("2006-06-01", "synthetic"),
                            instance=instance, resources=resources, raise_on_error=False)

    assert not result.success
    failure = next(event for event in result.all_events if event.is_step_failure)
    assert "raw_ohlcv[synthetic]: months 2006-01, 2006-02, 2006-03 lie between materialised months" in str(
        failure.step_failure_data.error)
    assert not (data_dir / "cleaned_bars" / "synthetic" / "2006-06.parquet").exists()


def test_the_real_sp500_sample_cleans_without_capping_genuine_crisis_moves(
    instance: dg.DagsterInstance, data_dir: Path
) -> None:
    as_of = "2026-01-01"
    _materialise_universe("sp500_sample", instance, data_dir, as_of)
    result = dg.materialize(
        ALL_ASSETS,
        selection=BAR_ASSETS,
        instance=instance,
        resources=lab_resources(data_dir, as_of),
        tags=range_tags("2007-01-01", "2008-12-01", "sp500_sample"),
    )
    assert result.success
    cleaned = _read_months(data_dir, "cleaned_bars", "sp500_sample")
    october = cleaned.filter(pl.col(c.DATE).is_between(dt.date(2008, 10, 1), dt.date(2008, 10, 31)))
    assert october[c.TICKER].n_unique() == 22
    assert not october[c.IS_OUTLIER].any()
    # 2008-10-13: the S&P 500's largest one-day gain since the 1930s, +11.6 %, kept as it happened.
    gspc = october.filter((pl.col(c.TICKER) == "^GSPC") & (pl.col(c.DATE) == dt.date(2008, 10, 13)))
    assert gspc[c.LOG_RETURN].item() == pytest.approx(0.1096, abs=1e-3)
    # Close-only stocks keep open/high/low/volume null: nothing is invented.
    aapl = october.filter(pl.col(c.TICKER) == "AAPL")
    assert aapl[c.OPEN].null_count() == aapl.height and aapl[c.CLOSE].null_count() == 0


def test_rematerialising_a_month_is_idempotent(instance: dg.DagsterInstance, data_dir: Path) -> None:
    as_of = "2006-03-31"
    _materialise_universe("synthetic", instance, data_dir, as_of)
    resources = lab_resources(data_dir, as_of)
    tags = range_tags("2005-01-01", "2006-03-01", "synthetic")
    assert dg.materialize(ALL_ASSETS, selection=BAR_ASSETS, instance=instance, resources=resources, tags=tags).success
    files = sorted(data_dir.glob("*/synthetic/2006-0*.parquet"))
    first = {path: path.read_bytes() for path in files}
    again = dg.materialize(
        ALL_ASSETS, selection=BAR_ASSETS, instance=instance, resources=resources,
        partition_key=bars_key("2006-03-01", "synthetic"),
    )
    assert again.success
    assert {path: path.read_bytes() for path in files} == first
