"""Regimes: market state per month, and per universe the filtered HMM, the clusters and the labels (+ checks).

market_state is partitioned like the features it reads; the regime models are fitted per universe on
every stored month of its market state (regime_job), like the FFD orders on the training span.
"""

import zlib
from collections.abc import Iterator

import dagster as dg
import numpy as np
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.month_coverage import month_coverage_failures, rows_by_month
from quantlab_assets.compute.regimes.clusters import ClusterParams, fit_regime_clusters
from quantlab_assets.compute.regimes.hmm import (
    REFIT,
    HmmParams,
    filtered_regimes,
    parameters_frame,
    refilter,
    state_probability_column,
)
from quantlab_assets.compute.regimes.labels import REGIME, REGIME_NAMES, label_dates, label_states, state_statistics
from quantlab_assets.compute.regimes.market_state import compute_market_state, truncation_violations
from quantlab_assets.compute.regimes.validation import episodes_apply, evaluate_episodes
from quantlab_assets.compute.schemas.base import conform, schema_failures
from quantlab_assets.compute.schemas.regimes import (
    MarketStateSchema,
    RegimeClustersSchema,
    RegimeHmmParamsSchema,
    RegimeHmmSchema,
    RegimeLabelsSchema,
)
from quantlab_assets.defs.checks import Outputs, outputs_then_checks, per_partition_check, stored_months, withheld
from quantlab_assets.defs.config import config_from, settings
from quantlab_assets.defs.groups import CORE_RESEARCH
from quantlab_assets.defs.io_managers import StoredHistory, UniverseFrames
from quantlab_assets.defs.partitions import (
    MARKET_STATE_LOOKBACK_MONTHS,
    bars_key,
    bars_partitions,
    features_with_market_lookback,
    months_by_universe,
    months_window,
    same_universe,
    universe_partitions,
)
from quantlab_assets.defs.resources import MarketDataResource

GROUP = CORE_RESEARCH
# Cut dates per run for the look-ahead checks (the property does not depend on how many).
LOOKAHEAD_CUTS = 2
# Stored and recomputed filtered probabilities agree to rounding (the filter runs the same operations).
REFILTER_TOLERANCE = 1e-9


class RegimeHmmConfig(config_from("RegimeHmmFields", HmmParams)):
    """Seed 003's GaussianHMM (full covariance): 3-5 states, n_iter 100, refitted every refit_months (0: once).

    No seed: EM starts from volatility bins of the fit span and draws no random number (compute/regimes/hmm.py).
    """


class RegimeClustersConfig(config_from("RegimeClustersFields", ClusterParams)):
    """Seed 003: KMeans / Gaussian mixture clusters and HDBSCAN's minimum cluster size."""


def _cut_dates(dates: pl.Series, seed: str) -> list:
    """LOOKAHEAD_CUTS dates drawn from `dates` (seeded by the partition, so a rerun checks the same cuts)."""
    if dates.len() == 0:
        return []
    rng = np.random.default_rng(zlib.crc32(seed.encode()))
    return sorted(dates.sort()[int(i)] for i in rng.choice(dates.len(), size=min(LOOKAHEAD_CUTS, dates.len()), replace=False))


