"""The named selections and the one-action route: an asset backfill of `core_research` for one universe and a
month range, launched and driven by quantlab_assets.pipeline on a temporary instance."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
from dagster._core.execution.plan.objects import StepSuccessData
from dagster._core.storage.dagster_run import DagsterRunStatus

from quantlab_assets.defs.backfill import BackfillRun, backfill_progress, partition_keys_for, run_failures
from quantlab_assets.defs.groups import CORE_RESEARCH, DEEP_LEARNING, HEDGING, REINFORCEMENT_LEARNING, TUNING
from quantlab_assets.defs.jobs import SELECTIONS
from quantlab_assets.defs.partitions import MONTH, UNIVERSE
from quantlab_assets_tests.defs.conftest import REPO_ROOT

CORE_ASSETS = {
    "universe", "raw_ohlcv", "cleaned_bars", "rejected_bars", "labels", "ffd_orders", "features", "market_state",
    "regime_hmm", "regime_hmm_params", "regime_clusters", "regime_labels", "cv_folds", "oof_predictions",
    "stacked_alpha", "model_scorecard", "meta_labels", "live_alpha", "barrier_probabilities",
    "target_weights", "backtest", "backtest_positions", "backtest_trades", "backtest_metrics", "backtest_report",
    "base_model_fits", "target_portfolio", "orders", "decision_ledger", "live_track_record",
}


@pytest.fixture(scope="module")
def asset_graph():
    from quantlab_assets.definitions import defs

    return defs.resolve_asset_graph()


def _names(selection: dg.AssetSelection, asset_graph) -> set[str]:
    return {key.to_user_string() for key in selection.resolve(asset_graph)}


def test_core_research_is_exactly_the_research_chain(asset_graph) -> None:
    assert _names(SELECTIONS[CORE_RESEARCH], asset_graph) == CORE_ASSETS


def test_no_deep_learning_rl_hedging_or_tuning_asset_is_in_core_research(asset_graph) -> None:
    core = _names(SELECTIONS[CORE_RESEARCH], asset_graph)
    heavy = {name: _names(SELECTIONS[name], asset_graph) for name in (DEEP_LEARNING, REINFORCEMENT_LEARNING, HEDGING, TUNING)}
    assert all(heavy.values()), f"an empty heavy track: {heavy}"
    assert {"forecaster_transformer", "masked_encoder", "tbm_classifier"} <= heavy[DEEP_LEARNING]
    assert {"rl_policy", "hedge_policy", "hyperparameter_search"} <= set().union(*heavy.values())
    assert not core & set().union(*heavy.values())
    # Every asset of the lab is in exactly one named selection.
    assert len(core) + sum(map(len, heavy.values())) == len(list(asset_graph.get_all_asset_keys()))


def test_the_launchpad_job_records_one_asset_backfill_of_the_selection(asset_graph, instance: dg.DagsterInstance) -> None:
    from quantlab_assets.definitions import defs

    config = {"universe": "synthetic", "first_month": "2024-01-01", "last_month": "2024-03-01"}
    result = defs.get_job_def("launch_backfill").execute_in_process(
        instance=instance, run_config={"ops": {"submit_selection_backfill": {"config": config}}})

    assert result.success
    [backfill] = instance.get_backfills()
    assert backfill.is_asset_backfill and backfill.title == "core_research synthetic 2024-01..2024-03"
    assert {key.to_user_string() for key in backfill.asset_selection} == CORE_ASSETS
    targeted = backfill.asset_backfill_data.target_subset
    assert set(targeted.get_partitions_subset(dg.AssetKey("raw_ohlcv")).get_partition_keys()) == {
        f"2024-0{month}-01|synthetic" for month in (1, 2, 3)}
    assert set(targeted.get_partitions_subset(dg.AssetKey("oof_predictions")).get_partition_keys()) == {
        f"{model}_{horizon}d|synthetic" for model in ("xgboost", "lightgbm", "ridge") for horizon in (21, 63)}


def test_a_failed_run_is_reported_with_its_step_and_the_cause_of_its_error(instance: dg.DagsterInstance) -> None:
    @dg.asset
    def needs_stored_universe() -> None:
        raise FileNotFoundError("materialise universe [synthetic] first")

    result = dg.materialize([needs_stored_universe], instance=instance, raise_on_error=False)

    [failure] = run_failures(instance, result.run_id)
    assert failure.run_id == result.run_id and failure.step == "needs_stored_universe"
    assert failure.message == "FileNotFoundError: materialise universe [synthetic] first"


def _run(run_id: str, status: DagsterRunStatus, *, ranged: bool) -> BackfillRun:
    return BackfillRun(run_id=run_id, status=status, assets=("cleaned_bars",), partition="", start=None, end=None,
                       ranged=ranged)


def _report(instance: dg.DagsterInstance, run_id: str, event_type: DagsterEventType, data: object = None) -> None:
    event = DagsterEvent(event_type_value=event_type.value, job_name="__ASSET_JOB", step_key="cleaned_bars",
                         event_specific_data=data)
    instance.report_dagster_event(event, run_id=run_id)


def test_nothing_is_requested_while_a_run_over_a_range_of_months_stores_its_months(
    instance: dg.DagsterInstance,
) -> None:
    # A range run's step stores its months one after the other: an iteration then would split their children.
    universe_done = _run("universe-run", DagsterRunStatus.SUCCESS, ranged=False)
    months = _run("months-run", DagsterRunStatus.STARTED, ranged=True)
    _report(instance, months.run_id, DagsterEventType.STEP_START)
    assert backfill_progress(instance, [universe_done, months]) == (1, 0)  # computing: nothing stored yet

    stored = dg.AssetMaterialization("cleaned_bars", partition="2024-01-01|synthetic")
    _report(instance, months.run_id, DagsterEventType.ASSET_MATERIALIZATION, StepMaterializationData(stored))
    assert backfill_progress(instance, [universe_done, months]) is None

    _report(instance, months.run_id, DagsterEventType.STEP_SUCCESS, StepSuccessData(duration_ms=1.0))
    assert backfill_progress(instance, [universe_done, months]) == (1, 1)
    # The same events in a run over one partition hold nothing back.
    assert backfill_progress(instance, [universe_done, _run("months-run", DagsterRunStatus.STARTED, ranged=False)]) == (1, 1)


def test_a_universe_and_month_range_pick_their_partitions_of_each_partitions_definition() -> None:
    universes = dg.StaticPartitionsDefinition(["a", "b"])
    months = dg.MonthlyPartitionsDefinition(start_date="2024-01-01", end_date="2024-06-01")
    bars = dg.MultiPartitionsDefinition({MONTH: months, UNIVERSE: universes})
    models = dg.MultiPartitionsDefinition({"model_horizon": dg.StaticPartitionsDefinition(["x_21d", "y_21d"]),
                                           UNIVERSE: universes})

    assert partition_keys_for(None, "b", "2024-02-01", "2024-03-01") == [None]
    assert partition_keys_for(universes, "b", "2024-02-01", "2024-03-01") == ["b"]
    assert partition_keys_for(bars, "b", "2024-02-01", "2024-03-01") == ["2024-02-01|b", "2024-03-01|b"]
    assert partition_keys_for(models, "a", "2024-02-01", "2024-03-01") == ["x_21d|a", "y_21d|a"]
    with pytest.raises(ValueError, match="universe 'c'"):
        partition_keys_for(universes, "c", "2024-02-01", "2024-03-01")


# --- the real thing: one backfill of core_research on a small synthetic universe -------------------------------
TINY = "tiny_synthetic"
# Six years: after the first year of warm-up, enough out-of-fold rows for the stack's cross-fitted calibration
# to find the planted signal (on 3.5 years the calibrators came out flat and the live alpha constant).
FIRST, LAST, AS_OF = "2005-01-01", "2010-12-01", "2010-12-31"


def _tiny_universe(directory: Path) -> None:
    """The synthetic market with fewer instruments, under its own name."""
    directory.mkdir(parents=True)
    (directory / f"{TINY}.yaml").write_text(textwrap.dedent(f"""\
        name: {TINY}
        source: synthetic
        description: the seeded synthetic market, 20 instruments
        splits: {{train_end: 2008-12-31, validation_end: 2009-12-31}}
        benchmark: null
        close_is_adjusted: true
        synthetic:
          seed: 42
          n_instruments: 20
          start: 2005-01-03
        """))


@pytest.mark.slow
def test_one_backfill_materialises_every_core_asset_partition_in_dependency_order(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO_ROOT / "dagster.yaml").read_text())
    _tiny_universe(tmp_path / "universes")
    env = {**os.environ, "DAGSTER_HOME": str(home), "QUANTLAB_DATA_DIR": str(tmp_path / "data"),
           "QUANTLAB_UNIVERSE_DIR": str(tmp_path / "universes"), "QUANTLAB_AS_OF": AS_OF, "PYTHONWARNINGS": "ignore",
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-m", "quantlab_assets.pipeline", CORE_RESEARCH, "--universe", TINY, "--first", FIRST,
         "--last", LAST], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=1500, check=False)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "COMPLETED_SUCCESS" in result.stdout

    # The definitions read the universe catalog when they load: a fresh process with the test's environment.
    code = f"""
