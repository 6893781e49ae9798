"""Checks per month partition: a month of features whose lookback is cut short (cleaned bars not stored for
months the raw bars hold) fails its own check, which names the partitions to materialise; it is not
written, the run's complete months are, and once the history is stored the same months pass."""

from pathlib import Path

import dagster as dg

from quantlab_assets.defs.assets.data import cleaned_bars, raw_ohlcv, universe
from quantlab_assets.defs.assets.features import features
from quantlab_assets_tests.defs.conftest import lab_resources, range_tags

ASSETS = [universe, raw_ohlcv, cleaned_bars, features]
CLEANED = ["cleaned_bars", "rejected_bars"]


def _month_checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.partition: e for e in result.get_asset_check_evaluations()
            if e.check_name == "features_months_complete" and e.partition}


def test_a_month_computed_on_a_cut_lookback_fails_alone_and_names_the_partitions_to_materialise(
    instance: dg.DagsterInstance, data_dir: Path
) -> None:
    resources = lab_resources(data_dir, "2007-06-30")
    assert dg.materialize([universe], partition_key="synthetic", instance=instance, resources=resources).success
    assert dg.materialize(ASSETS, selection=["raw_ohlcv"], instance=instance, resources=resources,
                          tags=range_tags("2005-01-01", "2007-06-01", "synthetic")).success
    # cleaned bars from 2006-10 only: the raw months before are stored, their cleaned bars are not
    assert dg.materialize(ASSETS, selection=CLEANED, instance=instance, resources=resources,
                          tags=range_tags("2006-10-01", "2007-06-01", "synthetic")).success

    cut = dg.materialize(ASSETS, selection=["features"], instance=instance, resources=resources,
                         tags=range_tags("2007-05-01", "2007-06-01", "synthetic"), raise_on_error=False)

    assert not cut.success
    checks = _month_checks(cut)
    assert {key: e.passed for key, e in checks.items()} == {"2007-05-01|synthetic": False, "2007-06-01|synthetic": False}
    why = checks["2007-06-01|synthetic"].metadata["why"].value
    assert "materialise cleaned_bars [2006-04-01...2006-09-01|synthetic] first" in why
    assert not (data_dir / "features" / "synthetic").exists()

    assert dg.materialize(ASSETS, selection=CLEANED, instance=instance, resources=resources,
                          tags=range_tags("2005-01-01", "2006-09-01", "synthetic")).success
    complete = dg.materialize(ASSETS, selection=["features"], instance=instance, resources=resources,
                              tags=range_tags("2007-05-01", "2007-06-01", "synthetic"))
    assert {key: e.passed for key, e in _month_checks(complete).items()} == {
        "2007-05-01|synthetic": True, "2007-06-01|synthetic": True}
    assert sorted(p.name for p in (data_dir / "features" / "synthetic").glob("*.parquet")) == [
        "2007-05.parquet", "2007-06.parquet"]
