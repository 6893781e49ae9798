"""What the deep-learning assets share: their run config, derived from the compute dataclasses, and their inputs.

Run config: every field of a deep asset's architecture and optimisation is a field of a frozen dataclass in
compute/torch_runtime (TrainingConfig, TransformerConfig, TbmConfig, ...). `config_from` turns those
dataclasses into one flat dg.Config with the same names, types, defaults and descriptions, so a default
is written once (in compute) and the launchpad shows it; `settings` builds the dataclass back from the
run config. An asset's own knobs (check tolerances, a checkpoint's train_end) are declared on top.

Inputs: `label_panel` is the window panel every deep asset trains on, the scale-free inputs of the features
asset (compute/torch_runtime/inputs.py) with the model's targets made from the labels asset.
"""

import dataclasses
import typing
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import dagster as dg
import polars as pl
import pydantic

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.schemas import FeaturesSchema, LabelsSchema, conform
from quantlab_assets.compute.torch_runtime.inputs import input_panel
from quantlab_assets.compute.torch_runtime.windows import WindowPanel
from quantlab_assets.defs.gpu import GPU_OP_TAGS, GPU_POOL
from quantlab_assets.defs.partitions import same_universe, universe_partitions

GROUP = "deep"
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

Settings = TypeVar("Settings")


def _config_type(hint: Any) -> Any:
    # Dagster's config types have no Literal: a Literal of strings is a string checked by the dataclass.
    return str if typing.get_origin(hint) is Literal else hint


def config_from(name: str, *sources: type, exclude: frozenset[str] = frozenset(), doc: str = "") -> type[dg.Config]:
    """A dg.Config class with every field of the dataclasses `sources` but `exclude` (the later source wins a
    name both have), each with the dataclass's type, default and `description` metadata."""
    fields: dict[str, Any] = {}
    for source in sources:
        hints = typing.get_type_hints(source)
        for field in dataclasses.fields(source):
            if field.name in exclude or field.default is dataclasses.MISSING:
                continue
            fields[field.name] = (_config_type(hints[field.name]),
                                  pydantic.Field(default=field.default, description=field.metadata.get("description")))
    return pydantic.create_model(name, __base__=dg.Config, __doc__=doc, __module__=__name__, **fields)


def settings(config: dg.Config, source: Callable[..., Settings], **given: Any) -> Settings:
    """The dataclass `source` with the run config's value of each field the config has, `given` values
    (the fields a run config does not set, such as n_features), and its own defaults for the rest."""
    values = {field.name: getattr(config, field.name) for field in dataclasses.fields(source)
              if field.name in type(config).model_fields and field.name not in given}
    return source(**values, **given)


def forecast_targets(labels: pl.DataFrame) -> pl.DataFrame:
    """date, ticker and the forecasters' 21d target."""
    return labels.select(c.DATE, c.TICKER, FORECAST_TARGET)


def label_panel(features: pl.DataFrame, labels: pl.DataFrame, targets: Callable[[pl.DataFrame], pl.DataFrame],
                seq_len: int, names: list[str] | None = None) -> tuple[WindowPanel, list[str]]:
    """The window panel of a universe's model inputs (`names`, default: the scale-free features) and
    `targets(labels)`, and the input names."""
    return input_panel(conform(features, FeaturesSchema), targets(conform(labels, LabelsSchema)), seq_len, names)
