"""FFD orders are fitted on the training span only; the features asset passes its blocking checks."""

import datetime as dt
from pathlib import Path

import dagster as dg
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.defs.assets.data import cleaned_bars, raw_ohlcv, universe
from quantlab_assets.defs.assets.features import features, ffd_orders
from quantlab_assets_tests.defs.conftest import lab_resources, range_tags

ASSETS = [universe, raw_ohlcv, cleaned_bars, ffd_orders, features]


def test_features_follow_ffd_orders_fitted_on_the_training_span(instance: dg.DagsterInstance, data_dir: Path) -> None:
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

    result = dg.materialize(ASSETS, selection=["features"], instance=instance, resources=resources,
                            tags=range_tags("2007-01-01", "2008-06-01", "synthetic"))
    assert result.success
    assert {e.check_name: e.passed for e in result.get_asset_check_evaluations()} == {
        "features_schema": True, "features_no_lookahead": True,
    }
    june = pl.read_parquet(data_dir / "features" / "synthetic" / "2008-06.parquet")
    cleaned = pl.read_parquet(data_dir / "cleaned_bars" / "synthetic" / "2008-06.parquet")
    assert june.select(c.DATE, c.TICKER).equals(cleaned.select(c.DATE, c.TICKER))
    assert {"ret_21d", "rsi_14", "beta_63d", "ffd_log_close", "mom_12_1__wz", "ret_1d__rz"} <= set(june.columns)
    stationary = orders.filter(pl.col("status") == "stationary")[c.TICKER]
    assert june.filter(pl.col(c.TICKER).is_in(stationary.implode()))["ffd_log_close"].null_count() == 0