@dg.asset(
    kinds={"polars"},
    partitions_def=bars_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name=GROUP,
    output_required=False,
    ins={
        "features": dg.AssetIn(partition_mapping=features_with_market_lookback),
        "universe": dg.AssetIn(partition_mapping=same_universe),
    },
    check_specs=[
        dg.AssetCheckSpec("market_state_schema", asset="market_state", blocking=True,
                          description="Market state satisfies MarketStateSchema (one row per date, bounded, finite)."),
        dg.AssetCheckSpec("market_state_no_lookahead", asset="market_state", blocking=True,
                          description="Removing the features after a sampled date leaves the market state up to it unchanged."),
        dg.AssetCheckSpec("market_state_months_complete", asset="market_state", blocking=True,
                          partitions_def=bars_partitions,
                          description="Per month: a row for every date of the month's features, and a lookback not "
                                      "cut short by features months missing while cleaned_bars holds them. A failing "
                                      "month keeps its stored version; the run's other months are written."),
    ],
)
def market_state(
    context: dg.AssetExecutionContext, features: UniverseFrames, universe: UniverseFrames
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """Per date, the market aggregates the regime models read: market return and vol, correlation, breadth, vol ratio."""
    frames, failures, leaks, summary, incomplete = {}, [], [], {}, {}
    for name, months in months_by_universe(list(context.partition_keys)).items():
        first_day, last_day = months_window(months)
        partition = f"{months[0]}..{months[-1]}|{name}"
        state = compute_market_state(features[name], universe[name])
        window = state.filter(pl.col(c.DATE).is_between(first_day, last_day, closed="both"))
        if failure := schema_failures(MarketStateSchema, window, asset="market_state", partition=partition):
            failures.append(failure)
        leaks += truncation_violations(features[name], universe[name], _cut_dates(window[c.DATE], partition))
        frames[name] = window
        incomplete.update({bars_key(month, name): why for month, why in month_coverage_failures(
            months, rows_by_month(window), rows_by_month(features[name].select(c.DATE).unique()),
            stored_months(context, "features", name), stored_months(context, "cleaned_bars", name),
            upstream="features", source="cleaned_bars", universe=name, before=MARKET_STATE_LOOKBACK_MONTHS,
        ).items()})
        summary[name] = {"rows": window.height, "complete_rows": window.drop_nulls(subset=list(HmmParams.features)).height}
    checks = [
        dg.AssetCheckResult(check_name="market_state_schema", passed=not failures,
                            metadata={"failures": "\n".join(failures) or "none"}),
        dg.AssetCheckResult(check_name="market_state_no_lookahead", passed=not leaks,
                            metadata={"violations": "\n".join(leaks) or "none", "cuts": LOOKAHEAD_CUTS}),
    ]
    coverage = per_partition_check(context, "market_state", "market_state_months_complete", context.partition_keys,
                                   incomplete)

    def outputs() -> Outputs:
        if len(incomplete) < len(context.partition_keys):
            yield dg.Output(StoredHistory(frames, withheld=withheld(incomplete), allow_shrinking=True),
                            metadata={"by_universe": dg.MetadataValue.json(summary)})
    yield from outputs_then_checks(outputs, checks)
    yield coverage


def _transition_markdown(parameters: pl.DataFrame) -> str:
    """The newest refit's transition matrix as a markdown table (rows: state at t - 1)."""
    newest = parameters.filter(pl.col(REFIT) == pl.col(REFIT).max()).sort("state")
    n_states = newest.height
    header = "| from \\ to | " + " | ".join(str(k) for k in range(n_states)) + " |"
    lines = [header, "|" + " --- |" * (n_states + 1)]
    for row in newest.iter_rows(named=True):
        lines.append(f"| {row['state']} | " + " | ".join(f"{p:.3f}" for p in row["transition"]) + " |")
    return "\n".join(lines)


@dg.multi_asset(
    partitions_def=universe_partitions,
    group_name=GROUP,
    ins={"market_state": dg.AssetIn(partition_mapping=same_universe)},
    outs={
        "regime_hmm": dg.AssetOut(
            kinds={"hmmlearn"},
            description="Filtered HMM state probabilities per date after train_end (models fitted before each date).",
        ),
        "regime_hmm_params": dg.AssetOut(
            kinds={"hmmlearn"},
            description="Every refit of the regime HMM: spans, convergence, start, transition, means, covariances.",
        ),
    },
    check_specs=[
        dg.AssetCheckSpec("regime_hmm_schema", asset="regime_hmm", blocking=True,
                          description="Probabilities and parameters satisfy their schemas (fit_end < date, rows sum to 1)."),
        dg.AssetCheckSpec("regime_hmm_filter_uses_only_the_past", asset="regime_hmm", blocking=True,
                          description="Re-running the forward filter of the stored models on the market state cut at "
                                      "sampled dates reproduces the stored probabilities up to those dates."),
    ],
)
def regime_hmm(
    context: dg.AssetExecutionContext, config: RegimeHmmConfig, market_state: UniverseFrames,
    market_data: MarketDataResource,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """Gaussian HMM on the market state, refitted on an expanding window, applied as a forward filter."""
    params = settings(config, HmmParams)
    probabilities, parameters, failures, leaks, summary = {}, {}, [], [], {}
    for name in context.partition_keys:
        train_end = market_data.universe(name).split.train_end
        state = conform(market_state[name], MarketStateSchema)
        result = filtered_regimes(state, train_end, params)
        frame = parameters_frame(result)
        for schema, data, asset in ((RegimeHmmSchema, result.probabilities, "regime_hmm"),
                                    (RegimeHmmParamsSchema, frame, "regime_hmm_params")):
            if failure := schema_failures(schema, data, asset=asset, partition=name):
                failures.append(failure)
        leaks += _refilter_differences(state, result.probabilities, frame, name)
        probabilities[name], parameters[name] = result.probabilities, frame
        summary[name] = {
            "train_end": str(train_end), "rows": result.probabilities.height, "refits": len(result.refits),
            "converged": sum(refit.model.converged for refit in result.refits),
            "skipped_boundaries": [str(day) for day in result.skipped_boundaries],
            "first_date": str(result.probabilities[c.DATE].min()), "last_date": str(result.probabilities[c.DATE].max()),
        }
        if frame.height:
            context.add_output_metadata({f"transition_matrix_{name}": dg.MetadataValue.md(_transition_markdown(frame))},
                                        output_name="regime_hmm_params")
    checks = [
        dg.AssetCheckResult(check_name="regime_hmm_schema", asset_key="regime_hmm", passed=not failures,
                            metadata={"failures": "\n".join(failures) or "none"}),
        dg.AssetCheckResult(check_name="regime_hmm_filter_uses_only_the_past", asset_key="regime_hmm", passed=not leaks,
                            metadata={"differences": "\n".join(leaks) or "none", "cuts": LOOKAHEAD_CUTS}),
    ]

    def outputs() -> Outputs:
        metadata = {"by_universe": dg.MetadataValue.json(summary), "n_states": params.n_states,
                    "refit_months": params.refit_months, "features": ", ".join(params.features)}
        yield dg.Output(probabilities, output_name="regime_hmm", metadata=metadata)
        yield dg.Output(parameters, output_name="regime_hmm_params", metadata=metadata)
    yield from outputs_then_checks(outputs, checks)


def _refilter_differences(state: pl.DataFrame, probabilities: pl.DataFrame, parameters: pl.DataFrame, name: str) -> list[str]:
    differences = []
    for cut in _cut_dates(probabilities[c.DATE], name):
        refit = probabilities.filter(pl.col(c.DATE) == cut)[REFIT][0]
        stored = probabilities.filter((pl.col(REFIT) == refit) & (pl.col(c.DATE) <= cut))
        again = refilter(state, parameters, refit, cut).join(stored.select(c.DATE), on=c.DATE, how="semi")
        columns = [state_probability_column(k) for k in range(parameters.filter(pl.col(REFIT) == refit).height)]
        gap = float(np.abs(stored.sort(c.DATE).select(columns).to_numpy() - again.sort(c.DATE).select(columns).to_numpy()).max())
        if again.height != stored.height or gap > REFILTER_TOLERANCE:
            differences.append(f"{name}: refit {refit} cut at {cut}: {again.height} vs {stored.height} rows, max gap {gap:.3g}")
    return differences


@dg.asset(
    kinds={"sklearn"},
    partitions_def=universe_partitions,
    group_name=GROUP,
    ins={"market_state": dg.AssetIn(partition_mapping=same_universe)},
    check_specs=[
        dg.AssetCheckSpec("regime_clusters_schema", asset="regime_clusters", blocking=True,
                          description="Clusters satisfy RegimeClustersSchema (fitted before every date they assign)."),
    ],
)
def regime_clusters(
    context: dg.AssetExecutionContext, config: RegimeClustersConfig, market_state: UniverseFrames,
    market_data: MarketDataResource,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """KMeans, Gaussian-mixture and HDBSCAN clusters of the market state, fitted on the training span, applied after."""
    params = settings(config, ClusterParams)
    frames, failures, summary = {}, [], {}
    for name in context.partition_keys:
        train_end = market_data.universe(name).split.train_end
        result = fit_regime_clusters(conform(market_state[name], MarketStateSchema), train_end, params)
        if failure := schema_failures(RegimeClustersSchema, result.assignments, asset="regime_clusters", partition=name):
            failures.append(failure)
        frames[name] = result.assignments
        summary[name] = {"train_end": str(train_end), "fit_rows": result.fit_rows, "dims": result.dims,
                         "pca_explained_variance": result.explained_variance, "rows": result.assignments.height,
                         "training_cluster_sizes": result.training_cluster_sizes}
    check = dg.AssetCheckResult(check_name="regime_clusters_schema", passed=not failures,
                                metadata={"failures": "\n".join(failures) or "none"})

    def outputs() -> Outputs:
        yield dg.Output(frames, metadata={"by_universe": dg.MetadataValue.json(summary)})
    yield from outputs_then_checks(outputs, check)


@dg.asset(
    kinds={"polars"},
    partitions_def=universe_partitions,
    group_name=GROUP,
    ins={"regime_hmm": dg.AssetIn(), "regime_hmm_params": dg.AssetIn()},
    check_specs=[
        dg.AssetCheckSpec("regime_labels_schema", asset="regime_labels", blocking=True,
                          description="Labels satisfy RegimeLabelsSchema."),
        dg.AssetCheckSpec("regime_labels_known_crises", asset="regime_labels", blocking=False,
                          description="Crisis share of trading days: >= 75 % in 2008-09-15..2008-12-31 and "
                                      "2020-02-24..2020-04-30, 0 in 2017 (where the labels cover them), with the "
                                      "detection delay (compute/regimes/validation.py)."),
    ],
)
def regime_labels(
    context: dg.AssetExecutionContext, regime_hmm: UniverseFrames, regime_hmm_params: UniverseFrames,
    market_data: MarketDataResource,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """The seed's labels (Low-Vol Bull, High-Vol Bull, Bear, Crisis, Transition) per date, from the filtered HMM."""
    frames, failures, reports, summary = {}, [], {}, {}
    for name in context.partition_keys:
        states = label_states(state_statistics(regime_hmm_params[name]))
        frame = label_dates(regime_hmm[name], states)
        if failure := schema_failures(RegimeLabelsSchema, frame, asset="regime_labels", partition=name):
            failures.append(failure)
        if episodes_apply(market_data.universe(name).source):
            reports[name] = [report.as_dict() for report in evaluate_episodes(frame)]
        frames[name] = frame
        summary[name] = {
            "share_by_regime": {label: round(float((frame[REGIME] == label).mean() or 0.0), 4) for label in REGIME_NAMES},
            "state_labels_newest_refit": dict(
                states.filter(pl.col(REFIT) == pl.col(REFIT).max()).select("state", pl.col(REGIME).cast(pl.String)).iter_rows()
            ),
        }
    failed_episodes = [f"{name}: {r['name']}" for name, rs in reports.items() for r in rs if r["passed"] is False]
    checks = [
        dg.AssetCheckResult(check_name="regime_labels_schema", passed=not failures,
                            metadata={"failures": "\n".join(failures) or "none"}),
        dg.AssetCheckResult(check_name="regime_labels_known_crises", passed=not failed_episodes,
                            severity=dg.AssetCheckSeverity.WARN,
                            metadata={"episodes": dg.MetadataValue.json(reports),
                                      "failed": ", ".join(failed_episodes) or "none",
                                      "not_applicable": ", ".join(sorted(set(frames) - set(reports))) or "none"}),
    ]

    def outputs() -> Outputs:
        yield dg.Output(frames, metadata={"by_universe": dg.MetadataValue.json(summary)})
    yield from outputs_then_checks(outputs, checks[0], advisory=checks[1:])
