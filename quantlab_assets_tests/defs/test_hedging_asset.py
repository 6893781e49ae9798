"""The hedging study through real dagster.materialize on the smoke preset: every method of seed 0, the
scorecard with its files, checks and MLflow runs, the figures; crisis data never reaches training."""

import json
import time
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import torch

from quantlab_assets.compute.hedging.config import HOLDOUT, PRESETS, SMOKE, policy_keys
from quantlab_assets.compute.hedging.study_files import STUDY_FOLDER
from quantlab_assets.compute.storage import StorageLayout
from quantlab_assets.compute.hedging.policy import load_policy, state_bytes
from quantlab_assets.defs.assets.hedging import (
    frozen_extractor_problems,
    seen_data_problems,
    hedge_policy,
    hedging_environments,
    hedging_figures,
    hedging_scorecard,
    stored_erm_policy,
)
from quantlab_assets.defs.io_managers import MissingUpstreamPartitionError, PartitionedParquetIOManager
from quantlab_assets.defs.partitions import hedge_policy_partitions, hedging_environment_partitions, hedging_study_partitions
from quantlab_assets.defs.resources import HedgingStudyResource, MlflowTrackingResource, TorchDeviceResource
from quantlab_assets_tests.defs.conftest import RANGE_END, RANGE_START

ASSETS = [hedging_environments, hedge_policy, hedging_scorecard, hedging_figures]
SEED0 = [k for k in policy_keys(SMOKE) if k.endswith("_seed0")]


def resources(data_dir: Path) -> dict[str, object]:
    return {
        "io_manager": PartitionedParquetIOManager(base_dir=str(data_dir)),
        "hedging_study": HedgingStudyResource(preset="smoke"),
        "torch_device": TorchDeviceResource(allow_cuda=False),
        "mlflow": MlflowTrackingResource(tracking_uri=f"sqlite:///{data_dir / 'mlflow.db'}"),
    }


