"""The data layer: universe -> raw_ohlcv -> cleaned_bars (+ rejected_bars), with blocking quality checks."""


import datetime as dt
from collections.abc import Iterator, Sequence

import dagster as dg
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.cleaning import ACTION_REJECTED, CleaningResult, clean_bars
from quantlab_assets.compute.data.membership import (
    mark_members,
    members_per_date,
    non_tradable_tickers,
    spells_without_bars,
    split_after_delisting,
)
from quantlab_assets.compute.data.quality import duplicate_keys, examples, future_dates, ohlc_violations
from quantlab_assets.compute.schemas import (
    CleanedBarsSchema,
    QuarantinedBarsSchema,
    RawBarsSchema,
    UniverseSchema,
    conform,
    schema_failures,
    validate,
)
from quantlab_assets.compute.universe import universe_frame
from quantlab_assets.defs.io_managers import UniverseFrames
from quantlab_assets.defs.partitions import (
    bars_partitions,
    bars_with_lookback,
    months_window,
    months_by_universe,
    same_universe,
    universe_partitions,
)
from quantlab_assets.defs.resources import DataQualityResource, MarketDataResource

GROUP = "data"


@dg.asset(partitions_def=universe_partitions, group_name=GROUP)
def universe(context: dg.AssetExecutionContext, market_data: MarketDataResource) -> UniverseFrames:
    """Instruments of the universe with their sector and industry."""
    frames = {}
    for name in context.partition_keys:
        spec = market_data.universe(name)
        frames[name] = validate(UniverseSchema, universe_frame(spec), asset="universe", partition=name)
    context.add_output_metadata(
        {"instruments": sum(f.height for f in frames.values()),
         "sectors": sorted({s for f in frames.values() for s in f[c.SECTOR].unique().to_list()})}
    )
    return frames


@dg.asset(partitions_def=bars_partitions, backfill_policy=dg.BackfillPolicy.single_run(), group_name=GROUP)
def raw_ohlcv(context: dg.AssetExecutionContext, market_data: MarketDataResource) -> UniverseFrames:
    """Daily bars exactly as the universe's source delivered them, with the file and row of each."""
    frames, notes = {}, {}
    for name, months in months_by_universe(list(context.partition_keys)).items():
        spec = market_data.universe(name)
        first_day, last_day = months_window(months)
        fetched = market_data.fetch(spec, first_day, last_day)
        partition = f"{months[0]}..{months[-1]}|{name}"
        frames[name] = validate(RawBarsSchema, fetched.bars, asset="raw_ohlcv", partition=partition)
        notes[name] = {"source": spec.source, "rows": fetched.bars.height, **fetched.notes}
    context.add_output_metadata(
        {"as_of": str(market_data.as_of_date()), "by_universe": dg.MetadataValue.json(notes)}
    )
    return frames


CHECKS = {
    "schema": "Cleaned bars satisfy CleanedBarsSchema (types, positive prices, OHLC, unique keys).",
    "ohlc_rules": "high >= max(open, close, low), low <= min(open, close, high), prices > 0.",
    "unique_keys": "One row per (date, ticker).",
    "no_future_dates": "No bar is dated after the run's as-of date.",
    "rejected_share": "In every month, the share of raw rows rejected stays below DataQualityResource.max_rejected_share.",
}


