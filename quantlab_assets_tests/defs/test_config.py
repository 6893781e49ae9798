"""Run config derived from the compute dataclasses: every launchpad field has the dataclass's name, default and
description, nested parameters are flattened under their field's name, and a run config's values reach the
dataclasses the assets compute with."""

from __future__ import annotations

import dataclasses

import dagster as dg
import pytest

from quantlab_assets.compute.backtest.engine import BacktestParams, CostParams
from quantlab_assets.compute.backtest.metrics import MetricParams
from quantlab_assets.compute.models.base_models import BaseModelParams, XGBoostParams
from quantlab_assets.compute.models.stacking import StackParams
from quantlab_assets.compute.models.tuning import TuningParams
from quantlab_assets.compute.regimes.clusters import ClusterParams
from quantlab_assets.compute.regimes.hmm import HmmParams
from quantlab_assets.compute.rl.training import PpoParams, TrainingParams
from quantlab_assets.compute.torch_runtime.oof_engine import TrainingConfig
from quantlab_assets.defs.assets.models import BarrierClassifierConfig, LiveAlphaConfig, MetaLabelConfig, OofConfig, StackConfig
from quantlab_assets.compute.portfolio.strategies import StrategyParams
from quantlab_assets.defs.assets.portfolio import BacktestConfig, TargetWeightsConfig
from quantlab_assets.defs.assets.regimes import RegimeClustersConfig, RegimeHmmConfig
from quantlab_assets.defs.assets.rl import RlEvaluationConfig, RlPolicyConfig
from quantlab_assets.defs.assets.tuning import HyperparameterSearchConfig
from quantlab_assets.defs.config import config_from, run_config_fields, settings
from quantlab_assets.definitions import defs

DERIVED = [
    (BacktestConfig, (BacktestParams,)),
    (TargetWeightsConfig, (StrategyParams,)),
    (RegimeHmmConfig, (HmmParams,)),
    (RegimeClustersConfig, (ClusterParams,)),
    (HyperparameterSearchConfig, (TuningParams,)),
    (OofConfig, (BaseModelParams,)),
    (StackConfig, (StackParams,)),
    (LiveAlphaConfig, (StackParams,)),
    (BarrierClassifierConfig, (XGBoostParams,)),
    (RlPolicyConfig, (TrainingParams,)),
    (RlEvaluationConfig, (MetricParams, BacktestParams)),
]


@pytest.mark.parametrize(("config_class", "sources"), DERIVED, ids=[config.__name__ for config, _ in DERIVED])
def test_a_derived_config_has_the_dataclasses_defaults_and_descriptions(config_class: type[dg.Config], sources: tuple[type, ...]) -> None:
    fields = config_class.model_fields
    derived = [f for source in sources for f in run_config_fields(source) if f[0] in fields]
    assert derived
    for name, _, default, description in derived:
        assert fields[name].default == default, name
        assert description and fields[name].description == description, name
    for source in sources:
        if source is not TrainingParams:  # its algorithm, seed and budget come from the partition
            assert settings(config_class(), source) == source()


def test_a_derived_config_has_the_optimisation_fields_defaults_and_descriptions() -> None:
    config_class = config_from("Optimisation", TrainingConfig)
    assert [name for name, *_ in run_config_fields(TrainingConfig)] == list(config_class.model_fields)
    for name, _, default, description in run_config_fields(TrainingConfig):
        assert config_class.model_fields[name].default == default
        assert config_class.model_fields[name].description == description
    assert settings(config_class(), TrainingConfig) == TrainingConfig()


def test_nested_parameters_are_flattened_under_their_field_and_built_back() -> None:
    fields = BacktestConfig.model_fields
    assert {"costs_commission_bps", "costs_slippage_bps", "costs_spread_bps", "delay", "rebalance"} <= set(fields)
    assert fields["rebalance"].annotation is str and "costs" not in fields
    config = BacktestConfig(costs_commission_bps=20.0, delay=2, rebalance="weekly")
    assert settings(config, BacktestParams) == BacktestParams(costs=CostParams(20.0, 5.0, 5.0), delay=2, rebalance="weekly")
    with pytest.raises(ValueError, match="rebalance must be one of"):
        settings(BacktestConfig(rebalance="hourly"), BacktestParams)


def test_values_the_partition_gives_override_the_run_config() -> None:
    config = RlPolicyConfig(ppo_n_steps=32, ppo_total_timesteps=64, evaluations=2, torch_threads=None)
    training = config.training("ppo", seed=3)
    assert (training.algorithm, training.seed, training.total_timesteps, training.eval_every) == ("ppo", 3, 64, 32)
    assert training.ppo == PpoParams(n_steps=32) and training.torch_threads is None
    assert "net_arch" not in RlPolicyConfig.model_fields and "ppo_net_arch" not in RlPolicyConfig.model_fields


def test_every_launchpad_field_of_the_lab_has_a_description() -> None:
    missing = {}
    for asset in defs.get_repository_def().assets_defs_by_key.values():
        schema = asset.op.config_schema
        config_type = schema.config_type if schema is not None else None
        if config_type is not None and hasattr(config_type, "fields"):
            if undescribed := [name for name, field in config_type.fields.items() if not field.description]:
                missing[asset.op.name] = undescribed
    assert missing == {}


def test_the_meta_labels_differ_from_the_seed_classifier_only_in_threads() -> None:
    # The meta-labels run alone once the base models are done: both cores, the same seed parameters.
    meta, barrier = MetaLabelConfig().params(), BarrierClassifierConfig().params()
    assert (meta.n_jobs, barrier.n_jobs) == (2, XGBoostParams().n_jobs)
    assert dataclasses.replace(meta, n_jobs=barrier.n_jobs) == barrier == XGBoostParams()
