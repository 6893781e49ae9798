"""The deep assets' run config comes from the compute dataclasses: same names, defaults and descriptions,
and the dataclasses built back from a run config hold its values."""

from __future__ import annotations

import dagster as dg
import pytest

from quantlab_assets.compute.torch_runtime.oof_engine import TrainingConfig
from quantlab_assets.compute.torch_runtime.quantile import QuantileConfig
from quantlab_assets.compute.torch_runtime.quantile_training import QuantileTrainingConfig
from quantlab_assets.compute.torch_runtime.tbm import TBM_LEARNING_RATE, TbmConfig
from quantlab_assets.compute.torch_runtime.transformer import TransformerConfig
from quantlab_assets.defs.assets.deep import TransformerAssetConfig, forecaster_transformer
from quantlab_assets.defs.assets.embeddings import MaskedEncoderAssetConfig
from quantlab_assets.defs.assets.quantile import QuantileAssetConfig, forecaster_quantile
from quantlab_assets.defs.assets.tbm import TbmAssetConfig
from quantlab_assets.defs.deep_training import settings


def test_fields_without_a_default_or_excluded_are_left_to_the_caller() -> None:
    fields = QuantileAssetConfig.model_fields
    assert "n_features" not in fields and "horizons" not in fields and fields["head_init"].annotation is str
    model = settings(QuantileAssetConfig(d_model=16, head_init="zero"), QuantileConfig, n_features=7)
    assert model == QuantileConfig(n_features=7, d_model=16, head_init="zero")
    with pytest.raises(ValueError, match="head_init"):
        settings(QuantileAssetConfig(head_init="wrong"), QuantileConfig, n_features=7)


def test_run_config_values_reach_the_dataclasses_and_asset_defaults_stay_where_the_seeds_put_them() -> None:
    config = TransformerAssetConfig(d_model=16, n_heads=2, lr=1e-3, batch_size=64)
    assert settings(config, TransformerConfig, n_features=3) == TransformerConfig(n_features=3, d_model=16, n_heads=2)
    assert settings(config, TrainingConfig) == TrainingConfig(lr=1e-3, batch_size=64)
    assert settings(QuantileAssetConfig(), QuantileTrainingConfig) == QuantileTrainingConfig()
    assert settings(TbmAssetConfig(), TrainingConfig) == TrainingConfig(lr=TBM_LEARNING_RATE)
    assert settings(TbmAssetConfig(), TbmConfig, n_features=2) == TbmConfig(n_features=2)
    assert settings(MaskedEncoderAssetConfig(), TrainingConfig) == TrainingConfig(max_epochs=50, patience=5)


@pytest.mark.parametrize("asset", [forecaster_transformer, forecaster_quantile])
def test_the_launchpad_shows_each_optimisation_field_with_its_description(asset: dg.AssetsDefinition) -> None:
    fields = asset.op.config_schema.config_type.fields
    assert fields["lr"].description == "AdamW learning rate (peak, after the linear warm-up)."
    assert fields["patience"].description and fields["seed"].description
