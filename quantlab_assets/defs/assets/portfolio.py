"""Portfolio and backtest: target weights per strategy, the backtest, its metrics and the HTML report.

target_weights[strategy, u] and backtest[strategy, u] (+ positions, trades) are partitioned by strategy x
universe, so one strategy re-runs alone; backtest_metrics[u] and backtest_report[u] read every strategy
of the universe (the deflated Sharpe ratio needs the whole set tried).
"""

import dataclasses
from collections.abc import Iterator

import dagster as dg
import numpy as np
import polars as pl
from pydantic import Field

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.backtest.comparison import COMPARISON_COLUMNS, best_candidate_verdict, versus_equal_weight
from quantlab_assets.compute.backtest.engine import BacktestParams, returns_from_bars, run_backtest
from quantlab_assets.compute.backtest.metrics import MetricParams
from quantlab_assets.compute.backtest.overfitting import PBO, OverfittingAssessment, OverfittingParams, assess_overfitting
from quantlab_assets.compute.backtest.report import (
    StrategyRun,
    overfitting_section,
    render_report,
    report_preview_markdown,
    run_page_url,
)
from quantlab_assets.compute.backtest.tracking import log_report_run
from quantlab_assets.compute.backtest.trials import KINDS, TRIAL_COLUMNS, deep_model_scores, deflated_metrics, trial_registry
from quantlab_assets.compute.data.membership import (
    cross_section_rows,
    members_per_date,
    membership_note,
    non_tradable_tickers,
)
from quantlab_assets.compute.backtest.trades import round_trips
from quantlab_assets.compute.models.metrics import PREDICTION
from quantlab_assets.compute.portfolio.names import BENCHMARK, QP
from quantlab_assets.compute.portfolio.desk import summarise
from quantlab_assets.compute.portfolio.qp import WARM_UP, QpParams
from quantlab_assets.compute.portfolio.strategies import (
    ALPHA_HORIZON_DAYS,
    StrategyParams,
    build_target_weights,
    unexpected_shorts,
)
from quantlab_assets.compute.schemas.base import conform, schema_failures
from quantlab_assets.compute.schemas.data import CleanedBarsSchema
from quantlab_assets.compute.schemas.deep import TbmProbabilitiesSchema
from quantlab_assets.compute.schemas.portfolio import BacktestDailySchema, TargetWeightsSchema
from quantlab_assets.compute.storage import write_parquet_atomic, write_text_atomic
from quantlab_assets.defs.checks import Outputs, outputs_then_checks
from quantlab_assets.defs.config import config_from, run_config_fields, settings
from quantlab_assets.defs.groups import CORE_RESEARCH
from quantlab_assets.defs.io_managers import (
    KeyedFrames,
    MissingUpstreamPartitionError,
    PartitionedParquetIOManager,
    UniverseFrames,
    optional_input,
)
from quantlab_assets.defs.partitions import (
    all_months_of_universe,
    same_universe,
    split_strategy_key,
    strategy_partitions,
    universe_partitions,
)
from quantlab_assets.defs.resources import MarketDataResource, MlflowTrackingResource

GROUP = CORE_RESEARCH
REGIME_COLUMNS = ("regime_label", "regime")
SEQUENCE_CLASSIFIER = "tbm_classifier"
# Optional inputs (edges of the graph, read when stored): the backtest runs, and its report says so, before
# any regime model exists; tbm_classifier is GPU-trained and the default backtest must not wait for it.
OPTIONAL_UPSTREAM = {
    "regime_labels": optional_input(partition_mapping=same_universe),
    SEQUENCE_CLASSIFIER: optional_input(partition_mapping=same_universe),
}


def market_regimes(regime_labels: UniverseFrames, universe: str) -> pl.DataFrame | None:
    """Market regime per date (date, regime) from the universe's stored `regime_labels`, or None when not stored.

    Takes a `regime_label` (or `regime`) column; the first label of a date is the market's.
    """
    frame = regime_labels.get(universe)
    label = next((col for col in REGIME_COLUMNS if col in frame.columns), None) if frame is not None else None
    if label is None or c.DATE not in frame.columns:
        return None
    return frame.group_by(c.DATE).agg(pl.col(label).first().cast(pl.String).alias("regime")).sort(c.DATE)


