"""Real materialisations of the data layer on a temporary instance (in process)."""

import datetime as dt
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quantlab_assets.compute import columns as c
from quantlab_assets.defs.assets.data import CHECKS, cleaned_bars, raw_ohlcv, universe
from quantlab_assets.compute.universe import UniverseSpec, load_universe_spec
from quantlab_assets.defs.partitions import bars_key
from quantlab_assets.defs.resources import MarketDataResource
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
    assert ("materialise raw_ohlcv [2006-01-01|synthetic, 2006-02-01|synthetic, 2006-03-01|synthetic] first"
            in str(failure.step_failure_data.error))
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


# --- a refresh never destroys what is stored -------------------------------------------------------------
# The partitions' universe names are fixed when the definitions load, so these tests serve the universe
# `synthetic` from a user's CSV universe file: the resource reads that YAML instead of the catalog.
CSV_MONTHS = ("2023-01-01", "2024-03-01")  # 15 months; cleaned bars start once 252 days of history exist


class CsvUniverseMarketData(MarketDataResource):
    """MarketDataResource whose every universe is the CSV universe declared in `universe_file`."""

    universe_file: str

    def universe(self, name: str) -> UniverseSpec:
        return load_universe_spec(Path(self.universe_file))


def _csv_universe(directory: Path, tickers: tuple[str, ...] = ("AAA", "BBB", "CCC"), days: int = 330) -> Path:
    """One CSV per ticker (a random walk over `days` business days from 2023-01-02) and its universe YAML."""
    for seed, ticker in enumerate(tickers):
        dates = np.busday_offset(np.datetime64("2023-01-02"), np.arange(days), roll="forward")
        close = 100 * np.exp(np.cumsum(np.random.default_rng(seed).normal(0, 0.01, days)))
        prices = directory / "prices" / f"{ticker}.csv"
        prices.parent.mkdir(parents=True, exist_ok=True)
        pl.DataFrame({"Date": dates.astype(str), "Open": close, "High": close * 1.01, "Low": close * 0.99,
                      "Close": close, "Volume": np.full(days, 1e6)}).write_csv(prices)
    path = directory / "synthetic.yaml"
    instruments = "".join(f"  - {{ticker: {t}, name: {t}, sector: S{i}, industry: I{i}}}\n" for i, t in enumerate(tickers))
    path.write_text(
        "name: synthetic\nsource: csv\nclose_is_adjusted: true\ncsv:\n  paths: ['prices/*.csv']\n  ticker_from_filename: true\n"
        "  columns: {date: Date, open: Open, high: High, low: Low, close: Close, volume: Volume}\n"
        "instruments:\n" + instruments
    )
    return path


def _csv_resources(data_dir: Path, universe_file: Path) -> dict[str, object]:
    return {**lab_resources(data_dir, "2024-06-28"),
            "market_data": CsvUniverseMarketData(as_of="2024-06-28", universe_file=str(universe_file))}


def _store_csv_history(instance: dg.DagsterInstance, data_dir: Path, universe_file: Path, **kwargs: object) -> dg.ExecuteInProcessResult:
    resources = _csv_resources(data_dir, universe_file)
    assert dg.materialize([universe], partition_key="synthetic", instance=instance, resources=resources).success
    return dg.materialize(ALL_ASSETS, selection=BAR_ASSETS, instance=instance, resources=resources,
                          tags=range_tags(*CSV_MONTHS, "synthetic"), **kwargs)


def _stored(data_dir: Path, asset: str) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted((data_dir / asset / "synthetic").glob("*.parquet"))}


def _step_error(result: dg.ExecuteInProcessResult, step: str) -> str:
    return next(str(event.step_failure_data.error) for event in result.all_events
                if event.is_step_failure and event.step_key == step)


