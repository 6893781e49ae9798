"""Features: the feature panel with its look-ahead check, and the FFD orders diagnostic of the training span."""

import zlib
from collections.abc import Iterator

import dagster as dg
import numpy as np
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.membership import cross_section_rows, members_per_date, non_tradable_tickers
from quantlab_assets.compute.data.month_coverage import month_coverage_failures, rows_by_month
from quantlab_assets.compute.features.compute import compute_features
from quantlab_assets.compute.features.ffd import FFD_LOG_CLOSE, FfdParams, apply_ffd, select_ffd_order
from quantlab_assets.compute.features.lookahead import sampled_lookahead_violations
from quantlab_assets.compute.schemas.base import conform, empty_frame, schema_failures, validate
from quantlab_assets.compute.schemas.data import CleanedBarsSchema
from quantlab_assets.compute.schemas.features import FeaturesSchema, FfdOrdersSchema
from quantlab_assets.defs.checks import Outputs, outputs_then_checks, per_partition_check, stored_months, withheld
from quantlab_assets.defs.groups import CORE_RESEARCH
from quantlab_assets.defs.io_managers import StoredHistory, UniverseFrames
from quantlab_assets.defs.partitions import (
    LOOKBACK_MONTHS,
    bars_key,
    bars_partitions,
    bars_with_lookback,
    months_window,
    months_by_universe,
    same_universe,
    universe_partitions,
)
from quantlab_assets.defs.resources import MarketDataResource

GROUP = CORE_RESEARCH
# The look-ahead check recomputes the features on perturbed futures: this many cut dates per run, on
# at most this many instruments and trading days (the property does not depend on the panel's size).
LOOKAHEAD_CUTS = 2
LOOKAHEAD_INSTRUMENTS = 12
LOOKAHEAD_DAYS = 400


@dg.asset(
    kinds={"polars"},
    partitions_def=universe_partitions,
    group_name=GROUP,
    ins={"cleaned_bars": dg.AssetIn(partition_mapping=same_universe)},
)
def ffd_orders(
    context: dg.AssetExecutionContext, cleaned_bars: UniverseFrames, market_data: MarketDataResource
) -> UniverseFrames:
    """Per instrument, the smallest d whose fractionally differenced log price passes ADF on the training span.

    A diagnostic: the features apply the fixed FfdParams.d to every instrument (compute/features/ffd.py
    says why); `needs_more_than_fixed_d` names the instruments whose training span asks for a larger d.
    """
    fixed_d, frames, summary = FfdParams().d, {}, {}
    for name in context.partition_keys:
        split = market_data.universe(name).split
        bars = conform(cleaned_bars[name], CleanedBarsSchema)
        orders = select_ffd_order(bars, split.train_end)
        frame = pl.DataFrame(
            [{c.TICKER: ticker, "d": o.d, "adf_stat": o.adf_stat, "p_value": o.p_value, "n_obs": o.n_obs,
              "status": o.status, "train_end": split.train_end} for ticker, o in sorted(orders.items())],
            schema=empty_frame(FfdOrdersSchema).schema,
        )
        frames[name] = validate(FfdOrdersSchema, frame, asset="ffd_orders", partition=name)
        summary[name] = {"train_end": str(split.train_end), **dict(frame.group_by("status").len().iter_rows()),
                         "d_by_ticker": dict(frame.select(c.TICKER, "d").iter_rows()), "fixed_d": fixed_d,
                         "needs_more_than_fixed_d": frame.filter(pl.col("d") > fixed_d)[c.TICKER].to_list()}
    context.add_output_metadata({"by_universe": dg.MetadataValue.json(summary)})
    return frames


