"""Declarative automation: what refreshes itself after the daily bars refresh, and the sensor that runs it.

The daily schedule (defs/schedules.py) refreshes the newest months of bars, features, labels and market
state. From there Dagster's automation sensor launches every asset below whose inputs changed: DAILY on
the live path (live alpha, the desk's target portfolio, orders, decision ledger and track record).

DAILY is `eager()` without its "no parent partition missing" clause: a per-universe asset reads every month
of its universe (all_months_of_universe), and months before the universe's first bar are never stored, so
eager() as it stands would wait for them forever; the IO manager already names a missing month that matters
(MissingUpstreamPartitionError). Optional inputs (regime labels, tbm_classifier, hyperparameter_search)
are ignored by the assets that read them (`.ignore(...)`), so they neither trigger nor hold back a refresh.
Heavy tracks (deep learning, RL, hedging, Optuna) carry no condition: they stay manual.
"""

import dagster as dg

DAILY = dg.AutomationCondition.eager().without(~dg.AutomationCondition.any_deps_missing())

# The sensor that evaluates the conditions, on by default: it only launches runs of assets that carry a
# condition, and those are the cheap, daily ones.
automation_sensor = dg.AutomationConditionSensorDefinition(
    "daily_automation_sensor", target=dg.AssetSelection.all(), default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
)
