"""RL portfolio allocation (seed 003 phase 5): PPO / SAC policies on the PortfolioEnv and their
evaluation beside the baselines. Plain logic in compute/rl.

rl_policy[variant|u] trains one variant (algorithm x regime-aware/blind x seed) on the training span, keeps
the checkpoint of the best validation Sharpe, and stores its deterministic episodes' target weights on the
train, validation and test spans (the model itself as a zip under <data dir>/rl_models/, and in MLflow).
rl_evaluation[u] backtests every variant and the baselines on each span with the lab's metrics.

The observations include the masked encoder's embeddings of the universe (PCA-reduced, fitted on the
training span; compute/rl/panel.py).
"""

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
from pydantic import Field

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.backtest.engine import BacktestParams, returns_from_bars
from quantlab_assets.compute.backtest.metrics import MetricParams
from quantlab_assets.compute.backtest.report import render_report
from quantlab_assets.compute.portfolio.names import BUY_AND_HOLD
from quantlab_assets.compute.regimes.labels import REGIME
from quantlab_assets.compute.rl.evaluation import BASELINE, BASELINES, Evaluation, EvaluationParams, evaluate_policies
from quantlab_assets.compute.rl.names import AWARE, SAC, split_variant
from quantlab_assets.compute.rl.panel import (
    SPAN,
    SPANS,
    TEST,
    TRAIN,
    PanelParams,
    build_panel,
    common_dates,
    forecast_tickers,
    lookahead_problems,
    span_dates,
    split_spans,
)
# The settings only: stable-baselines3, torch and gymnasium (training, episodes) are imported in rl_policy,
# because every Dagster run process imports all the definitions and torch alone takes about 1.5 s.
from quantlab_assets.compute.rl.params import EnvParams, TrainingParams
from quantlab_assets.compute.rl.tracking import log_evaluation_run, log_policy_run
from quantlab_assets.compute.schemas.base import conform, schema_failures
from quantlab_assets.compute.schemas.data import CleanedBarsSchema
from quantlab_assets.compute.schemas.portfolio import TargetWeightsSchema
from quantlab_assets.compute.storage import write_atomic, write_text_atomic
from quantlab_assets.defs.checks import Outputs, outputs_then_checks
from quantlab_assets.defs.config import config_from, settings
from quantlab_assets.defs.gpu import GPU_OP_TAGS, GPU_POOL
from quantlab_assets.defs.groups import REINFORCEMENT_LEARNING
from quantlab_assets.defs.io_managers import KeyedFrames, PartitionedParquetIOManager, UniverseFrames
from quantlab_assets.defs.partitions import (
    all_months_of_universe,
    rl_partitions,
    same_universe,
    split_rl_key,
    universe_partitions,
)
from quantlab_assets.defs.resources import MarketDataResource, MlflowTrackingResource, TorchDeviceResource

GROUP = REINFORCEMENT_LEARNING
# The env's accounting restates the engine's; they may differ by rounding only.
ENGINE_TOLERANCE = 1e-10


class RlPolicyConfig(config_from("RlPolicyFields", TrainingParams,
                                  exclude=frozenset({"algorithm", "seed", "total_timesteps", "eval_every"}))):
    """Seed 003's hyper-parameters by default (compute/rl/training.py: ppo_*, sac_*, torch_threads); the
    timesteps are the measured default run's (docs/measurements.md). Tests shrink everything. The algorithm
    and seed come from the partition."""

    ppo_total_timesteps: int = Field(default=200_000, description="Environment steps of a PPO run.")
    # SAC updates on every step (about 10x PPO's cost per step on a CPU) and needs fewer samples.
    sac_total_timesteps: int = Field(default=50_000, description="Environment steps of a SAC run.")
    evaluations: int = Field(default=10, description="Validation checkpoints per run (the best one is kept).")
    validation_days: int = Field(
        default=252, description="Dates before the universe's validation_end that select the checkpoint "
                                 "(the rest of its span trains).")
    episode_days: int = Field(
        default=252, description="Training episode length: this many days from a random start in the training span.")
    lookahead_cuts: int = Field(default=2, description="Sampled dates of the no-look-ahead check.")

    def training(self, algorithm: str, seed: int) -> TrainingParams:
        total = self.sac_total_timesteps if algorithm == SAC else self.ppo_total_timesteps
        return settings(self, TrainingParams, algorithm=algorithm, seed=seed, total_timesteps=total,
                        eval_every=max(1, math.ceil(total / self.evaluations)))


