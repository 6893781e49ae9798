"""rl_policy and rl_evaluation through Dagster on a small seeded market (12 instruments, 2016-2019): cleaned bars,
stacked alpha, regime labels and embeddings stand in for the upstream pipeline (their columns, not their models), every
policy variant trains with a smoke config, then the evaluation puts them beside the baselines."""

from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.rl.names import VARIANT_NAMES
from quantlab_assets.defs.assets.rl import rl_evaluation, rl_policy
from quantlab_assets.defs.io_managers import UniverseFrames
from quantlab_assets.defs.partitions import bars_partitions, months_by_universe, universe_partitions
from quantlab_assets.defs.resources import MlflowTrackingResource, TorchDeviceResource
from quantlab_assets_tests.compute.rl.conftest import VALIDATION_DAYS, small_market_frames
from quantlab_assets_tests.defs.conftest import lab_resources, range_tags

MARKET = small_market_frames()


@dg.asset(name="cleaned_bars", partitions_def=bars_partitions, backfill_policy=dg.BackfillPolicy.single_run())
def fake_cleaned_bars(context: dg.AssetExecutionContext) -> UniverseFrames:
    returns = MARKET.returns.sort(c.TICKER, c.DATE).with_columns(pl.col("return").fill_null(0.0))
    close = returns.select(c.DATE, c.TICKER, (100 * (1 + pl.col("return")).cum_prod().over(c.TICKER)).alias(c.CLOSE),
                           (1 + pl.col("return")).log().alias(c.LOG_RETURN))
    bars = close.select(c.DATE, c.TICKER, *[pl.col(c.CLOSE).alias(col) for col in (c.OPEN, c.HIGH, c.LOW)], c.CLOSE,
                        pl.lit(1e6).alias(c.VOLUME), c.LOG_RETURN, pl.col(c.CLOSE).alias(c.RAW_CLOSE),
                        pl.lit(1.0).alias(c.ADJ_FACTOR), pl.lit(False).alias(c.IS_FILLED), pl.lit(False).alias(c.IS_OUTLIER))
    return {universe: bars for universe in months_by_universe(list(context.partition_keys))}


@dg.asset(name="stacked_alpha", partitions_def=universe_partitions)
def fake_stacked_alpha(context: dg.AssetExecutionContext) -> UniverseFrames:
    return {context.partition_key: MARKET.alpha}


@dg.asset(name="regime_labels", partitions_def=universe_partitions)
def fake_regime_labels(context: dg.AssetExecutionContext) -> UniverseFrames:
    return {context.partition_key: MARKET.regimes}


@dg.asset(name="embeddings", partitions_def=universe_partitions)
def fake_embeddings(context: dg.AssetExecutionContext) -> UniverseFrames:
    keys = MARKET.alpha.select(c.DATE, c.TICKER)
    values = np.random.default_rng(5).normal(size=(keys.height, 6)).astype(np.float32)
    return {context.partition_key: keys.with_columns(pl.Series(f"emb_{i}", values[:, i]) for i in range(6))}


ASSETS = [fake_cleaned_bars, fake_stacked_alpha, fake_regime_labels, fake_embeddings, rl_policy, rl_evaluation]
SMOKE = {"ppo_total_timesteps": 64, "sac_total_timesteps": 48, "evaluations": 2, "validation_days": VALIDATION_DAYS,
         "episode_days": 40, "ppo_n_steps": 32, "ppo_batch_size": 32, "ppo_n_epochs": 1, "sac_batch_size": 16,
         "sac_learning_starts": 16, "sac_buffer_size": 1000}


@pytest.mark.slow
def test_every_variant_trains_and_the_evaluation_compares_them_with_the_baselines(
    instance: dg.DagsterInstance, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    tracking_uri = f"file://{tmp_path / 'mlruns'}"
    resources = {**lab_resources(data_dir, "2019-12-31"), "mlflow": MlflowTrackingResource(tracking_uri=tracking_uri),
                 "torch_device": TorchDeviceResource(allow_cuda=False)}
    assert dg.materialize(ASSETS, selection=["cleaned_bars"], instance=instance, resources=resources,
                          tags=range_tags("2016-01-01", "2019-12-01", "synthetic")).success
    assert dg.materialize(ASSETS, selection=["stacked_alpha", "regime_labels", "embeddings"], partition_key="synthetic",
                          instance=instance, resources=resources).success
    for variant in VARIANT_NAMES:
        run = dg.materialize(ASSETS, selection=["rl_policy"], partition_key=f"{variant}|synthetic", instance=instance,
                             resources=resources, run_config={"ops": {"rl_policy": {"config": SMOKE}}})
        checks = {e.check_name: e.passed for e in run.get_asset_check_evaluations()}
        assert checks == {"rl_policy_weights_valid": True, "rl_policy_matches_engine": True, "rl_policy_no_lookahead": True}, variant
        observed = run.asset_materializations_for_node("rl_policy")[0].metadata["observation_features"].value
        assert any(name.startswith("emb") for name in observed["per_asset"]), observed  # the embeddings are observed
    assert (data_dir / "rl_models" / "synthetic" / "sac_blind_seed1.zip").exists()
    weights = pl.read_parquet(data_dir / "rl_policy" / "synthetic" / "ppo_aware_seed0.parquet")
    assert set(weights["span"]) == {"train", "validation", "test"} and (weights["signal_date"] == weights[c.DATE]).all()
    assert weights["weight"].max() <= 0.2 + 1e-12

    final = dg.materialize(ASSETS, selection=["rl_evaluation"], partition_key="synthetic", instance=instance,
                           resources=resources, run_config={"ops": {"rl_evaluation": {"config": {
                               "validation_days": VALIDATION_DAYS, "bootstrap_reps": 100, "costs_commission_bps": 15.0}}}})
    assert [e.passed for e in final.get_asset_check_evaluations()] == [True]
    metrics = pl.read_parquet(data_dir / "rl_evaluation" / "synthetic.parquet")
    assert metrics.height == (len(VARIANT_NAMES) + 3) * 3
    # One selected seed per algorithm x regime mode; paired aware-minus-blind intervals on every aware row.
    assert metrics.filter(pl.col("selected") & (pl.col("span") == "test")).height == 4
    aware = metrics.filter(pl.col("regime_mode") == "aware")
    assert aware["sharpe_minus_blind"].is_not_null().all()
    verdict = final.asset_materializations_for_node("rl_evaluation")[0].metadata["verdict_test_span"].value
    assert len(verdict) == 4 and {row["verdict_vs_equal_weight"] for row in verdict} <= {"better", "worse", "indistinguishable"}

    report = Path(final.asset_materializations_for_node("rl_evaluation")[0].metadata["report"].value)
    html = report.read_text(encoding="utf-8")
    assert all(name in html for name in VARIANT_NAMES) and "buy_and_hold_benchmark" in html
    assert "Execution: commission 15 bp + slippage 5 bp + spread 5 bp on traded notional; 1-bar execution delay" in html

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    run_id = final.asset_materializations_for_node("rl_evaluation")[0].metadata["mlflow_run_id"].value
    logged = client.get_run(run_id).data.metrics
    equal = metrics.filter((pl.col("strategy") == "equal_weight") & (pl.col("span") == "test"))["sharpe"][0]
    assert np.isclose(logged["equal_weight.test.sharpe"], equal)
    assert [a.path for a in client.list_artifacts(run_id, "report")] == ["report/synthetic.html"]
    params = client.get_run(run_id).data.params
    assert params["backtest.costs.commission_bps"] == "15.0" and params["metrics.bootstrap_reps"] == "100"