def test_a_header_only_csv_refuses_to_shrink_the_stored_months_unless_the_run_allows_it(
    instance: dg.DagsterInstance, data_dir: Path, tmp_path: Path
) -> None:
    universe_file = _csv_universe(tmp_path / "universes")
    assert _store_csv_history(instance, data_dir, universe_file).success
    raw_before, cleaned_before = _stored(data_dir, "raw_ohlcv"), _stored(data_dir, "cleaned_bars")
    assert len(raw_before) == 15 and pl.read_parquet(data_dir / "cleaned_bars" / "synthetic" / "2024-03.parquet").height > 0
    bbb = tmp_path / "universes" / "prices" / "BBB.csv"
    bbb.write_text("Date,Open,High,Low,Close,Volume\n")  # the header line alone

    refused = _store_csv_history(instance, data_dir, universe_file, raise_on_error=False)

    assert not refused.success
    error = _step_error(refused, "raw_ohlcv")
    assert "ShrinkingHistoryError" in error and "no partition was written" in error
    assert "synthetic 2023-01: 66 rows stored, 44 delivered" in error  # 22 business days x 3 tickers, then x 2
    assert "2024-03" in error and f"{bbb} (" in error and "allow_shrinking_history" in error
    assert str(tmp_path / "universes" / "prices" / "AAA.csv") not in error  # AAA delivered all it had
    assert _stored(data_dir, "raw_ohlcv") == raw_before and _stored(data_dir, "cleaned_bars") == cleaned_before

    # Allowed for raw_ohlcv alone, the raw months shrink and the cleaned months still refuse.
    allow = {"config": {"allow_shrinking_history": True}}
    raw_only = _store_csv_history(instance, data_dir, universe_file, raise_on_error=False,
                                  run_config={"ops": {"raw_ohlcv": allow}})
    assert not raw_only.success
    assert "cleaned_bars: this run would shrink the stored history" in _step_error(raw_only, "cleaned_bars")
    assert _stored(data_dir, "cleaned_bars") == cleaned_before
    raw_now = pl.read_parquet(data_dir / "raw_ohlcv" / "synthetic" / "2024-03.parquet")
    assert set(raw_now[c.TICKER]) == {"AAA", "CCC"}

    allowed = _store_csv_history(instance, data_dir, universe_file, run_config={"ops": {"raw_ohlcv": allow, "cleaned_bars": allow}})
    assert allowed.success
    cleaned_now = pl.read_parquet(data_dir / "cleaned_bars" / "synthetic" / "2024-03.parquet")
    assert set(cleaned_now[c.TICKER]) == {"AAA", "CCC"}


def test_a_failed_month_of_a_backfill_keeps_its_stored_version_and_the_other_months_are_written(
    instance: dg.DagsterInstance, data_dir: Path, tmp_path: Path
) -> None:
    universe_file = _csv_universe(tmp_path / "universes")
    assert _store_csv_history(instance, data_dir, universe_file).success
    february_before = _stored(data_dir, "cleaned_bars")["2024-02.parquet"]
    aaa = tmp_path / "universes" / "prices" / "AAA.csv"
    prices = pl.read_csv(aaa, infer_schema=False)
    burst = pl.col("Date").is_between(pl.lit("2024-02-05"), pl.lit("2024-02-16"))  # ten trading days of NaN closes
    restated = pl.col("Date") == pl.lit("2024-03-15")  # a vendor's correction in another month, same row count
    prices.with_columns(
        pl.when(burst).then(pl.lit("NaN")).otherwise(pl.col("Close")).alias("Close"),
        pl.when(restated).then(pl.lit("1000000")).otherwise(pl.col("Volume")).alias("Volume"),
    ).write_csv(aaa)

    result = _store_csv_history(instance, data_dir, universe_file, raise_on_error=False)

    assert not result.success
    shares = [e for e in result.get_asset_check_evaluations() if e.check_name == "cleaned_bars_rejected_share"]
    share = next(e for e in shares if e.partition is None)  # the run's result; the others are per month
    assert not share.passed
    assert share.metadata["withheld_months"].value == {"synthetic": ["2024-02"]}
    assert {e.partition for e in shares if e.partition and not e.passed} == {bars_key("2024-02-01", "synthetic")}
    assert len([e for e in shares if e.partition and e.passed]) == 14
    assert list(share.metadata["months_over_threshold"].value) == ["2024-02|synthetic"]
    stored = _stored(data_dir, "cleaned_bars")
    assert len(stored) == 15 and stored["2024-02.parquet"] == february_before
    march = pl.read_parquet(data_dir / "cleaned_bars" / "synthetic" / "2024-03.parquet")
    assert march.filter((pl.col(c.TICKER) == "AAA") & (pl.col(c.DATE) == dt.date(2024, 3, 15)))[c.VOLUME].item() == 1e6
    # The quarantine of the failed month is written: the ten NaN closes are kept with their file and line.
    quarantine = pl.read_parquet(data_dir / "rejected_bars" / "synthetic" / "2024-02.parquet")
    nan_closes = quarantine.filter(pl.col(c.RULE) == "missing_close")
    assert nan_closes.height == 10 and nan_closes[c.SOURCE_FILE].str.ends_with("AAA.csv").all()
    february = next(e for e in result.get_asset_materialization_events()
                    if e.asset_key == dg.AssetKey("cleaned_bars") and e.partition == bars_key("2024-02-01", "synthetic"))
    assert "withheld" in february.materialization.metadata


