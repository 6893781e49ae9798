"""Run config derived from the compute parameter dataclasses: each default and description is written once.

Every tunable number of the lab is a field of a frozen dataclass in compute (BacktestParams, HmmParams,
XGBoostParams, TrainingConfig, ...), with its description in the field's metadata (compute/params.py:
`described`). `config_from` turns dataclasses into one flat dg.Config with the same names, types, defaults
and descriptions, so the launchpad shows the compute default and what it means; `settings` builds the
dataclass back from a run config.

A nested parameter dataclass (BacktestParams.costs, TrainingParams.ppo) is flattened with its field name as
prefix: `costs_commission_bps`, `ppo_n_steps`; its defaults are the nesting field's default instance's.
Only scalar fields (int, float, str, bool, optionally None, a Literal of strings) are run config: a tuple of
feature names is structure, not a knob, and keeps its compute default. An asset's own knobs (check
tolerances, a checkpoint's train_end) are declared on the class that derives from the generated one.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal, TypeVar

import dagster as dg
import pydantic

Settings = TypeVar("Settings")
SCALARS = (int, float, str, bool)
NESTED_SEPARATOR = "_"


def _config_type(hint: Any) -> Any | None:
    """The run-config type of a dataclass field's type hint; None for a field that is not a scalar."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        # Dagster's config types have no Literal: a Literal of strings is a string checked by the dataclass.
        return str if all(isinstance(arg, str) for arg in typing.get_args(hint)) else None
    if origin in (typing.Union, types.UnionType):
        inner = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        kind = _config_type(inner[0]) if len(inner) == 1 else None
        return kind | None if kind is not None else None
    return hint if hint in SCALARS else None


def _default(field: dataclasses.Field, defaults: object | None) -> Any:
    if defaults is not None:
        return getattr(defaults, field.name)
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


def _is_params(value: object) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def run_config_fields(source: type, prefix: str = "", defaults: object | None = None) -> Iterator[tuple[str, Any, Any, str | None]]:
    """(run-config name, type, default, description) of every scalar field of `source` with a default,
    nested parameter dataclasses flattened under their field's name."""
    hints = typing.get_type_hints(source)
    for field in dataclasses.fields(source):
        default = _default(field, defaults)
        if default is dataclasses.MISSING:
            continue
        if _is_params(default):
            yield from run_config_fields(type(default), f"{prefix}{field.name}{NESTED_SEPARATOR}", default)
        elif (kind := _config_type(hints[field.name])) is not None:
            yield prefix + field.name, kind, default, field.metadata.get("description")


def config_from(name: str, *sources: type, exclude: frozenset[str] = frozenset(),
                defaults: Mapping[str, Any] | None = None, doc: str = "") -> type[dg.Config]:
    """A dg.Config class with every run-config field of the dataclasses `sources` but `exclude` (the later
    source wins a name both have), each with the dataclass's type, default and `description` metadata;
    `defaults` replaces the default of a field where an asset's differs from compute's (its description stays)."""
    unknown = set(defaults or {}) - {f[0] for source in sources for f in run_config_fields(source)}
    if unknown:
        raise ValueError(f"{name}: defaults for fields the sources do not have: {sorted(unknown)}")
    fields = {
        field_name: (kind, pydantic.Field(default=(defaults or {}).get(field_name, default), description=description))
        for source in sources
        for field_name, kind, default, description in run_config_fields(source)
        if field_name not in exclude
    }
    return pydantic.create_model(name, __base__=dg.Config, __doc__=doc, __module__=__name__, **fields)


def _values(config: dg.Config, source: type, prefix: str, defaults: object | None, given: dict[str, Any]) -> dict[str, Any]:
    known = type(config).model_fields
    values: dict[str, Any] = {}
    for field in dataclasses.fields(source):
        if field.name in given:
            continue
        default = _default(field, defaults)
        if _is_params(default):
            nested = _values(config, type(default), f"{prefix}{field.name}{NESTED_SEPARATOR}", default, {})
            values[field.name] = dataclasses.replace(default, **nested)
        elif prefix + field.name in known:
            values[field.name] = getattr(config, prefix + field.name)
    return values


def settings(config: dg.Config, source: Callable[..., Settings], **given: Any) -> Settings:
    """The dataclass `source` with the run config's value of each field the config has (nested dataclasses
    from their prefixed fields), `given` values (the fields a run config does not set, such as
    n_features), and its own defaults for the rest."""
    return source(**_values(config, typing.cast(type, source), "", None, given), **given)