import json, dagster as dg
from quantlab_assets.definitions import defs
from quantlab_assets.defs.backfill import BackfillRun, backfill_progress, partition_keys_for, run_failures
from quantlab_assets.defs.jobs import SELECTIONS
graph = defs.resolve_asset_graph()
with dg.DagsterInstance.get() as instance:
    missing = {{}}
    for key in SELECTIONS["{CORE_RESEARCH}"].resolve(graph):
        wanted = set(partition_keys_for(graph.get(key).partitions_def, "{TINY}", "{FIRST}", "{LAST}"))
        stored = set(instance.get_materialized_partitions(key))
        if wanted - stored:
            missing[key.to_user_string()] = sorted(wanted - stored)[:3]
    oof = [r for r in instance.get_run_records() if "oof_predictions" in [k.to_user_string() for k in r.dagster_run.asset_selection or ()]]
    overlap = any(a.start_time < b.end_time and b.start_time < a.end_time for a in oof for b in oof if a is not b)
    print(json.dumps({{"missing": missing, "oof_runs": len(oof), "overlap": overlap}}))
"""
    check = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                           timeout=300, check=True)
    facts = json.loads(check.stdout.strip().splitlines()[-1])
    assert facts["missing"] == {}
    # The six base models are six runs, and the run queue had some of them running at the same time.
    assert facts["oof_runs"] == 6
    assert facts["overlap"]
