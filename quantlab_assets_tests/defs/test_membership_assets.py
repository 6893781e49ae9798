"""Membership on the main path: the synthetic market's delistings reach the labels (dagster.materialize), and a
user's membership file quarantines the bars after a delisting (the CLI, which reads the user's universe directory)."""

import datetime as dt
import math
import textwrap
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from quantlab_assets.compute import columns as c
from quantlab_assets.defs.assets.data import cleaned_bars, raw_ohlcv, universe
from quantlab_assets.defs.assets.labels import labels
from quantlab_assets_tests.defs.conftest import lab_resources, range_tags, run_cli
from quantlab_assets_tests.defs.test_cli import _write_prices

ASSETS = [universe, raw_ohlcv, cleaned_bars, labels]
# SYN019 of the default synthetic universe delists on 2010-12-21 (its last bar).
DELISTED, LAST_BAR = "SYN019", "2010-12-21"


def test_a_synthetic_delisting_flows_from_the_universe_to_the_labels(instance: dg.DagsterInstance, data_dir: Path) -> None:
    resources = lab_resources(data_dir, "2011-04-30")
    assert dg.materialize([universe], partition_key="synthetic", instance=instance, resources=resources).success
    for selection, first, last in ((["raw_ohlcv"], "2008-09-01", "2011-04-01"),
                                   (["cleaned_bars", "rejected_bars"], "2009-10-01", "2011-04-01"),
                                   (["labels"], "2010-12-01", "2010-12-01")):
        assert dg.materialize(ASSETS, selection=selection, instance=instance, resources=resources,
                              tags=range_tags(first, last, "synthetic")).success
    table = pl.read_parquet(data_dir / "universe" / "synthetic.parquet")
    assert str(table.filter(pl.col(c.TICKER) == DELISTED)[c.DELISTED].item()) == LAST_BAR
    bars = pl.read_parquet(data_dir / "cleaned_bars" / "synthetic" / "2010-12.parquet")
    assert bars[c.IS_MEMBER].all() and str(bars.filter(pl.col(c.TICKER) == DELISTED)[c.DATE].max()) == LAST_BAR
    month = pl.read_parquet(data_dir / "labels" / "synthetic" / "2010-12.parquet")
    own = bars.filter(pl.col(c.TICKER) == DELISTED).sort(c.DATE)
    first = month.filter((pl.col(c.TICKER) == DELISTED)).sort(c.DATE).row(0, named=True)
    # Its 21-day window runs through the delisting: the label is the return to its last price, not null.
    expected = own.filter(pl.col(c.DATE) > first[c.DATE])[c.LOG_RETURN].sum()
    assert first["fwd_return_21d"] is not None and abs(first["fwd_return_21d"] - expected) < 1e-12


@pytest.mark.slow
def test_a_users_membership_file_quarantines_bars_after_a_delisting_through_the_cli(tmp_path: Path) -> None:
    """A CSV universe whose membership file delists BBB mid-March with a -50 % delisting return, and an index."""
    universes = tmp_path / "universes"
    universes.mkdir()
    (universes / "members.csv").write_text("ticker,listed,delisted,delisting_return\nBBB,,2024-03-15,-0.5\n")
    (universes / "my_csv.yaml").write_text(textwrap.dedent("""\
        name: my_csv
        source: csv
        csv:
          paths: ["prices/*.csv"]
          ticker_from_filename: true
          columns: {date: Date, open: Open, high: High, low: Low, close: Close, volume: Volume}
        close_is_adjusted: true
        membership: members.csv
        benchmark: IDX
        instruments:
          - {ticker: AAA, name: Alpha, sector: Tech, industry: Software}
          - {ticker: BBB, name: Beta, sector: Tech, industry: Software}
          - {ticker: IDX, name: Index, sector: Index, industry: Index, tradable: false}
        """))
    for ticker in ("AAA", "BBB", "IDX"):
        _write_prices(universes, ticker, dt.date(2023, 1, 2), 320)
    env = {"DAGSTER_HOME": str(tmp_path), "QUANTLAB_DATA_DIR": str(tmp_path / "data"),
           "QUANTLAB_UNIVERSE_DIR": str(universes), "QUANTLAB_AS_OF": "2024-06-28"}
    for select, partition in (("universe", ["--partition", "my_csv"]),
                              ("raw_ohlcv", ["--partition-range", "2023-01-01|my_csv...2024-02-01|my_csv"]),
                              ("raw_ohlcv,cleaned_bars,rejected_bars", ["--partition", "2024-03-01|my_csv"])):
        run = run_cli(["asset", "materialize", "-m", "quantlab_assets.definitions", "--select", select, *partition], env)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    data = tmp_path / "data"
    quarantine = pl.read_parquet(data / "rejected_bars" / "my_csv" / "2024-03.parquet").filter(pl.col(c.RULE) == "after_delisting")
    assert quarantine.height > 0 and set(quarantine[c.TICKER]) == {"BBB"}
    assert quarantine[c.SOURCE_FILE].str.ends_with("BBB.csv").all() and (quarantine[c.DATE] > dt.date(2024, 3, 15)).all()
    bars = pl.read_parquet(data / "cleaned_bars" / "my_csv" / "2024-03.parquet")
    bbb = bars.filter(pl.col(c.TICKER) == "BBB").sort(c.DATE)
    assert bbb[c.DATE][-1] == dt.date(2024, 3, 15) and bars[c.IS_MEMBER].all()
    raw_last = math.log(bbb[c.CLOSE][-1] / bbb[c.CLOSE][-2])
    assert abs(bbb[c.LOG_RETURN][-1] - (raw_last + math.log(0.5))) < 1e-12
