"""Declarative automation: what refreshes itself after the daily bars refresh, and the sensor that runs it.

The daily schedule (defs/schedules.py) refreshes the newest months of bars, features, labels and market
state of the daily universes. From there Dagster's automation sensor launches what their changes make due:

- DAILY (eager: as soon as an input changed) on the live path: live_alpha, and the desk's target_portfolio,
  orders, decision_ledger and live_track_record (their conditions sit on their decorators in
  defs/assets/desk.py, the others are applied here by `with_automation`).
- WEEKLY_WHERE_CHANGED on the regime models: refitted once a week (after Friday's refresh) where their
  inputs changed since the last fit. An HMM or a clustering refit every day would relabel history daily
  for a few new rows.
- Nothing else: the research pipeline's training (out-of-fold models, stacking, backtests, report) and the
  heavy tracks (deep learning, RL, hedging, Optuna) are launched by hand or by their jobs.

DAILY is `eager()` without its "no parent partition missing" clause: a per-universe asset reads every month
of its universe, and months before the universe's first bar are never stored, so eager() as it stands would
wait for them forever; the IO manager already names a missing month that matters
(MissingUpstreamPartitionError). Optional inputs are ignored (`.ignore(...)`) by the assets that read them,
so they neither trigger nor hold back a refresh. Only universes whose data changed are refreshed: a static
universe (sp500_sample) is never re-run.
"""

from collections.abc import Iterable, Sequence

import dagster as dg

DAILY = dg.AutomationCondition.eager().without(~dg.AutomationCondition.any_deps_missing())
REGIME_CRON = "0 23 * * 5"  # Fridays, after the 22:30 UTC daily refresh
WEEKLY_WHERE_CHANGED = (
    dg.AutomationCondition.cron_tick_passed(REGIME_CRON).since_last_handled()
    & dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label(f"weekly ({REGIME_CRON} UTC) where an input changed")

# Conditions of assets defined elsewhere (the desk's assets carry theirs on their decorators).
CONDITIONS: dict[str, dg.AutomationCondition] = {
    "live_alpha": DAILY,
    **dict.fromkeys(("regime_hmm", "regime_hmm_params", "regime_clusters", "regime_labels"), WEEKLY_WHERE_CHANGED),
}

# The sensor that evaluates the conditions, on by default: it only launches assets that carry a condition,
# and those are the daily, CPU-cheap ones above.
automation_sensor = dg.AutomationConditionSensorDefinition(
    "daily_automation_sensor", target=dg.AssetSelection.all(), default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    description="Refreshes the live alpha, the desk and (weekly) the regimes after the daily bars refresh.",
)


def with_automation(assets: Iterable[dg.AssetsDefinition]) -> Sequence[dg.AssetsDefinition]:
    """`assets` with CONDITIONS applied to the specs they name (the others as they are)."""
    return dg.map_asset_specs(
        lambda spec: spec.replace_attributes(automation_condition=CONDITIONS[spec.key.to_user_string()])
        if spec.key.to_user_string() in CONDITIONS else spec,
        list(assets),
    )