# The QP prices turnover at the backtest's costs (compute/backtest/engine.py: CostParams); they are the
# backtest's run config, so the QP's copy is not a second setting here that could disagree with it.
QP_COST_FIELDS = frozenset(name for name, *_ in run_config_fields(QpParams, "qp_") if name.startswith("qp_costs_"))


class TargetWeightsConfig(config_from("TargetWeightsFields", StrategyParams, exclude=QP_COST_FIELDS)):
    """The strategies' parameters (compute/portfolio/strategies.py: StrategyParams; each strategy partition
    reads its own), and which primary model the threshold profiles read: the tabular `barrier_probabilities`
    (an input of this asset), or seed 002's sequence classifier `tbm_classifier` (an optional input of this
    asset: a GPU-trained asset the default backtest does not wait for)."""

    primary_model: str = Field(
        default="barrier_probabilities",
        description="The threshold profiles' primary model: barrier_probabilities or tbm_classifier (read from storage).")


def sequence_classifier_probabilities(tbm_classifier: UniverseFrames, universe: str) -> pl.DataFrame:
    """tbm_classifier's out-of-fold probabilities as the profiles' (date, ticker, barrier_probability)."""
    if universe not in tbm_classifier:
        raise MissingUpstreamPartitionError(f"target_weights: primary_model {SEQUENCE_CLASSIFIER!r} but input "
                                            f"{SEQUENCE_CLASSIFIER} [{universe}] is not materialised: "
                                            f"materialise {SEQUENCE_CLASSIFIER} [{universe}] first")
    frame = conform(tbm_classifier[universe], TbmProbabilitiesSchema)
    return frame.select(c.DATE, c.TICKER, pl.col("tbm_probability").alias("barrier_probability"))


class BacktestConfig(config_from("BacktestFields", BacktestParams)):
    """The execution model (compute/backtest/engine.py: BacktestParams): costs in basis points of the traded
    notional, the execution delay in bars, the rebalancing frequency. The values used are recorded in the
    backtest's metadata (`backtest_params`), and the report and its MLflow run state them."""


# The backtest's metadata entry that records the BacktestParams it used (read back by backtest_report).
BACKTEST_PARAMS = "backtest_params"


def used_backtest_params(instance: dg.DagsterInstance, strategy_keys: list[str]) -> dict[str, BacktestParams | None]:
    """Per strategy, the BacktestParams its latest backtest materialisation recorded (None: not recorded)."""
    used: dict[str, BacktestParams | None] = {}
    for key in strategy_keys:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("backtest"), asset_partitions=[key]), limit=1).records
        recorded = records[0].asset_materialization.metadata.get(BACKTEST_PARAMS) if records else None
        used[split_strategy_key(key)[0]] = BacktestParams.from_dict(recorded.value) if recorded is not None else None
    return used


def _sectors(universe_frame: pl.DataFrame) -> dict[str, str]:
    return dict(universe_frame.select(c.TICKER, c.SECTOR).iter_rows())


