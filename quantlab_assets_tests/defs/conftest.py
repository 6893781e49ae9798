"""Fixtures for the Dagster layer: a temporary instance, data directory and pinned as-of date."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from quantlab_assets.defs.io_managers import PartitionedParquetIOManager
from quantlab_assets.defs.resources import DataQualityResource, MarketDataResource

REPO_ROOT = Path(__file__).resolve().parents[2]
DAGSTER_CLI = Path(sys.executable).with_name("dagster")
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as test_instance:
        yield test_instance


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def lab_resources(data_dir: Path, as_of: str, max_rejected_share: float = 0.05) -> dict[str, object]:
    return {
        "io_manager": PartitionedParquetIOManager(base_dir=str(data_dir)),
        "market_data": MarketDataResource(as_of=as_of),
        "data_quality": DataQualityResource(max_rejected_share=max_rejected_share),
    }


def range_tags(first_month: str, last_month: str, universe: str) -> dict[str, str]:
    return {RANGE_START: f"{first_month}|{universe}", RANGE_END: f"{last_month}|{universe}"}


def run_cli(args: list[str], env: dict[str, str], cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    """Run the `dagster` CLI of this environment with `env` added to a clean copy of os.environ."""
    full_env = {**os.environ, **env}
    return subprocess.run(
        [str(DAGSTER_CLI), *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=300, check=False
    )


# --- the deep-learning assets' upstream, built once per session and shared ------------------
MODEL_INPUTS_AS_OF = "2008-06-30"


@pytest.fixture(scope="session")
def model_inputs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dg.DagsterInstance, Path]]:
    """An instance and data dir holding 3.5 synthetic years of features, labels and cv_folds (universe
    `synthetic`, 2005-01 .. 2008-06), what the training assets read; tests add their own assets to it."""
    from quantlab_assets.defs.assets.data import cleaned_bars, raw_ohlcv, universe
    from quantlab_assets.defs.assets.features import features, ffd_orders
    from quantlab_assets.defs.assets.labels import labels
    from quantlab_assets.defs.assets.models import cv_folds

    root = tmp_path_factory.mktemp("model_inputs")
    (root / "dagster_home").mkdir()
    data = root / "data"
    assets = [universe, raw_ohlcv, cleaned_bars, labels, ffd_orders, features, cv_folds]
    resources = lab_resources(data, MODEL_INPUTS_AS_OF)
    months = range_tags("2005-01-01", "2008-06-01", "synthetic")
    with dg.instance_for_test(temp_dir=str(root / "dagster_home")) as shared:
        assert dg.materialize([universe], partition_key="synthetic", instance=shared, resources=resources).success
        assert dg.materialize(assets, selection=["raw_ohlcv", "cleaned_bars", "rejected_bars", "labels"], instance=shared,
                              resources=resources, tags=months).success
        assert dg.materialize(assets, selection=["ffd_orders", "cv_folds"], partition_key="synthetic", instance=shared,
                              resources=resources).success
        assert dg.materialize(assets, selection=["features"], instance=shared, resources=resources, tags=months).success
        yield shared, data


def backfill_bars(instance: dg.DagsterInstance, data_dir: Path, as_of: str, first_month: str, last_month: str,
                  universe_name: str = "synthetic") -> dg.ExecuteInProcessResult:
    """On `instance`: the universe, then raw, cleaned and rejected bars of first_month..last_month in one run
    (returned, failed or not, for its checks)."""
    from quantlab_assets.defs.assets.data import cleaned_bars, raw_ohlcv, universe

    resources, assets = lab_resources(data_dir, as_of), [universe, raw_ohlcv, cleaned_bars]
    assert dg.materialize(assets, selection=["universe"], partition_key=universe_name, instance=instance,
                          resources=resources).success
    return dg.materialize(assets, selection=["raw_ohlcv", "cleaned_bars", "rejected_bars"], instance=instance,
                          resources=resources, tags=range_tags(first_month, last_month, universe_name),
                          raise_on_error=False)