def materialize(selection: list[str], partitions: tuple[str, str], data_dir: Path,
                instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    """One run over the partition range `partitions` (first, last)."""
    tags = {RANGE_START: partitions[0], RANGE_END: partitions[1]}
    result = dg.materialize(ASSETS, selection=selection, resources=resources(data_dir), instance=instance, tags=tags)
    assert result.success
    return result


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    data_dir = tmp_path_factory.mktemp("hedging") / "data"
    with dg.instance_for_test() as instance:
        started, cpu_started = time.perf_counter(), time.process_time()
        environments = hedging_environment_partitions.get_partition_keys()
        materialize(["hedging_environments"], (environments[0], environments[-1]), data_dir, instance)
        # One run trains the seed's 7 policies, erm first (irm_head starts from it).
        checks = materialize(["hedge_policy"], (SEED0[0], SEED0[-1]), data_dir, instance).get_asset_check_evaluations()
        study_result = materialize(["hedging_scorecard", "hedging_figures"], ("smoke", "smoke"), data_dir, instance)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    return {"data_dir": data_dir, "policy_checks": checks, "study": study_result, "seconds": seconds,
            "cpu_seconds": cpu_seconds}


def test_every_method_of_seed_0_runs_through_real_materialisations_in_seconds(study: dict[str, object]) -> None:
    # CPU time of this process (the in-process executor): wall time on a shared 2-core machine measures the neighbours.
    print(f"smoke study: {study['seconds']:.1f} s wall, {study['cpu_seconds']:.1f} s CPU")
    assert study["cpu_seconds"] < 40, study["cpu_seconds"]
    assert {c.check_name for c in study["policy_checks"]} == {"hedge_policy_crisis_unseen"}
    assert all(c.passed for c in study["policy_checks"]) and len(SEED0) == 7
    evaluations = study["study"].get_asset_check_evaluations()
    assert {c.check_name for c in evaluations} == {"hedging_scorecard_finite", "hedging_scorecard_crisis_unseen",
                                                  "hedging_scorecard_extractor_frozen"}
    assert all(c.passed for c in evaluations), [c.metadata for c in evaluations]


def test_the_scorecard_writes_its_files_with_provenance_and_an_honest_verdict(study: dict[str, object]) -> None:
    folder = Path(study["data_dir"]) / STUDY_FOLDER / "smoke"
    assert not (Path(study["data_dir"]) / STUDY_FOLDER / "study").exists()  # the full study's files are its own
    metadata = json.loads((folder / "metadata.json").read_text())
    assert {"git_sha", "torch_version", "environment_fingerprints", "config_hash"} <= set(metadata)
    assert set(metadata["environment_fingerprints"]) == set(hedging_environment_partitions.get_partition_keys())
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 7 * len(hedging_environment_partitions.get_partition_keys())
    scorecard = json.loads((folder / "scorecard.json").read_text())
    # One seed: no interval across seeds exists, so no configuration may claim met or not met.
    assert {row["verdict"] for row in scorecard["success"]} == {"inconclusive"}
    assert len(scorecard["success"]) == 6 and sum(row["selected"] for row in scorecard["success"]) == 2
    for name in ("cvar_frontier.png", "lambda_beta_sweeps.png", "qq_crisis_erm_vs_irm.png"):
        assert (folder / "figures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (folder / "study.html").read_text(encoding="utf-8")
    shown = study["study"].asset_materializations_for_node("hedging_figures")[0].metadata
    assert shown["study_page"].value == str(folder / "study.html") and "url" not in shown
    assert page.count("data:image/png;base64,") == 3 and page.count("<tr>") == 1 + 6 and "inconclusive" in page
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{Path(study['data_dir']) / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("quantlab_hedging").experiment_id])
    assert sorted(r.info.run_name for r in runs) == sorted(f"hedge_policy|{k}" for k in SEED0)
    assert all(r.data.tags["config_hash"] and "crisis.cvar95" in r.data.metrics for r in runs)


def test_crisis_paths_poisoned_with_nan_leave_a_trained_policy_bit_identical(study: dict[str, object], tmp_path: Path) -> None:
    data_dir = Path(study["data_dir"])
    for name in HOLDOUT:  # poison every held-out environment's stored file
        path = data_dir / "hedging_environments" / f"{name}.parquet"
        frame = pl.read_parquet(path)
        frame.with_columns(pl.lit(float("nan")).alias("spot"), pl.lit(float("nan")).alias("cost_rate")).write_parquet(path)
    before = pl.read_parquet(data_dir / "hedge_policy" / "vrex_5_seed0.parquet")
    with dg.instance_for_test() as instance:
        materialize(["hedge_policy"], ("vrex_5_seed0", "vrex_5_seed0"), data_dir, instance)
    after = pl.read_parquet(data_dir / "hedge_policy" / "vrex_5_seed0.parquet")
    assert after["state"][0] == before["state"][0]
    assert after["validation_cvar"][0] == before["validation_cvar"][0] and after["best_iteration"][0] > 0
    assert set(json.loads(after["seen_environments"][0])) == {"low", "medium", "high"}


def test_policy_partitions_read_only_the_training_and_validation_environments() -> None:
    from quantlab_assets.definitions import defs

    node = defs.resolve_asset_graph().get(dg.AssetKey("hedge_policy"))
    mapping = node.partition_mappings[dg.AssetKey("hedging_environments")]
    upstream = mapping.get_upstream_mapped_partitions_result_for_partitions(
        hedge_policy_partitions.empty_subset().with_partition_keys(["irm_head_0.1_seed0"]),
        hedge_policy_partitions, hedging_environment_partitions,
    ).partitions_subset.get_partition_keys()
    assert sorted(upstream) == ["high", "low", "medium"]
    assert "erm_0_seed0" in hedge_policy_partitions.get_partition_keys()
    assert len(hedge_policy_partitions.get_partition_keys()) == 7 * 5


def test_each_study_configuration_scores_the_policies_of_its_preset() -> None:
    from quantlab_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    for asset in ("hedging_scorecard", "hedging_figures"):
        node = graph.get(dg.AssetKey(asset))
        assert node.partitions_def == hedging_study_partitions
        assert sorted(hedging_study_partitions.get_partition_keys()) == sorted(PRESETS)
        mapping = node.partition_mappings[dg.AssetKey("hedge_policy")]
        for preset, config in PRESETS.items():
            upstream = mapping.get_upstream_mapped_partitions_result_for_partitions(
                hedging_study_partitions.empty_subset().with_partition_keys([preset]),
                hedging_study_partitions, hedge_policy_partitions,
            ).partitions_subset.get_partition_keys()
            assert sorted(upstream) == sorted(policy_keys(config)), (asset, preset)


def test_the_scorecard_checks_catch_a_moved_extractor_and_a_policy_that_saw_the_crisis(study: dict[str, object],
                                                                                      tmp_path: Path) -> None:
    data_dir = Path(study["data_dir"])
    policies = {p.stem: pl.read_parquet(p) for p in (data_dir / "hedge_policy").glob("*_seed0.parquet")}
    assert frozen_extractor_problems(policies, SMOKE) == []
    moved = load_policy(SMOKE, policies["irm_head_1_seed0"]["state"][0])
    with torch.no_grad():
        moved.extractor[0].bias.add_(1e-6)
    tampered = {**policies, "irm_head_1_seed0": policies["irm_head_1_seed0"].with_columns(
        pl.lit(state_bytes(moved), dtype=pl.Binary).alias("state"))}
    assert frozen_extractor_problems(tampered, SMOKE) == ["irm_head_1_seed0: extractor differs from the ERM extractor"]

    fingerprints = json.loads((data_dir / STUDY_FOLDER / "smoke" / "metadata.json").read_text())["environment_fingerprints"]
    assert seen_data_problems(policies, fingerprints) == []
    seen = json.loads(policies["erm_0_seed0"]["seen_environments"][0])
    leaked = {**policies, "erm_0_seed0": policies["erm_0_seed0"].with_columns(pl.lit(json.dumps(
        {**seen, "high": fingerprints["crisis"]})).alias("seen_environments"))}
    assert any("erm_0_seed0" in p for p in seen_data_problems(leaked, fingerprints))
    with pytest.raises(MissingUpstreamPartitionError, match=r"materialise hedge_policy \[erm_0_seed3\] first"):
        stored_erm_policy(StorageLayout(tmp_path), 3)