@dg.asset(
    kinds={"clarabel"},
    partitions_def=strategy_partitions,
    group_name=GROUP,
    output_required=False,
    ins={
        "stacked_alpha": dg.AssetIn(partition_mapping=same_universe),
        "meta_labels": dg.AssetIn(partition_mapping=same_universe),
        "barrier_probabilities": dg.AssetIn(partition_mapping=same_universe),
        "cleaned_bars": dg.AssetIn(partition_mapping=all_months_of_universe),
        "universe": dg.AssetIn(partition_mapping=same_universe),
        **OPTIONAL_UPSTREAM,
    },
    check_specs=[
        dg.AssetCheckSpec("target_weights_valid", asset="target_weights", blocking=True,
                          description="Schema: at most fully invested net, no weight built from a later signal; "
                                      "no short in a long-only strategy."),
        dg.AssetCheckSpec("target_weights_feasible", asset="target_weights", blocking=True,
                          description="The QP reached an optimal solution on every rebalance date after warm-up."),
    ],
)
def target_weights(
    context: dg.AssetExecutionContext,
    config: TargetWeightsConfig,
    stacked_alpha: UniverseFrames,
    meta_labels: UniverseFrames,
    barrier_probabilities: UniverseFrames,
    cleaned_bars: UniverseFrames,
    universe: UniverseFrames,
    regime_labels: UniverseFrames,
    tbm_classifier: UniverseFrames,
    market_data: MarketDataResource,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """One strategy's target weights per decision date: QP, top-n, equal weight, buy-and-hold, or a threshold profile.

    Every strategy picks from each date's tradable members; the benchmark strategy holds the universe's
    benchmark instrument (compute/portfolio/strategies.py)."""
    strategy, name = split_strategy_key(context.partition_key)
    regimes = market_regimes(regime_labels, name)
    if config.primary_model not in ("barrier_probabilities", SEQUENCE_CLASSIFIER):
        raise ValueError(f"target_weights: primary_model must be barrier_probabilities or {SEQUENCE_CLASSIFIER}, "
                         f"not {config.primary_model!r}")
    barrier = (sequence_classifier_probabilities(tbm_classifier, name) if config.primary_model == SEQUENCE_CLASSIFIER
               else barrier_probabilities[name])
    bars = conform(cleaned_bars[name], CleanedBarsSchema)
    built = build_target_weights(
        strategy, stacked_alpha[name], returns_from_bars(bars),
        meta=meta_labels[name], barrier=barrier, regimes=regimes, sectors=_sectors(universe[name]),
        members=cross_section_rows(bars, universe[name]), benchmark=market_data.universe(name).benchmark,
        params=settings(config, StrategyParams),
    )
    failure = schema_failures(TargetWeightsSchema, built.weights, asset="target_weights", partition=context.partition_key)
    shorts = unexpected_shorts(strategy, built.weights)
    infeasible = [] if built.diagnostics is None else list(
        built.diagnostics.filter(~pl.col("status").is_in(["optimal", WARM_UP])).select(c.DATE, "status").iter_rows())
    metadata = {"decision_dates": built.weights[c.DATE].n_unique(), "rows": built.weights.height,
                "notes": "\n".join(built.notes) or "none", "regime_labels": "read" if regimes is not None else "not materialised",
                "primary_model": config.primary_model,
                "members_per_date": dg.MetadataValue.json(members_per_date(bars, universe[name])),
                "non_tradable_excluded": ", ".join(non_tradable_tickers(universe[name])) or "none"}
    if built.diagnostics is not None:
        metadata["qp_median_solve_seconds"] = float(built.diagnostics["seconds"].median() or 0.0)
        metadata["qp_status_counts"] = dg.MetadataValue.json(dict(built.diagnostics.group_by("status").len().iter_rows()))
    checks = [
        dg.AssetCheckResult(check_name="target_weights_valid", passed=failure is None and not shorts,
                            metadata={"failures": failure or "none", "shorts_in_long_only_book": shorts}),
        dg.AssetCheckResult(check_name="target_weights_feasible", passed=not infeasible, metadata={
            "infeasible_dates": len(infeasible), "examples": "\n".join(f"{d}: {s}" for d, s in infeasible[:10]) or "none"}),
    ]

    def outputs() -> Outputs:
        yield dg.Output({str(context.partition_key): built.weights}, metadata=metadata)
    yield from outputs_then_checks(outputs, checks)


@dg.multi_asset(
    partitions_def=strategy_partitions,
    group_name=GROUP,
    can_subset=False,
    outs={
        "backtest": dg.AssetOut(kinds={"polars"}, description="Daily returns, costs, equity, turnover and concentration of one strategy."),
        "backtest_positions": dg.AssetOut(kinds={"polars"}, description="End-of-day weights (non-zero) of one strategy."),
        "backtest_trades": dg.AssetOut(kinds={"polars"}, description="Round trips: entry, exit, holding days, P&L, closed."),
    },
    ins={
        "target_weights": dg.AssetIn(),
        "stacked_alpha": dg.AssetIn(partition_mapping=same_universe),
        "cleaned_bars": dg.AssetIn(partition_mapping=all_months_of_universe),
    },
    check_specs=[dg.AssetCheckSpec("backtest_accounting", asset="backtest", blocking=True,
                                   description="Schema; equity compounds the net returns; "
                                               "net = (1 + gross - borrow_cost)(1 - cost) - 1.")],
)
def backtest(
    context: dg.AssetExecutionContext, config: BacktestConfig, target_weights: KeyedFrames, stacked_alpha: UniverseFrames,
    cleaned_bars: UniverseFrames,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """The execution model (delay, drift, costs, rebalancing: BacktestConfig) over the span of the stacked alpha
    (first to last date)."""
    key = str(context.partition_key)
    _, name = split_strategy_key(key)
    # The evaluation span is the alpha's: after its last date every strategy would only drift.
    span = stacked_alpha[name][c.DATE]
    returns = returns_from_bars(conform(cleaned_bars[name], CleanedBarsSchema)).filter(
        pl.col(c.DATE).is_between(span.min(), span.max()))
    params = settings(config, BacktestParams)
    result = run_backtest(returns, target_weights[key], params)
    trades = round_trips(result.arrays.weights, result.returns, result.daily[c.DATE], result.tickers)
    daily = result.daily
    failure = schema_failures(BacktestDailySchema, daily, asset="backtest", partition=key)
    equity_error = float(np.max(np.abs(daily["equity"].to_numpy() - np.cumprod(1 + daily["net_return"].to_numpy())), initial=0.0))
    expected_net = (1 + daily["gross_return"] - daily["borrow_cost"]) * (1 - daily["cost"]) - 1
    net_error = float((daily["net_return"] - expected_net).abs().max() or 0.0)
    passed = failure is None and equity_error < 1e-9 and net_error < 1e-12

    def outputs() -> Outputs:
        yield dg.Output({key: daily}, output_name="backtest", metadata={
            "final_equity": float(daily["equity"][-1]), "total_cost": float(daily["cost"].sum()),
            "mean_daily_turnover": float(daily["turnover"].mean()), "days": daily.height,
            "total_borrow_cost": float(daily["borrow_cost"].sum()), "mean_gross_exposure": float(daily["gross_exposure"].mean()),
            BACKTEST_PARAMS: dg.MetadataValue.json(dataclasses.asdict(params))})
        yield dg.Output({key: result.weights}, output_name="backtest_positions", metadata={"rows": result.weights.height})
        yield dg.Output({key: trades}, output_name="backtest_trades", metadata={"trades": trades.height})
    check = dg.AssetCheckResult(check_name="backtest_accounting", asset_key="backtest", passed=passed, metadata={
        "schema": failure or "ok", "max_equity_error": equity_error, "max_net_return_error": net_error})
    yield from outputs_then_checks(outputs, check)


def _by_strategy(frames: KeyedFrames) -> dict[str, pl.DataFrame]:
    return {split_strategy_key(key)[0]: frame for key, frame in sorted(frames.items())}


# The heavy tracks' trials, outside the core selection and often not materialised: a stored deep model or RL
# evaluation enters the DSR's N, one not stored is no trial. Each deep model's trial ranks instruments by the
# column named here (trials.py: deep_model_scores); the RL evaluation's policies count in N only.
DEEP_TRIAL_SCORES = {"forecaster_transformer": PREDICTION, "forecaster_tft": PREDICTION, "forecaster_quantile": PREDICTION,
                     SEQUENCE_CLASSIFIER: "tbm_probability", "supcon_probe": "supcon_probability"}
RL_TRIALS = "rl_evaluation"
# The trial registry's and the CPCV paths' inputs: optional, so the metrics of a strategy set stand before
# the model stack's per-model predictions, the folds, a hyper-parameter search or a heavy track are stored;
# the metadata and the report then say which trials were not counted.
TRIAL_INPUTS = {
    "oof_predictions": optional_input(partition_mapping=same_universe),
    "hyperparameter_search": optional_input(),
    "cv_folds": optional_input(),
    **{asset: optional_input() for asset in (*DEEP_TRIAL_SCORES, RL_TRIALS)},
}


def _overfitting(daily: dict[str, pl.DataFrame], metrics: pl.DataFrame, cv_folds: UniverseFrames, universe: str) -> OverfittingAssessment:
    """PBO and CPCV paths of the candidate strategies (backtest_metrics' `candidate` column)."""
    chosen = set(metrics.filter(pl.col("candidate"))["strategy"].to_list())
    return assess_overfitting({name: frame for name, frame in daily.items() if name in chosen}, cv_folds.get(universe),
                              OverfittingParams(horizon_days=ALPHA_HORIZON_DAYS))


@dg.asset(
    kinds={"polars"},
    partitions_def=universe_partitions,
    group_name=GROUP,
    ins={
        "backtest": dg.AssetIn(partition_mapping=same_universe),
        "backtest_trades": dg.AssetIn(partition_mapping=same_universe),
        "cleaned_bars": dg.AssetIn(partition_mapping=same_universe),
        **TRIAL_INPUTS,
    },
)
def backtest_metrics(
    context: dg.AssetExecutionContext, backtest: KeyedFrames, backtest_trades: KeyedFrames, cleaned_bars: UniverseFrames,
    oof_predictions: KeyedFrames, hyperparameter_search: UniverseFrames, cv_folds: UniverseFrames,
    io_manager: dg.ResourceParam[PartitionedParquetIOManager], **heavy_tracks: UniverseFrames,
) -> UniverseFrames:
    """Per strategy: performance, Sharpe bootstrap CI, PSR, DSR (N and the trials' Sharpe variance from the trial
    registry), MinTRL, trades, the Sharpe difference with equal weight on the same days with its paired bootstrap
    interval; the registry, the PBO and the CPCV path Sharpes of the candidates in the metadata. heavy_tracks:
    the deep models and the RL evaluation (DEEP_TRIAL_SCORES, RL_TRIALS), each as stored."""
    name = context.partition_key
    daily, trades = _by_strategy(backtest), _by_strategy(backtest_trades)
    models = {key.split("|")[0]: frame for key, frame in oof_predictions.items()}  # 'ridge_21d|synthetic' -> 'ridge_21d'
    deep = {trial: scores for asset, score in DEEP_TRIAL_SCORES.items() if name in heavy_tracks[asset]
            for trial, scores in deep_model_scores(asset, heavy_tracks[asset][name], score).items()}
    registry = trial_registry(daily, models, returns_from_bars(conform(cleaned_bars[name], CleanedBarsSchema)),
                              hyperparameter_search.get(name), deep, heavy_tracks[RL_TRIALS].get(name))
    metrics = deflated_metrics(daily, trades, registry)
    assessment = _overfitting(daily, metrics, cv_folds, name)
    metrics = metrics.with_columns(pl.lit(None if assessment.pbo is None else assessment.pbo.pbo, dtype=pl.Float64).alias(PBO))
    comparison_params = MetricParams()
    metrics = metrics.join(versus_equal_weight(daily, comparison_params), on="strategy", how="left", maintain_order="left")
    registry_path = write_parquet_atomic(registry, io_manager.layout.artifact("backtest_metrics", f"{name}_trials.parquet"))
    summary = metrics.select("strategy", "cagr", "sharpe", "sharpe_ci_low", "sharpe_ci_high", "psr", "dsr", "max_drawdown",
                             *COMPARISON_COLUMNS)
    first = metrics.row(0, named=True)
    context.add_output_metadata({
        "best_vs_equal_weight": best_candidate_verdict(metrics, comparison_params.confidence),
        "n_trials": first["n_trials"],
        "trials_by_kind": dg.MetadataValue.json({kind: first[f"trials_{kind}"] for kind in KINDS}),
        "trial_sharpe_variance": first["trial_sharpe_variance"],
        "trial_inputs_not_stored": ", ".join(
            input_name for input_name, stored in (("oof_predictions", bool(oof_predictions)), ("cv_folds", name in cv_folds),
                                                  ("hyperparameter_search", name in hyperparameter_search),
                                                  *((asset, name in frames) for asset, frames in heavy_tracks.items()))
            if not stored) or "none",
        "trial_registry": dg.MetadataValue.json(registry.with_columns(pl.col("sharpe").round(4)).to_dicts()),
        "trial_registry_file": dg.MetadataValue.path(str(registry_path)),
        "pbo": first[PBO],
        "overfitting": dg.MetadataValue.json(assessment.summary()),
        "summary": dg.MetadataValue.json([{k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
                                          for row in summary.to_dicts()]),
    })
    return {name: metrics}


@dg.asset(
    kinds={"html", "mlflow"},
    partitions_def=universe_partitions,
    group_name=GROUP,
    ins={
        "backtest": dg.AssetIn(partition_mapping=same_universe),
        "backtest_positions": dg.AssetIn(partition_mapping=same_universe),
        "backtest_trades": dg.AssetIn(partition_mapping=same_universe),
        "backtest_metrics": dg.AssetIn(),
        "universe": dg.AssetIn(),
        "regime_labels": optional_input(),
        "live_track_record": optional_input(),
        "cv_folds": optional_input(),
    },
)
def backtest_report(
    context: dg.AssetExecutionContext,
    backtest: KeyedFrames,
    backtest_positions: KeyedFrames,
    backtest_trades: KeyedFrames,
    backtest_metrics: UniverseFrames,
    universe: UniverseFrames,
    regime_labels: UniverseFrames,
    live_track_record: UniverseFrames,
    cv_folds: UniverseFrames,
    io_manager: dg.ResourceParam[PartitionedParquetIOManager],
    mlflow: MlflowTrackingResource,
) -> dg.MaterializeResult:
    """One self-contained HTML report of the universe's strategy set (seed 003's six sections; a seventh: the
    trials the DSR counts, the PBO and the CPCV paths; an eighth: the desk's live track record)."""
    name = context.partition_key
    daily, positions, trades = _by_strategy(backtest), _by_strategy(backtest_positions), _by_strategy(backtest_trades)
    order = [QP, *sorted(set(daily) - {QP, BENCHMARK}), BENCHMARK]
    runs = [StrategyRun(s, daily[s], positions[s], trades[s]) for s in order if s in daily]
    regimes = market_regimes(regime_labels, name)
    metrics = backtest_metrics[name]
    ordered = metrics.filter(pl.col("strategy").is_in([r.name for r in runs])).sort(
        pl.col("strategy").replace_strict({r.name: i for i, r in enumerate(runs)}, return_dtype=pl.Int64))
    used = used_backtest_params(context.instance, sorted(backtest))
    html = render_report(
        runs, ordered.drop(*TRIAL_COLUMNS, PBO),  # universe-wide figures: section 7 states them once
        title=f"Backtest report: {name}", benchmark=BENCHMARK if BENCHMARK in daily else None,
        regimes=regimes, sectors=_sectors(universe[name]), execution=used,
        notes=[f"Regime labels: {'read' if regimes is not None else 'not materialised'}.",
               membership_note(universe[name])],
        overfitting=overfitting_section(ordered, _overfitting(daily, metrics, cv_folds, name), ALPHA_HORIZON_DAYS),
        live_record=summarise(live_track_record[name]) if name in live_track_record else None,
    )
    path = write_text_atomic(html, io_manager.layout.report("backtest_report", name))
    mlflow.ensure_store()
    run_id = log_report_run(mlflow.uri(), name, metrics, path, mlflow.artifact_root(), used)
    run_url = run_page_url(mlflow.uri(), run_id)
    # No file:// url: a browser does not open one from the UI's http page. The path (copy icon), a preview
    # of the key metrics ("[Show Markdown]") and, with an MLflow server, the run that holds the report.
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(str(path)),
        "preview": dg.MetadataValue.md(report_preview_markdown(ordered, str(path), run_url)),
        **({"mlflow_report": dg.MetadataValue.url(run_url)} if run_url else {}),
        "bytes": path.stat().st_size, "strategies": len(runs), "regime_labels": regimes is not None,
        "mlflow_run_id": run_id,
    })
