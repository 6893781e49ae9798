"""The one place that builds the lab's Definitions (`dagster dev` loads it through workspace.yaml)."""

from __future__ import annotations

import dagster as dg

from quantlab_assets.defs.assets import (
    data, deep, desk, embeddings, features, hedging, labels, models, portfolio, quantile, regimes, rl, supcon, tbm, tuning,
)
from quantlab_assets.defs.automation import automation_sensor, with_automation
from quantlab_assets.defs.executors import lab_executor
from quantlab_assets.defs.jobs import (
    backtest_job,
    backtest_report_job,
    gpu_training_job,
    hedging_environments_job,
    hedging_job,
    hedging_study_job,
    hyperparameter_search_job,
    launch_backfill,
    main_job,
    model_job,
    oof_job,
    quantile_training_job,
    regime_job,
    rl_evaluation_job,
    rl_training_job,
    supcon_training_job,
    tbm_training_job,
    training_span_job,
    universe_job,
)
from quantlab_assets.defs.resources import default_resources, hedging_resources
from quantlab_assets.defs.schedules import daily_refresh_schedule

ASSET_MODULES = [data, deep, desk, embeddings, features, hedging, labels, models, portfolio, quantile, regimes, rl, supcon, tbm, tuning]

defs = dg.Definitions(
    assets=with_automation(dg.load_assets_from_modules(ASSET_MODULES)),
    asset_checks=dg.load_asset_checks_from_modules(ASSET_MODULES),
    jobs=[launch_backfill, main_job, universe_job, training_span_job, oof_job, model_job, regime_job, backtest_job,
          backtest_report_job, gpu_training_job, hyperparameter_search_job, hedging_environments_job, hedging_job, hedging_study_job,
          rl_training_job, rl_evaluation_job, quantile_training_job, tbm_training_job, supcon_training_job],
    schedules=[daily_refresh_schedule],
    sensors=[automation_sensor],
    resources={**default_resources(), **hedging_resources()},
    executor=lab_executor(),
)