def test_a_month_failing_in_a_first_backfill_is_not_written_and_the_other_months_are(
    instance: dg.DagsterInstance, data_dir: Path, tmp_path: Path
) -> None:
    universe_file = _csv_universe(tmp_path / "universes")
    aaa = tmp_path / "universes" / "prices" / "AAA.csv"
    prices = pl.read_csv(aaa, infer_schema=False)
    prices.with_columns(
        pl.when(pl.col("Date").is_between(pl.lit("2024-02-05"), pl.lit("2024-02-16"))).then(pl.lit("NaN")).otherwise(pl.col("Close")).alias("Close")
    ).write_csv(aaa)

    result = _store_csv_history(instance, data_dir, universe_file, raise_on_error=False)

    assert not result.success
    assert sorted(_stored(data_dir, "cleaned_bars")) == [
        f"{month}.parquet" for month in pl.date_range(dt.date(2023, 1, 1), dt.date(2024, 3, 1), "1mo", eager=True).dt.strftime("%Y-%m")
        if month != "2024-02"
    ]


def test_rows_dated_outside_every_month_partition_are_reported_stored_and_quarantined(
    instance: dg.DagsterInstance, data_dir: Path, tmp_path: Path
) -> None:
    universe_file = _csv_universe(tmp_path / "universes")
    aaa = tmp_path / "universes" / "prices" / "AAA.csv"
    lines = aaa.read_text().splitlines()
    lines[1:1] = ["1985-01-02,10,10.1,9.9,10,100"]  # line 2: before the first month partition (1990-01)
    lines.append("2099-01-05,10,10.1,9.9,10,100")  # the last line: after the newest month partition
    aaa.write_text("\n".join(lines) + "\n")

    result = _store_csv_history(instance, data_dir, universe_file)

    assert result.success
    raw_event = next(e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey("raw_ohlcv"))
    note = raw_event.materialization.metadata["by_universe"].value["synthetic"]["outside_partitions"]
    assert note["rows"] == 2 and note["stored_with_month"] == "2024-03-01"
    assert note["examples"] == [f"{aaa}:2 dated 1985-01-02", f"{aaa}:{len(lines)} dated 2099-01-05"]
    raw_march = pl.read_parquet(data_dir / "raw_ohlcv" / "synthetic" / "2024-03.parquet")
    assert raw_march.filter(pl.col(c.DATE).dt.year().is_in([1985, 2099])).height == 2
    quarantine = pl.read_parquet(data_dir / "rejected_bars" / "synthetic" / "2024-03.parquet")
    outside = quarantine.filter(pl.col(c.RULE) == "outside_partitions")
    assert outside.select(c.DATE, c.TICKER, c.SOURCE_FILE, c.SOURCE_ROW).rows() == [
        (dt.date(1985, 1, 2), "AAA", str(aaa), 2), (dt.date(2099, 1, 5), "AAA", str(aaa), len(lines)),
    ]
    # The stray rows touch nothing else: no cleaned bar, and AAA's history starts on its first real day.
    cleaned = _read_months(data_dir, "cleaned_bars", "synthetic")
    assert cleaned[c.DATE].is_between(dt.date(2023, 1, 1), dt.date(2024, 3, 31)).all()


def test_a_damaged_stored_month_is_repaired_by_materialising_it_again(instance: dg.DagsterInstance, data_dir: Path) -> None:
    # The guard reads each stored month's row count; a file it cannot read has no rows left to protect.
    resources = lab_resources(data_dir, "2005-03-31")
    _materialise_universe("synthetic", instance, data_dir, "2005-03-31")
    assert dg.materialize(ALL_ASSETS, selection=["raw_ohlcv"], instance=instance, resources=resources,
                          tags=range_tags("2005-01-01", "2005-03-01", "synthetic")).success
    damaged = data_dir / "raw_ohlcv" / "synthetic" / "2005-02.parquet"
    whole = pl.read_parquet(damaged)
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])

    assert dg.materialize(ALL_ASSETS, selection=["raw_ohlcv"], instance=instance, resources=resources,
                          partition_key=bars_key("2005-02-01", "synthetic")).success
    assert_frame_equal(pl.read_parquet(damaged), whole)
