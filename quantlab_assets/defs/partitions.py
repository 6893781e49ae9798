"""Every partitions definition and partition mapping of the lab.

Bar data is partitioned by calendar month x universe (see docs/architecture.md for why monthly: a
20-year backfill is 240 partitions, about 4 s of Dagster bookkeeping, where daily partitions would
cost about 2 minutes; a daily refresh rewrites the current month, a few thousand rows).
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
import os
from pathlib import Path

import dagster as dg

from quantlab_assets.compute.features.compute import MAX_LOOKBACK_DAYS
from quantlab_assets.compute.models.names import MODELS
from quantlab_assets.compute.portfolio.names import STRATEGY_NAMES
from quantlab_assets.compute.universe import UniverseSpec, load_universe_catalog

MONTH = "month"
UNIVERSE = "universe"
# The oldest data the lab ships (skfolio's S&P 500 sample) starts in January 1990.
FIRST_MONTH = "1990-01-01"
# Fewest trading days an exchange holds per calendar month, on average over any run of a year or more.
# Measured on the NYSE dates of sp500_sample (1990-2022): the leanest 12 consecutive months hold 246
# trading days (20.5 a month, the run through the four-day closure after 9/11). A single month can
# hold as few as 15 (September 2001), so the floor holds for runs of months, not for one month.
TRADING_DAYS_PER_MONTH_FLOOR = 20
# Months before a partition's first month that it loads: enough for the MAX_LOOKBACK_DAYS - 1 trading
# days before its first date (the history, missing-share and outlier rules, the features' longest
# windows and the labels' ATR all look back within MAX_LOOKBACK_DAYS) on the leanest calendar.
LOOKBACK_MONTHS = math.ceil((MAX_LOOKBACK_DAYS - 1) / TRADING_DAYS_PER_MONTH_FLOOR)
# 4 months cover the 63 trading days after a month's last day that its longest labels look ahead.
LOOKAHEAD_MONTHS = 4
UNIVERSE_DIR_ENV = "QUANTLAB_UNIVERSE_DIR"


def universe_catalog() -> dict[str, UniverseSpec]:
    """The packaged universes plus those in $QUANTLAB_UNIVERSE_DIR (read when definitions load)."""
    extra = os.environ.get(UNIVERSE_DIR_ENV)
    return load_universe_catalog([Path(extra)] if extra else [])


UNIVERSE_NAMES = sorted(universe_catalog())

universe_partitions = dg.StaticPartitionsDefinition(UNIVERSE_NAMES)
# end_offset=1 includes the month in progress, which the daily refresh rewrites.
month_partitions = dg.MonthlyPartitionsDefinition(start_date=FIRST_MONTH, end_offset=1)
bars_partitions = dg.MultiPartitionsDefinition({MONTH: month_partitions, UNIVERSE: universe_partitions})

same_universe = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name=UNIVERSE)
bars_with_lookback = dg.MultiPartitionMapping(
    {
        MONTH: dg.DimensionPartitionMapping(MONTH, dg.TimeWindowPartitionMapping(start_offset=-LOOKBACK_MONTHS)),
        UNIVERSE: dg.DimensionPartitionMapping(UNIVERSE, dg.IdentityPartitionMapping()),
    }
)


# A label at t needs bars up to t + 63 trading days: months after the newest one do not exist yet,
# and are read as empty (the labels there are null until the future arrives).
bars_with_lookback_and_lookahead = dg.MultiPartitionMapping(
    {
        MONTH: dg.DimensionPartitionMapping(
            MONTH,
            dg.TimeWindowPartitionMapping(
                start_offset=-LOOKBACK_MONTHS, end_offset=LOOKAHEAD_MONTHS, allow_nonexistent_upstream_partitions=True
            ),
        ),
        UNIVERSE: dg.DimensionPartitionMapping(UNIVERSE, dg.IdentityPartitionMapping()),
    }
)


# Portfolio and backtest: one partition per strategy x universe, so one strategy re-runs alone.
# Keys look like 'qp_optimal|synthetic' (dimension names sorted: strategy, universe).
STRATEGY = "strategy"
strategy_partitions = dg.MultiPartitionsDefinition(
    {STRATEGY: dg.StaticPartitionsDefinition(list(STRATEGY_NAMES)), UNIVERSE: universe_partitions}
)


def split_strategy_key(key: str | dg.MultiPartitionKey) -> tuple[str, str]:
    """(strategy, universe) of a strategy partition key such as 'qp_optimal|synthetic'."""
    if isinstance(key, dg.MultiPartitionKey):
        return key.keys_by_dimension[STRATEGY], key.keys_by_dimension[UNIVERSE]
    strategy, universe = key.split("|")
    return strategy, universe


# market_state[m] reads the features of months m-2..m: its 21-date market windows need the 20 trading
# days before the month's first (one month before may hold only 19, after a February).
MARKET_STATE_LOOKBACK_MONTHS = 2
features_with_market_lookback = dg.MultiPartitionMapping(
    {
        MONTH: dg.DimensionPartitionMapping(MONTH, dg.TimeWindowPartitionMapping(start_offset=-MARKET_STATE_LOOKBACK_MONTHS)),
        UNIVERSE: dg.DimensionPartitionMapping(UNIVERSE, dg.IdentityPartitionMapping()),
    }
)


def split_bars_key(key: str | dg.MultiPartitionKey) -> tuple[str, str]:
    """(month key, universe) of a bars partition key such as '2024-01-01|synthetic'."""
    if isinstance(key, dg.MultiPartitionKey):
        return key.keys_by_dimension[MONTH], key.keys_by_dimension[UNIVERSE]
    month, universe = key.split("|")  # dimension names sorted: month, universe
    return month, universe


def bars_key(month: str, universe: str) -> str:
    return dg.MultiPartitionKey({MONTH: month, UNIVERSE: universe})


def month_bounds(month_key: str) -> tuple[dt.date, dt.date]:
    """First and last calendar day of a month partition key ('2024-01-01' -> Jan 1 .. Jan 31)."""
    first = dt.date.fromisoformat(month_key)
    return first, first.replace(day=calendar.monthrange(first.year, first.month)[1])


def months_window(months: list[str]) -> tuple[dt.date, dt.date]:
    """First day of the first month key and last day of the last one (keys sorted)."""
    return month_bounds(months[0])[0], month_bounds(months[-1])[1]


def months_by_universe(keys: list[str]) -> dict[str, list[str]]:
    """Group bars partition keys of one run by universe; months sorted."""
    grouped: dict[str, list[str]] = {}
    for key in keys:
        month, universe = split_bars_key(key)
        grouped.setdefault(universe, []).append(month)
    return {universe: sorted(months) for universe, months in grouped.items()}


# Model 2: one partition per base model x horizon x universe, so one model of one horizon
# re-runs alone. Keys look like 'xgboost_21d|synthetic' (dimension names sorted: model_horizon, universe).
MODEL_HORIZON = "model_horizon"
MODEL_HORIZONS = (21, 63)
model_horizon_partitions = dg.StaticPartitionsDefinition(
    [f"{model}_{horizon}d" for model in MODELS for horizon in MODEL_HORIZONS]
)
oof_partitions = dg.MultiPartitionsDefinition({MODEL_HORIZON: model_horizon_partitions, UNIVERSE: universe_partitions})
# Every month of the same universe (the month dimension is unmapped, so all of it); the universe by identity.
all_months_of_universe = dg.MultiPartitionMapping(
    {UNIVERSE: dg.DimensionPartitionMapping(UNIVERSE, dg.IdentityPartitionMapping())}
)


def split_model_horizon_key(key: str | dg.MultiPartitionKey) -> tuple[str, int, str]:
    """(model, horizon days, universe) of an oof_predictions key such as 'xgboost_21d|synthetic'."""
    if isinstance(key, dg.MultiPartitionKey):
        model_horizon, universe = key.keys_by_dimension[MODEL_HORIZON], key.keys_by_dimension[UNIVERSE]
    else:
        model_horizon, universe = key.split("|")
    model, horizon = model_horizon.rsplit("_", 1)
    return model, int(horizon.removesuffix("d")), universe


# --- invariant deep-hedging study (seed 000) ---------------------------------------------------
# One partition per environment ('low' ... 'crisis', 'stress_jumps', 'stress_squeeze'), one per trained
# policy ('erm_0_seed0', 'irm_head_0.1_seed0', 'vrex_5_seed3'; the study preset's seeds and strengths).
from quantlab_assets.compute.hedging.config import (  # noqa: E402
    ENVIRONMENTS as HEDGING_ENVIRONMENTS,
    TRAIN as HEDGING_TRAIN,
    VALIDATION as HEDGING_VALIDATION,
    PRESETS as HEDGING_PRESETS,
    policy_keys as hedging_policy_keys,
)

hedging_environment_partitions = dg.StaticPartitionsDefinition(list(HEDGING_ENVIRONMENTS))
hedge_policy_partitions = dg.StaticPartitionsDefinition(hedging_policy_keys(HEDGING_PRESETS["study"]))
# Every policy reads the training and validation environments, and no other: the held-out ones (crisis and
# the stress variants) are absent from the mapping, so Dagster never hands them to training or selection.
hedging_training_environments = dg.StaticPartitionMapping(
    {name: hedge_policy_partitions.get_partition_keys() for name in (*HEDGING_TRAIN, HEDGING_VALIDATION)}
)
# The scorecard and the figures: one partition per study configuration (a preset, 'smoke' or 'study'), each
# reading the policies of its preset's seeds and strengths, so a smoke study never overwrites the full one.
hedging_study_partitions = dg.StaticPartitionsDefinition(sorted(HEDGING_PRESETS))
hedging_policies_of_study = dg.StaticPartitionMapping({
    key: [name for name, config in HEDGING_PRESETS.items() if key in hedging_policy_keys(config)]
    for key in hedge_policy_partitions.get_partition_keys()
})


# RL portfolio allocation: one partition per policy variant (algorithm x regime inputs x seed) x
# universe, so one policy re-trains alone. Keys look like 'ppo_aware_seed0|synthetic' (rl_variant, universe).
from quantlab_assets.compute.rl.names import VARIANT_NAMES as RL_VARIANT_NAMES  # noqa: E402

RL_VARIANT = "rl_variant"
rl_partitions = dg.MultiPartitionsDefinition(
    {RL_VARIANT: dg.StaticPartitionsDefinition(list(RL_VARIANT_NAMES)), UNIVERSE: universe_partitions}
)


def split_rl_key(key: str | dg.MultiPartitionKey) -> tuple[str, str]:
    """(variant, universe) of an rl_policy partition key such as 'ppo_aware_seed0|synthetic'."""
    if isinstance(key, dg.MultiPartitionKey):
        return key.keys_by_dimension[RL_VARIANT], key.keys_by_dimension[UNIVERSE]
    variant, universe = key.split("|")
    return variant, universe
