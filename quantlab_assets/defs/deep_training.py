"""What the deep-learning assets share: their run config, derived from the compute dataclasses, and their inputs.

Run config: every field of a deep asset's architecture and optimisation is a field of a frozen dataclass in
compute/torch_runtime/configs.py (TrainingConfig, TransformerConfig, TbmConfig, ...), free of torch; the deep
assets derive their run config from them with defs/config.py's `config_from` and build them back with
`settings` (both imported here, beside the deep assets' other shared pieces).

Torch loads only in the steps that train: the deep asset modules import the configs at the top and the
torch code (networks, training, window panels) inside their asset functions, because every Dagster run
process imports all the definitions and torch with lightning takes about 3.5 s of it.

Inputs: `label_panel` is the window panel every deep asset trains on, the scale-free inputs of the features
asset (compute/torch_runtime/inputs.py) with the model's targets made from the labels asset.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING

import dagster as dg
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.schemas.base import conform
from quantlab_assets.compute.schemas.features import FeaturesSchema, LabelsSchema
from quantlab_assets.defs.config import config_from, settings
from quantlab_assets.defs.gpu import GPU_OP_TAGS, GPU_POOL
from quantlab_assets.defs.groups import DEEP_LEARNING
from quantlab_assets.defs.partitions import same_universe, universe_partitions

if TYPE_CHECKING:
    from quantlab_assets.compute.torch_runtime.windows import WindowPanel

GROUP = DEEP_LEARNING
# Every deep asset: one partition per universe, in the deep group, a step of the GPU pool.
DEEP_ASSET = {"partitions_def": universe_partitions, "group_name": GROUP, "pool": GPU_POOL, "op_tags": GPU_OP_TAGS}
# The universe's features and labels, and the model stack's folds.
UNIVERSE_INS = {
    "features": dg.AssetIn(partition_mapping=same_universe),
    "labels": dg.AssetIn(partition_mapping=same_universe),
    "cv_folds": dg.AssetIn(),
}

# The forecasters' target (the transformer's, the TFT's, the encoder transfer's).
FORECAST_TARGET = "label_21d"
# The run-config helpers the deep asset modules import from here.
__all__ = ["DEEP_ASSET", "FORECAST_TARGET", "GROUP", "UNIVERSE_INS", "config_from", "forecast_targets", "label_panel", "settings"]


def forecast_targets(labels: pl.DataFrame) -> pl.DataFrame:
    """date, ticker and the forecasters' 21d target."""
    return labels.select(c.DATE, c.TICKER, FORECAST_TARGET)


def label_panel(features: pl.DataFrame, labels: pl.DataFrame, targets: Callable[[pl.DataFrame], pl.DataFrame],
                seq_len: int, names: list[str] | None = None) -> tuple["WindowPanel", list[str]]:
    """The window panel of a universe's model inputs (`names`, default: the scale-free features) and
    `targets(labels)`, and the input names."""
    from quantlab_assets.compute.torch_runtime.inputs import input_panel

    return input_panel(conform(features, FeaturesSchema), targets(conform(labels, LabelsSchema)), seq_len, names)