@dg.asset(
    kinds={"polars"},
    partitions_def=bars_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name=GROUP,
    output_required=False,
    ins={
        "cleaned_bars": dg.AssetIn(partition_mapping=bars_with_lookback),
        "universe": dg.AssetIn(partition_mapping=same_universe),
    },
    check_specs=[
        dg.AssetCheckSpec("features_schema", asset="features", blocking=True,
                          description="Features satisfy FeaturesSchema: keys unique, every feature Float64 and finite."),
        dg.AssetCheckSpec("features_no_lookahead", asset="features", blocking=True,
                          description="Perturbing every bar after a sampled date leaves every feature up to it unchanged."),
        dg.AssetCheckSpec("features_months_complete", asset="features", blocking=True, partitions_def=bars_partitions,
                          description="Per month: a row for every tradable member's bar of the month, and a lookback "
                                      "not cut short by cleaned_bars months missing while raw_ohlcv holds them. A "
                                      "failing month keeps its stored version; the run's other months are written."),
    ],
)
def features(
    context: dg.AssetExecutionContext,
    cleaned_bars: UniverseFrames,
    universe: UniverseFrames,
    market_data: MarketDataResource,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """Every registered feature (price, technical, microstructure, cross-asset, regime), normalised variants and FFD
    at the fixed order d (no date-dependent input: the split's train_end and validation_end do not reach it)."""
    frames, diagnostics, failures, leaks, incomplete = {}, {}, [], [], {}
    for name, months in months_by_universe(list(context.partition_keys)).items():
        spec = market_data.universe(name)
        first_day, last_day = months_window(months)
        bars = conform(cleaned_bars[name], CleanedBarsSchema)
        result = compute_features(bars, universe[name], benchmark=spec.benchmark)
        ffd = apply_ffd(bars.select(c.DATE, c.TICKER, c.CLOSE)).select(c.DATE, c.TICKER, FFD_LOG_CLOSE)
        window = (
            result.frame.join(ffd, on=[c.DATE, c.TICKER], how="left")
            .filter(pl.col(c.DATE).is_between(first_day, last_day, closed="both"))
        )
        partition = f"{months[0]}..{months[-1]}|{name}"
        if failure := schema_failures(FeaturesSchema, window, asset="features", partition=partition):
            failures.append(failure)
        leaks += _sampled_leaks(bars, universe[name], spec.benchmark, seed=zlib.crc32(partition.encode()))
        frames[name] = window
        incomplete.update({bars_key(month, name): why for month, why in month_coverage_failures(
            months, rows_by_month(window), rows_by_month(cross_section_rows(bars, universe[name])),
            stored_months(context, "cleaned_bars", name), stored_months(context, "raw_ohlcv", name),
            upstream="cleaned_bars", source="raw_ohlcv", universe=name, before=LOOKBACK_MONTHS,
        ).items()})
        diagnostics[name] = {
            "feature_count": window.width - 2, "rows": window.height,
            "compute_seconds": round(result.diagnostics.compute_seconds, 3),
            "benchmark_source": result.diagnostics.benchmark_source,
            "benchmark_missing_dates": result.diagnostics.benchmark_missing_dates,
            "members_per_date": members_per_date(window, universe[name]),
            "non_tradable_excluded": non_tradable_tickers(universe[name]),
            "null_share": {k: round(v, 4) for k, v in result.diagnostics.null_share.items()},
        }
    checks = [
        dg.AssetCheckResult(check_name="features_schema", passed=not failures,
                            metadata={"failures": "\n".join(failures) or "none"}),
        dg.AssetCheckResult(check_name="features_no_lookahead", passed=not leaks,
                            metadata={"violations": "\n".join(leaks[:20]) or "none", "cuts": LOOKAHEAD_CUTS}),
    ]
    coverage = per_partition_check(context, "features", "features_months_complete", context.partition_keys, incomplete)

    def outputs() -> Outputs:
        if len(incomplete) < len(context.partition_keys):
            yield dg.Output(StoredHistory(frames, withheld=withheld(incomplete), allow_shrinking=True),
                            metadata={"by_universe": dg.MetadataValue.json(diagnostics)})
    yield from outputs_then_checks(outputs, checks)
    yield coverage


def _sampled_leaks(bars: pl.DataFrame, universe_frame: pl.DataFrame, benchmark: str | None, seed: int) -> list[str]:
    """The look-ahead property test of the features, on a sample of instruments and recent days."""
    if bars.height == 0:
        return []
    rng = np.random.default_rng(seed)
    tickers = bars[c.TICKER].unique().sort()
    sample = tickers.sample(min(LOOKAHEAD_INSTRUMENTS, tickers.len()), seed=int(rng.integers(2**31)))
    dates = bars[c.DATE].unique().sort()
    since = dates[max(0, dates.len() - LOOKAHEAD_DAYS)]
    subset = bars.filter(pl.col(c.TICKER).is_in(sample.implode()) & (pl.col(c.DATE) >= since))
    return sampled_lookahead_violations(
        subset, universe_frame, lambda b, u: compute_features(b, u, benchmark=benchmark), LOOKAHEAD_CUTS, rng
    )
