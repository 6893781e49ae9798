"""The features asset passes its blocking checks and applies FFD at the fixed d, which no split date reaches;
ffd_orders reports the d each instrument's training span would choose."""

import datetime as dt
from pathlib import Path

import dagster as dg
import polars as pl
from polars.testing import assert_series_equal

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.features.ffd import FFD_LOG_CLOSE, FfdParams, apply_ffd
from quantlab_assets.defs.assets.data import cleaned_bars, raw_ohlcv, universe
from quantlab_assets.defs.assets.features import features, ffd_orders
from quantlab_assets.definitions import defs
from quantlab_assets_tests.defs.conftest import lab_resources, range_tags

ASSETS = [universe, raw_ohlcv, cleaned_bars, ffd_orders, features]


def test_features_read_no_input_that_depends_on_the_split() -> None:
    """The FFD order fitted up to train_end reached test windows inside the training span; the features now
    read only bars and the universe, so moving train_end or validation_end cannot change any feature."""
    graph = defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey("features")).parent_keys == {dg.AssetKey("cleaned_bars"), dg.AssetKey("universe")}


def test_features_apply_ffd_at_the_fixed_order(instance: dg.DagsterInstance, data_dir: Path) -> None:
    as_of = "2008-06-30"
    resources = lab_resources(data_dir, as_of)
    assert dg.materialize([universe], partition_key="synthetic", instance=instance, resources=resources).success
    bars = dg.materialize(ASSETS, selection=["raw_ohlcv", "cleaned_bars", "rejected_bars"], instance=instance,
                          resources=resources, tags=range_tags("2005-01-01", "2008-06-01", "synthetic"))
    assert bars.success
    orders_run = dg.materialize(ASSETS, selection=["ffd_orders"], partition_key="synthetic", instance=instance,
                                resources=resources)
    assert orders_run.success
    orders = pl.read_parquet(data_dir / "ffd_orders" / "synthetic.parquet")
    assert orders["train_end"].unique().to_list() == [dt.date(2014, 12, 31)]
    assert orders.filter(pl.col("status") == "stationary")["d"].is_between(0, 1).all()
    summary = orders_run.asset_materializations_for_node("ffd_orders")[0].metadata["by_universe"].data["synthetic"]
    assert summary["fixed_d"] == FfdParams().d
    assert summary["needs_more_than_fixed_d"] == orders.filter(pl.col("d") > FfdParams().d)[c.TICKER].to_list()

    result = dg.materialize(ASSETS, selection=["features"], instance=instance, resources=resources,
                            tags=range_tags("2007-01-01", "2008-06-01", "synthetic"))
    assert result.success
    assert {e.check_name: e.passed for e in result.get_asset_check_evaluations()} == {
        "features_schema": True, "features_no_lookahead": True, "features_months_complete": True,
    }
    june = pl.read_parquet(data_dir / "features" / "synthetic" / "2008-06.parquet")
    cleaned = pl.read_parquet(data_dir / "cleaned_bars" / "synthetic" / "2008-06.parquet")
    assert june.select(c.DATE, c.TICKER).equals(cleaned.select(c.DATE, c.TICKER))
    assert {"ret_21d", "rsi_14", "beta_63d", "ffd_log_close", "mom_12_1__wz", "ret_1d__rz"} <= set(june.columns)
    history = pl.concat([pl.read_parquet(path) for path in sorted((data_dir / "cleaned_bars" / "synthetic").glob("*.parquet"))])
    expected = apply_ffd(history.select(c.DATE, c.TICKER, c.CLOSE)).filter(pl.col(c.DATE) >= dt.date(2008, 6, 1))
    assert_series_equal(june.sort(c.DATE, c.TICKER)[FFD_LOG_CLOSE], expected.sort(c.DATE, c.TICKER)[FFD_LOG_CLOSE])
    assert june[FFD_LOG_CLOSE].null_count() == 0
