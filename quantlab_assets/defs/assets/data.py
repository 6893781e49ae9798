"""The data layer: universe -> raw_ohlcv -> cleaned_bars (+ rejected_bars), with blocking quality checks."""


import datetime as dt
from collections.abc import Iterator, Sequence

import dagster as dg
import polars as pl
from pydantic import Field

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.cleaning import ACTION_REJECTED, CleaningResult, clean_bars
from quantlab_assets.compute.data.membership import (
    mark_members,
    members_per_date,
    non_tradable_tickers,
    spells_without_bars,
    split_after_delisting,
)
from quantlab_assets.compute.data.month_coverage import shift_month
from quantlab_assets.compute.data.partition_span import (
    OUTSIDE_PARTITIONS,
    outside_examples,
    quarantine_outside,
    split_by_span,
)
from quantlab_assets.compute.data.quality import duplicate_keys, examples, future_dates, ohlc_violations
from quantlab_assets.compute.schemas.base import conform, schema_failures, validate
from quantlab_assets.compute.schemas.data import CleanedBarsSchema, QuarantinedBarsSchema, RawBarsSchema, UniverseSchema
from quantlab_assets.compute.universe import UniverseSpec, universe_frame
from quantlab_assets.defs.checks import log_partition_evaluations
from quantlab_assets.defs.groups import CORE_RESEARCH
from quantlab_assets.defs.io_managers import StoredHistory, UniverseFrames, months_span
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
from quantlab_assets.defs.resources import DataQualityResource, MarketDataResource

GROUP = CORE_RESEARCH


@dg.asset(partitions_def=universe_partitions, group_name=GROUP, kinds={"polars"})
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


class BarsRefreshConfig(dg.Config):
    """Run config of the stored bar assets (the launchpad shows it; from the shell: --config-json)."""

    allow_shrinking_history: bool = Field(
        default=False,
        description=(
            "Write months for which the source now delivers fewer bars than are stored (a vendor that really "
            "restated its history). Off (the default), such a run fails naming the months, the stored and "
            "delivered row counts and the source files, and writes no partition: a header-only file or a "
            "failed download cannot replace stored history."
        ),
    )


@dg.asset(partitions_def=bars_partitions, backfill_policy=dg.BackfillPolicy.single_run(), group_name=GROUP, kinds={"polars"})
def raw_ohlcv(
    context: dg.AssetExecutionContext, config: BarsRefreshConfig, market_data: MarketDataResource
) -> StoredHistory:
    """Daily bars exactly as the universe's source delivered them, with the file and row of each.

    Rows the source holds dated outside every month partition are stored with the run's newest month
    and listed in the metadata (`outside_partitions`); cleaned_bars quarantines them.
    """
    span = months_span(bars_partitions)
    frames, notes = {}, {}
    for name, months in months_by_universe(list(context.partition_keys)).items():
        spec = market_data.universe(name)
        first_day, last_day = months_window(months)
        fetched = market_data.fetch(spec, first_day, last_day, span)
        partition = f"{months[0]}..{months[-1]}|{name}"
        received = pl.concat([fetched.bars, fetched.outside])
        frames[name] = validate(RawBarsSchema, received, asset="raw_ohlcv", partition=partition)
        notes[name] = {"source": spec.source, "rows": fetched.bars.height, **fetched.notes}
        if fetched.outside.height:
            notes[name][OUTSIDE_PARTITIONS] = {"rows": fetched.outside.height, "stored_with_month": months[-1],
                                               "examples": outside_examples(fetched.outside)}
            context.log.warning(
                f"raw_ohlcv[{name}]: {fetched.outside.height} row(s) dated outside every month partition "
                f"{span[0]}..{span[1]} (stored with {months[-1]}, quarantined by cleaned_bars): "
                f"{outside_examples(fetched.outside)}"
            )
    context.add_output_metadata(
        {"as_of": str(market_data.as_of_date()), "by_universe": dg.MetadataValue.json(notes),
         OUTSIDE_PARTITIONS: sum(note.get(OUTSIDE_PARTITIONS, {}).get("rows", 0) for note in notes.values())}
    )
    return StoredHistory(frames, allow_shrinking=config.allow_shrinking_history)