def _inputs(universe: str, stacked_alpha: UniverseFrames, regime_labels: UniverseFrames, cleaned_bars: UniverseFrames,
            market_data: MarketDataResource, validation_days: int) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.Series, dict]:
    returns = returns_from_bars(conform(cleaned_bars[universe], CleanedBarsSchema))
    alpha, regimes = stacked_alpha[universe], regime_labels[universe]
    dates = common_dates(returns, alpha, regimes)
    spans = split_spans(dates, market_data.universe(universe).split.validation_end, validation_days)
    return returns, alpha, regimes, dates, spans


@dg.asset(
    kinds={"torch", "stable_baselines3"},
    partitions_def=rl_partitions,
    group_name=GROUP,
    output_required=False,
    pool=GPU_POOL,
    op_tags=GPU_OP_TAGS,
    ins={
        "stacked_alpha": dg.AssetIn(partition_mapping=same_universe),
        "regime_labels": dg.AssetIn(partition_mapping=same_universe),
        "cleaned_bars": dg.AssetIn(partition_mapping=all_months_of_universe),
        "embeddings": dg.AssetIn(partition_mapping=same_universe),
    },
    check_specs=[
        dg.AssetCheckSpec("rl_policy_weights_valid", asset="rl_policy", blocking=True,
                          description="Every target: long-only, sums to 1 with cash, <= 20 % a name, no name under 2 %; "
                                      "target-weight schema; each span's decisions inside its span."),
        dg.AssetCheckSpec("rl_policy_matches_engine", asset="rl_policy", blocking=True,
                          description="The env's daily net returns equal the backtest engine's on the same targets, every span."),
        dg.AssetCheckSpec("rl_policy_no_lookahead", asset="rl_policy", blocking=True,
                          description="Observations up to sampled dates are unchanged when every later input is removed."),
    ],
)
def rl_policy(
    context: dg.AssetExecutionContext,
    config: RlPolicyConfig,
    stacked_alpha: UniverseFrames,
    regime_labels: UniverseFrames,
    cleaned_bars: UniverseFrames,
    embeddings: UniverseFrames,
    market_data: MarketDataResource,
    torch_device: TorchDeviceResource,
    mlflow: MlflowTrackingResource,
    io_manager: dg.ResourceParam[PartitionedParquetIOManager],
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """One PPO / SAC policy (regime-aware or blind, one seed): trained, selected on validation, its episodes' weights."""
    from quantlab_assets.compute.rl.episodes import walk_spans
    from quantlab_assets.compute.rl.training import train_policy

    key = str(context.partition_key)
    variant, universe = split_rl_key(key)
    algorithm, mode, seed = split_variant(variant)
    returns, alpha, regimes, dates, spans = _inputs(universe, stacked_alpha, regime_labels, cleaned_bars, market_data,
                                                    config.validation_days)
    fit_end = dates[spans[TRAIN][1]]
    panel_params = PanelParams(use_regime=mode == AWARE, seed=seed)
    embedded = embeddings[universe]
    if embedded.is_empty():
        raise ValueError(f"rl_policy: no embeddings stored for universe {universe!r}; materialise `embeddings` first")
    panel = build_panel(returns, alpha, regimes, dates, fit_end, panel_params, embedded)
    env_params = EnvParams(episode_days=config.episode_days)
    device = torch_device.choice()
    context.log.info(f"{variant}: {panel.n_assets} instruments, spans {spans}, on {device.describe()}")
    trained = train_policy(panel, spans, config.training(algorithm, seed), env_params, device.device)

    walks = walk_spans(trained.model, panel, spans, returns, env_params)
    problems = walks.problems
    if failure := schema_failures(TargetWeightsSchema, walks.weights.drop(SPAN), asset="rl_policy", partition=key):
        problems.append(failure)
    cuts = [d for d in dates.gather(np.linspace(spans[TRAIN][1] + 1, dates.len() - 1, config.lookahead_cuts).astype(int))]
    leaks = lookahead_problems(returns, alpha, regimes, dates, fit_end, panel_params, cuts, embedded)

    path = io_manager.layout.rl_model(universe, variant)
    write_atomic(path, trained.model.save)  # SB3 writes its zip to the temporary path
    mlflow.ensure_store()
    run_id = log_policy_run(
        mlflow.uri(), key,
        config={"variant": variant, "universe": universe, **dataclasses.asdict(config.training(algorithm, seed)),
                **dataclasses.asdict(panel_params), "episode_days": config.episode_days, "spans": str(spans),
                "instruments": panel.n_assets, **device.describe()},
        metrics={**{f"{s}.{k}": v for s, values in walks.summary.items() for k, v in values.items()},
                 "selected_timesteps": trained.selected_timesteps, "train_seconds": trained.seconds},
        curve=trained.curve, model_path=path, artifact_root=mlflow.artifact_root(),
    )
    checks = [
        dg.AssetCheckResult(check_name="rl_policy_weights_valid", passed=not problems,
                            metadata={"problems": "\n".join(problems[:20]) or "none"}),
        dg.AssetCheckResult(check_name="rl_policy_matches_engine", passed=walks.engine_difference < ENGINE_TOLERANCE,
                            metadata={"max_abs_net_return_difference": walks.engine_difference, "tolerance": ENGINE_TOLERANCE}),
        dg.AssetCheckResult(check_name="rl_policy_no_lookahead", passed=not leaks,
                            metadata={"cut_dates": [str(d) for d in cuts], "problems": "\n".join(leaks) or "none"}),
    ]

    def outputs() -> Outputs:
        yield dg.Output({key: walks.weights}, metadata={
            "spans": dg.MetadataValue.json({s: [str(dates[a]), str(dates[b])] for s, (a, b) in spans.items()}),
            "summary": dg.MetadataValue.json(walks.summary), "selected_timesteps": trained.selected_timesteps,
            "validation_curve": dg.MetadataValue.json(trained.curve.to_dicts()), "train_seconds": round(trained.seconds, 1),
            "device": dg.MetadataValue.json(device.describe()), "model_path": dg.MetadataValue.path(str(path)),
            "observation_features": dg.MetadataValue.json({"per_asset": panel.asset_feature_names,
                                                           "market": panel.market_feature_names}),
            "mlflow_run_id": run_id,
        })
    yield from outputs_then_checks(outputs, checks)


class RlEvaluationConfig(config_from("RlEvaluationFields", MetricParams, BacktestParams,
                                      exclude=frozenset({"n_trials", "trial_sharpe_variance", "periods_per_year"}))):
    """The metrics' bootstrap (compute/backtest/metrics.py) and the execution model every policy and baseline is
    backtested with (compute/backtest/engine.py: costs_*, delay, rebalance)."""

    validation_days: int = Field(
        default=252, description="Dates before the universe's validation_end that form the validation span.")


@dg.asset(
    kinds={"polars", "html"},
    partitions_def=universe_partitions,
    group_name=GROUP,
    output_required=False,
    ins={
        "rl_policy": dg.AssetIn(partition_mapping=same_universe),
        "stacked_alpha": dg.AssetIn(),
        "regime_labels": dg.AssetIn(),
        "cleaned_bars": dg.AssetIn(partition_mapping=same_universe),
    },
    check_specs=[dg.AssetCheckSpec(
        "rl_evaluation_finite_with_intervals", asset="rl_evaluation", blocking=True,
        description="Every strategy x span evaluated; metrics finite or explicitly undefined; a defined Sharpe has its interval.",
    )],
)
def rl_evaluation(
    context: dg.AssetExecutionContext,
    config: RlEvaluationConfig,
    rl_policy: KeyedFrames,
    stacked_alpha: UniverseFrames,
    regime_labels: UniverseFrames,
    cleaned_bars: UniverseFrames,
    market_data: MarketDataResource,
    mlflow: MlflowTrackingResource,
    io_manager: dg.ResourceParam[PartitionedParquetIOManager],
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """Every policy and the baselines (equal weight, top-N, buy-and-hold) per span; the verdict on the test span."""
    universe = context.partition_key
    returns, alpha, regimes, dates, spans = _inputs(universe, stacked_alpha, regime_labels, cleaned_bars, market_data,
                                                    config.validation_days)
    params = EvaluationParams(metrics=settings(config, MetricParams), backtest=settings(config, BacktestParams))
    policies = {split_rl_key(key)[0]: frame for key, frame in rl_policy.items()}
    result = evaluate_policies(policies, alpha, returns, span_dates(dates, spans), forecast_tickers(alpha, dates), params)
    metrics = result.metrics
    problems = [f"{col}: {n} non-finite values" for col, dtype in metrics.schema.items() if dtype == pl.Float64
                and (n := metrics[col].is_nan().sum() + metrics[col].is_infinite().sum())]
    problems += [f"{s}|{span}: Sharpe without its interval" for s, span in metrics.filter(
        pl.col("sharpe").is_not_null() & (pl.col("sharpe_ci_low").is_null() | pl.col("sharpe_ci_high").is_null())
    ).select("strategy", SPAN).iter_rows()]
    expected = (len(policies) + metrics.filter(pl.col("kind") == BASELINE)["strategy"].n_unique()) * len(SPANS)
    if metrics.height != expected:
        problems.append(f"{metrics.height} rows, expected {expected}")
    report = _write_report(result, metrics, universe, io_manager.layout.report("rl_evaluation", universe), regimes,
                           params.backtest)
    mlflow.ensure_store()
    run_id = log_evaluation_run(
        mlflow.uri(), universe, config={"universe": universe, "spans": str(spans), "variants": ",".join(sorted(policies)),
                                        **dataclasses.asdict(params)},
        metrics=metrics, report=report, artifact_root=mlflow.artifact_root())
    check = dg.AssetCheckResult(check_name="rl_evaluation_finite_with_intervals", passed=not problems,
                                metadata={"problems": "\n".join(problems[:20]) or "none"})

    def outputs() -> Outputs:
        test = metrics.filter(pl.col(SPAN) == TEST).select("strategy", "sharpe", "sharpe_ci_low", "sharpe_ci_high", "selected")
        yield dg.Output({universe: metrics}, metadata={
            "verdict_test_span": dg.MetadataValue.json(_rounded(result.verdict)),
            "test_span": dg.MetadataValue.json(_rounded(test.to_dicts())), "mlflow_run_id": run_id,
            "spans": dg.MetadataValue.json({s: [str(dates[a]), str(dates[b])] for s, (a, b) in spans.items()}),
            "report": dg.MetadataValue.path(str(report)),
        })
    yield from outputs_then_checks(outputs, check)


def _write_report(result: Evaluation, metrics: pl.DataFrame, universe: str, path: Path, regimes: pl.DataFrame,
                  backtest: BacktestParams) -> Path:
    """The backtest report's HTML for the test span: every policy and baseline as a strategy, buy-and-hold the benchmark."""
    order = sorted({name for name, span in result.runs if span == TEST}, key=lambda n: (n in BASELINES, n))
    runs = [result.runs[(name, TEST)] for name in order]
    test = metrics.filter(pl.col(SPAN) == TEST)
    test = test.sort(pl.col("strategy").replace_strict({n: i for i, n in enumerate(order)}, return_dtype=pl.Int64))
    labels = regimes.select(c.DATE, pl.col(REGIME).cast(pl.String)) if REGIME in regimes.columns else None
    html = render_report(runs, test, title=f"RL policies on the test span: {universe}", benchmark=BUY_AND_HOLD, regimes=labels,
                         execution=dict.fromkeys(order, backtest),
                         notes=["Policies selected on the validation span; this span was walked once. "
                                "'selected' marks the seed kept per algorithm x regime mode."])
    return write_text_atomic(html, path)


def _rounded(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    return [{k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()} for row in rows]
