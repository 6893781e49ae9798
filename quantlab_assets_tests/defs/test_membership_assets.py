"""Membership on the main path, through dagster.materialize: the synthetic market's delistings reach the labels."""

from pathlib import Path

import dagster as dg
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.defs.assets.data import cleaned_bars, raw_ohlcv, universe
from quantlab_assets.defs.assets.labels import labels
from quantlab_assets_tests.defs.conftest import lab_resources, range_tags

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