CHECKS = {
    "schema": "Cleaned bars satisfy CleanedBarsSchema (types, positive prices, OHLC, unique keys).",
    "ohlc_rules": "high >= max(open, close, low), low <= min(open, close, high), prices > 0.",
    "unique_keys": "One row per (date, ticker).",
    "no_future_dates": "No bar is dated after the run's as-of date.",
    "rejected_share": (
        "In every month, the share of raw rows rejected stays below DataQualityResource.max_rejected_share. "
        "A month that fails any check keeps its stored version; the run's other months are written."
    ),
    "not_emptied": (
        "A universe whose raw rows of the run all get dropped (e.g. for insufficient history when the raw "
        "months before the run are not stored) stores nothing; the check names the rules and the months to "
        "materialise first. The first months of a source, before any instrument has a year of history, come "
        "out empty: inside a run that keeps later months, or alone when the source holds no bar before them."
    ),
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
            kinds={"polars"},
            is_required=False,
            description="Validated daily bars on the universe's trading calendar (see compute/data/cleaning.py).",
        ),
        "rejected_bars": dg.AssetOut(
            kinds={"polars"},
            description="Quarantine: every raw row rejected, capped or dropped, with its rule and source file/row.",
        ),
    },
    check_specs=[
        dg.AssetCheckSpec(f"cleaned_bars_{name}", asset="cleaned_bars", blocking=True, description=text,
                          partitions_def=bars_partitions)
        for name, text in CHECKS.items()
    ],
)
def cleaned_bars(
    context: dg.AssetExecutionContext,
    config: BarsRefreshConfig,
    raw_ohlcv: UniverseFrames,
    universe: UniverseFrames,
    market_data: MarketDataResource,
    data_quality: DataQualityResource,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """Clean each universe's raw bars (with LOOKBACK_MONTHS months of lookback) into cleaned and quarantined bars.

    A month whose blocking checks fail is withheld: its stored file stays as it was (or absent), its
    partition's metadata says why, and the run fails; the other months of the same run are written.
    The quarantine is written regardless, so nothing received is lost. Raw rows dated outside every
    month partition are quarantined under `outside_partitions` with the run's newest month.
    """
    as_of = market_data.as_of_date()
    span = months_span(bars_partitions)
    cleaned, quarantined, results, counts, run_months, history_rows = {}, {}, {}, {}, {}, {}
    source_starts_in_run: set[str] = set()
    for name, months in months_by_universe(list(context.partition_keys)).items():
        spec = market_data.universe(name)
        partition = f"{months[0]}..{months[-1]}|{name}"
        raw, outside = split_by_span(conform(raw_ohlcv[name], RawBarsSchema), span)
        # Membership (compute/data/membership.py): rows after a delisting are quarantined before cleaning.
        raw, after_delisting = split_after_delisting(raw, universe[name], months_window(months))
        result = clean_bars(
            raw, universe[name][c.TICKER], window=months_window(months), as_of=as_of, holidays=spec.holidays,
            close_is_adjusted=spec.close_is_adjusted, universe=f"{name} ({spec.config_path})",
        )
        quarantine = pl.concat([result.quarantine, after_delisting, quarantine_outside(outside, span)]).sort(
            c.DATE, c.TICKER, c.SOURCE_ROW, nulls_last=True
        )
        quarantined[name] = validate(QuarantinedBarsSchema, quarantine, asset="rejected_bars", partition=partition)
        cleaned[name] = mark_members(result.cleaned, universe[name], months_window(months)[1])
        spells_without_bars(raw, universe[name], months_window(months), spec.config_path)
        results[name] = result
        run_months[name] = months
        history_rows[name] = raw.filter(pl.col(c.DATE) < months_window(months)[0]).height
        if (not history_rows[name] and result.raw_rows and not cleaned[name].height
                and not _source_holds_history(market_data, spec, months)):
            source_starts_in_run.add(name)
        counts[name] = {"raw_rows": result.raw_rows, "cleaned_rows": cleaned[name].height,
                        "filled_rows": result.filled_rows, "rejected_share": round(result.rejected_share, 6),
                        **result.rule_counts, "after_delisting": after_delisting.height,
                        OUTSIDE_PARTITIONS: quarantine.height - result.quarantine.height - after_delisting.height,
                        "members_per_date": members_per_date(cleaned[name], universe[name]),
                        "non_tradable": non_tradable_tickers(universe[name])}

    checks, failed_months = _quality_checks(cleaned, results, as_of, data_quality.max_rejected_share, run_months,
                                            history_rows, source_starts_in_run)
    for check in checks:
        log_partition_evaluations(context, "cleaned_bars", check.check_name, context.partition_keys, {
            bars_key(month, name): f"failed in {month[:7]}|{name} (the run's result says why); its stored file was "
                                   "left as it was"
            for name, months in failed_months.items() for month, names in months.items() if check.check_name in names
        })
    yield dg.Output(quarantined, output_name="rejected_bars", metadata={"by_universe": dg.MetadataValue.json(counts)})
    withheld = {name: frozenset(failed) for name, failed in failed_months.items() if failed}
    for name, failed in withheld.items():
        for month in sorted(failed):
            context.add_asset_metadata(
                {"withheld": "a blocking check failed in this month; the stored file was left as it was",
                 "failed_checks": failed_months[name][month]},
                asset_key="cleaned_bars", partition_key=bars_key(month, name),
            )
    if sum(len(months) for months in withheld.values()) < len(context.partition_keys):
        yield dg.Output(
            StoredHistory(cleaned, withheld=withheld, allow_shrinking=config.allow_shrinking_history),
            output_name="cleaned_bars",
            metadata={
                "by_universe": dg.MetadataValue.json(counts),
                "rejected_rows": sum(int((q[c.ACTION] == ACTION_REJECTED).sum()) for q in quarantined.values()),
                "withheld_months": dg.MetadataValue.json({name: sorted(m[:7] for m in failed) for name, failed in withheld.items()}),
            },
        )
    yield from checks


def _quality_checks(
    cleaned: UniverseFrames,
    results: dict[str, CleaningResult],
    as_of: dt.date,
    max_rejected_share: float,
    run_months: dict[str, list[str]],
    history_rows: dict[str, int],
    source_starts_in_run: set[str],
) -> tuple[list[dg.AssetCheckResult], dict[str, dict[str, list[str]]]]:
    """The blocking checks' results, and universe -> month key -> names of the checks that failed there.

    history_rows: universe -> raw rows the run read before its first month (its lookback);
    source_starts_in_run: universes whose source holds no bar in the lookback before the run's first month,
    so that no row of the run can have a year of history yet (a backfill may clean a source's first months
    in a run of their own)."""
    failed: dict[str, dict[str, list[str]]] = {name: {} for name in cleaned}

    def fail(name: str, months: Sequence[str], check_name: str) -> None:
        for month in months:
            failed[name].setdefault(month, []).append(check_name)

    checks = []
    failures = {}
    for name, frame in cleaned.items():
        if failure := schema_failures(CleanedBarsSchema, frame, asset="cleaned_bars", partition=name):
            failures[name] = failure
            fail(name, run_months[name], "cleaned_bars_schema")  # a broken type cannot be pinned to a month
    checks.append(dg.AssetCheckResult(
        check_name="cleaned_bars_schema", asset_key="cleaned_bars", passed=not failures,
        metadata={"failures": "\n".join(failures.values()) or "none", "rows": sum(f.height for f in cleaned.values())},
    ))
    for check_name, rule in (
        ("cleaned_bars_ohlc_rules", ohlc_violations),
        ("cleaned_bars_unique_keys", duplicate_keys),
        ("cleaned_bars_no_future_dates", lambda bars: future_dates(bars, as_of)),
    ):
        offending = {name: rule(frame) if frame.height else frame for name, frame in cleaned.items()}
        for name, rows in offending.items():
            fail(name, _month_keys(rows), check_name)
        every = [rows for rows in offending.values() if rows.height]
        all_rows = pl.concat(every) if every else pl.DataFrame()
        checks.append(dg.AssetCheckResult(
            check_name=check_name, asset_key="cleaned_bars", passed=all_rows.height == 0,
            metadata={"offending_rows": all_rows.height, "examples": examples(all_rows)},
        ))
    monthly = {name: result.rejected_share_by_month() for name, result in results.items()}
    over = {f"{month}|{name}": round(share, 6) for name, shares in monthly.items()
            for month, share in shares.items() if share > max_rejected_share}
    for name, shares in monthly.items():
        fail(name, [f"{month}-01" for month, share in shares.items() if share > max_rejected_share],
             "cleaned_bars_rejected_share")
    worst = max((share for shares in monthly.values() for share in shares.values()), default=0.0)
    # A run that keeps no row of a universe it read rows for: its months would be stored empty as if cleaned.
    emptied = {name: sorted(month for month, rows in result.raw_rows_by_month.items() if rows)
               for name, result in results.items()
               if result.raw_rows and not cleaned[name].height and name not in source_starts_in_run}
    for name in emptied:
        fail(name, run_months[name], "cleaned_bars_not_emptied")
    checks.append(dg.AssetCheckResult(
        check_name="cleaned_bars_not_emptied", asset_key="cleaned_bars", passed=not emptied,
        metadata={"emptied_months": dg.MetadataValue.json({name: months for name, months in emptied.items() if months}),
                  "source_starts_in_run": dg.MetadataValue.json(sorted(source_starts_in_run)),
                  "why": "\n".join(_why_emptied(name, months, results[name], run_months[name], history_rows[name])
                                   for name, months in emptied.items() if months) or "none"},
    ))
    checks.append(dg.AssetCheckResult(
        check_name="cleaned_bars_rejected_share", asset_key="cleaned_bars", passed=not over,
        metadata={"worst_month_share": round(worst, 6), "threshold": max_rejected_share,
                  "months_over_threshold": dg.MetadataValue.json(over),
                  "partitions": sum(len(months) for months in run_months.values()),
                  "withheld_months": dg.MetadataValue.json(
                      {name: sorted(m[:7] for m in months) for name, months in failed.items() if months})},
    ))
    return checks, failed


def _source_holds_history(market_data: MarketDataResource, spec: UniverseSpec, months: list[str]) -> bool:
    """Whether the source holds any bar in the LOOKBACK_MONTHS months before the first of `months`: asked only
    when a run read no stored history and kept no row, to tell a source's first months from raw months that
    were never materialised."""
    first_day = months_window(months)[0]
    history_start = dt.date.fromisoformat(shift_month(months[0], -LOOKBACK_MONTHS))
    return market_data.fetch(spec, history_start, first_day - dt.timedelta(days=1)).bars.height > 0


def _why_emptied(name: str, months: list[str], result: CleaningResult, run_months: list[str], history_rows: int) -> str:
    """Which rules dropped the rows, and the raw months to materialise when the run read no history before it."""
    rules = ", ".join(f"{rule} {count:,}" for rule, count in sorted(result.rule_counts.items()) if count) or "none"
    why = f"{name}: every raw row of {', '.join(months)} was dropped (rows per rule: {rules})."
    if history_rows:
        return why
    first = run_months[0]
    history = f"{shift_month(first, -LOOKBACK_MONTHS)[:7]}..{shift_month(first, -1)[:7]}|{name}"
    return (f"{why} The run read no raw row before {first[:7]}: the {LOOKBACK_MONTHS} months of history the rules "
            f"need are not stored; materialise raw_ohlcv [{history}] first (the months the source holds), "
            f"then clean these months again.")


def _month_keys(rows: pl.DataFrame) -> list[str]:
    """Month partition keys ('2024-03-01') of the rows' dates."""
    if not rows.height or c.DATE not in rows.columns:
        return []
    return rows.select(pl.col(c.DATE).dt.truncate("1mo").dt.to_string("%Y-%m-%d").unique())[c.DATE].to_list()