@dg.multi_asset(
    partitions_def=bars_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name=GROUP,
    ins={
        "raw_ohlcv": dg.AssetIn(partition_mapping=bars_with_lookback),
        "universe": dg.AssetIn(partition_mapping=same_universe),
    },
    outs={
        "cleaned_bars": dg.AssetOut(
            is_required=False,
            description="Validated daily bars on the universe's trading calendar (see compute/data/cleaning.py).",
        ),
        "rejected_bars": dg.AssetOut(
            description="Quarantine: every raw row rejected, capped or dropped, with its rule and source file/row.",
        ),
    },
    check_specs=[
        dg.AssetCheckSpec(f"cleaned_bars_{name}", asset="cleaned_bars", blocking=True, description=text)
        for name, text in CHECKS.items()
    ],
)
def cleaned_bars(
    context: dg.AssetExecutionContext,
    raw_ohlcv: UniverseFrames,
    universe: UniverseFrames,
    market_data: MarketDataResource,
    data_quality: DataQualityResource,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """Clean each universe's raw bars (with LOOKBACK_MONTHS months of lookback) into cleaned and quarantined bars.

    A partition whose blocking checks fail is not written (the previous version stays), the run fails,
    and the quarantine is written regardless, so nothing received is lost.
    """
    as_of = market_data.as_of_date()
    cleaned, quarantined, results, counts = {}, {}, {}, {}
    for name, months in months_by_universe(list(context.partition_keys)).items():
        spec = market_data.universe(name)
        partition = f"{months[0]}..{months[-1]}|{name}"
        # Membership (compute/data/membership.py): rows after a delisting are quarantined before cleaning.
        raw, after_delisting = split_after_delisting(conform(raw_ohlcv[name], RawBarsSchema), universe[name], months_window(months))
        result = clean_bars(
            raw, universe[name][c.TICKER], window=months_window(months), as_of=as_of,
            holidays=spec.holidays, close_is_adjusted=spec.close_is_adjusted, universe=f"{name} ({spec.config_path})",
        )
        quarantine = pl.concat([result.quarantine, after_delisting]).sort(c.DATE, c.TICKER, c.SOURCE_ROW, nulls_last=True)
        quarantined[name] = validate(QuarantinedBarsSchema, quarantine, asset="rejected_bars", partition=partition)
        cleaned[name] = mark_members(result.cleaned, universe[name], months_window(months)[1])
        spells_without_bars(raw, universe[name], months_window(months), spec.config_path)
        results[name] = result
        counts[name] = {"raw_rows": result.raw_rows, "cleaned_rows": result.cleaned.height,
                        "filled_rows": result.filled_rows, "rejected_share": round(result.rejected_share, 6),
                        **result.rule_counts, "after_delisting": after_delisting.height,
                        "members_per_date": members_per_date(cleaned[name], universe[name]),
                        "non_tradable": non_tradable_tickers(universe[name])}

    checks = list(_quality_checks(cleaned, results, as_of, data_quality.max_rejected_share, context.partition_keys))
    yield dg.Output(quarantined, output_name="rejected_bars", metadata={"by_universe": dg.MetadataValue.json(counts)})
    if all(check.passed for check in checks):
        yield dg.Output(
            cleaned,
            output_name="cleaned_bars",
            metadata={
                "by_universe": dg.MetadataValue.json(counts),
                "rows": sum(f.height for f in cleaned.values()),
                "rejected_rows": sum(int((q[c.ACTION] == ACTION_REJECTED).sum()) for q in quarantined.values()),
            },
        )
    yield from checks


def _quality_checks(
    cleaned: UniverseFrames,
    results: dict[str, CleaningResult],
    as_of: dt.date,
    max_rejected_share: float,
    keys: Sequence[str],
) -> Iterator[dg.AssetCheckResult]:
    frames = list(cleaned.values())
    bars = pl.concat(frames) if frames else pl.DataFrame()
    failures = [
        failure
        for name, frame in cleaned.items()
        if (failure := schema_failures(CleanedBarsSchema, frame, asset="cleaned_bars", partition=name))
    ]
    yield dg.AssetCheckResult(
        check_name="cleaned_bars_schema", asset_key="cleaned_bars", passed=not failures,
        metadata={"failures": "\n".join(failures) or "none", "rows": bars.height},
    )
    for check_name, offending in (
        ("cleaned_bars_ohlc_rules", ohlc_violations(bars) if bars.height else bars),
        ("cleaned_bars_unique_keys", duplicate_keys(bars) if bars.height else bars),
        ("cleaned_bars_no_future_dates", future_dates(bars, as_of) if bars.height else bars),
    ):
        yield dg.AssetCheckResult(
            check_name=check_name, asset_key="cleaned_bars", passed=offending.height == 0,
            metadata={"offending_rows": offending.height, "examples": examples(offending)},
        )
    monthly = {name: result.rejected_share_by_month() for name, result in results.items()}
    over = {f"{month}|{name}": round(share, 6) for name, shares in monthly.items()
            for month, share in shares.items() if share > max_rejected_share}
    worst = max((share for shares in monthly.values() for share in shares.values()), default=0.0)
    yield dg.AssetCheckResult(
        check_name="cleaned_bars_rejected_share", asset_key="cleaned_bars", passed=not over,
        metadata={"worst_month_share": round(worst, 6), "threshold": max_rejected_share,
                  "months_over_threshold": dg.MetadataValue.json(over), "partitions": len(keys)},
    )
