"""Daily operation end to end: the synthetic market advances one business day at a time (the market data's
as_of), the daily schedule's run request refreshes the newest months of bars, and Dagster's declarative
automation (evaluated here as the sensor would) refreshes the live alpha and the desk. Each day there is a
new decision in the ledger, yesterday's record is byte-identical, and the track record gains one scored day.

The live alpha and the out-of-fold classifiers are seeded stand-ins (their schema, not the model stack);
the bars, the schedule, the automation conditions and the desk are the real ones."""

import datetime as dt
import json
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.portfolio.names import (
    AUDITED,
    BUY_AND_HOLD,
    EQUAL,
    LONG_SHORT,
    QP,
    RECKLESS,
    SNIPER,
    TOP_N,
    TOPK_DROPOUT,
)
from quantlab_assets.defs.assets.data import cleaned_bars, raw_ohlcv, universe
from quantlab_assets.defs.assets.desk import desk_decision, live_track_record
from quantlab_assets.defs.automation import DAILY
from quantlab_assets.defs.io_managers import UniverseFrames
from quantlab_assets.defs.partitions import same_universe, universe_partitions
from quantlab_assets.defs.schedules import daily_refresh_schedule
from quantlab_assets_tests.defs.conftest import lab_resources, range_tags

UNIVERSE = "synthetic"
BARS = ["raw_ohlcv", "cleaned_bars", "rejected_bars"]
FIRST_DAY = dt.date(2008, 6, 20)
DAYS = [FIRST_DAY + dt.timedelta(days=n) for n in (0, 3, 4, 5, 6, 7)]  # Friday, then Monday .. Friday


@dg.asset(name="live_alpha", partitions_def=universe_partitions, automation_condition=DAILY,
          ins={"cleaned_bars": dg.AssetIn(partition_mapping=same_universe)})
def fake_live_alpha(context: dg.AssetExecutionContext, cleaned_bars: UniverseFrames) -> UniverseFrames:
    """A seeded alpha of the newest bar's cross-section (seeded by that date, so a rerun of a day repeats it)."""
    bars = cleaned_bars[context.partition_key]
    today = bars.filter(pl.col(c.DATE) == pl.col(c.DATE).max()).select(c.DATE, c.TICKER).sort(c.TICKER)
    rng = np.random.default_rng(today[c.DATE][0].toordinal())
    alpha = rng.normal(0, 30, (today.height, 2))
    return {context.partition_key: today.with_columns(
        pl.Series("alpha_21d", alpha[:, 0]), pl.Series("alpha_63d", alpha[:, 1]),
        pl.Series("alpha_combined", 0.7 * alpha[:, 0] + 0.3 * alpha[:, 1]),
        pl.lit(900.0).alias("var_21d"), pl.lit(2500.0).alias("var_63d"))}


def _out_of_fold(name: str, column: str, seed: int) -> dg.AssetsDefinition:
    """An out-of-fold classifier stand-in: rows up to the first day only (out-of-fold ends where labels end)."""
    @dg.asset(name=name, partitions_def=universe_partitions,
              ins={"cleaned_bars": dg.AssetIn(partition_mapping=same_universe)})
    def classifier(context: dg.AssetExecutionContext, cleaned_bars: UniverseFrames) -> UniverseFrames:
        rows = cleaned_bars[context.partition_key].filter(pl.col(c.DATE) <= FIRST_DAY - dt.timedelta(days=40))
        rows = rows.select(c.DATE, c.TICKER).sort(c.DATE, c.TICKER)
        rng = np.random.default_rng(seed)
        extra = [pl.Series("side", rng.choice([-1, 1], rows.height), dtype=pl.Int8)] if name == "meta_labels" else []
        return {context.partition_key: rows.with_columns(*extra, pl.Series(column, rng.random(rows.height)))}
    return classifier


ASSETS = [universe, raw_ohlcv, cleaned_bars, fake_live_alpha, _out_of_fold("meta_labels", "meta_probability", 2),
          _out_of_fold("barrier_probabilities", "barrier_probability", 3), desk_decision,
          live_track_record, dg.AssetSpec("regime_labels", partitions_def=universe_partitions)]


def _ledger_files(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "ledgers" / "decision_ledger" / UNIVERSE).glob("*.json"))


@pytest.mark.slow
def test_each_day_adds_one_decision_keeps_the_past_and_scores_one_more_day(
    instance: dg.DagsterInstance, data_dir: Path
) -> None:
    defs = dg.Definitions(assets=ASSETS, resources=lab_resources(data_dir, FIRST_DAY.isoformat()))
    resources = lab_resources(data_dir, FIRST_DAY.isoformat())
    # The sensor runs from the start: its first tick only takes stock (eager() requests on changes after it).
    cursor = dg.evaluate_automation_conditions(defs=defs, instance=instance).cursor
    assert dg.materialize([universe], partition_key=UNIVERSE, instance=instance, resources=resources).success
    assert dg.materialize(ASSETS, selection=BARS, instance=instance, resources=resources,
                          tags=range_tags("2005-01-01", "2008-06-01", UNIVERSE)).success
    assert dg.materialize(ASSETS, selection=["meta_labels", "barrier_probabilities"], partition_key=UNIVERSE,
                          instance=instance, resources=resources).success

    previous_bytes, scored = {}, []
    for day in DAYS:
        resources = lab_resources(data_dir, day.isoformat())
        if day != FIRST_DAY:  # the evening's scheduled run brings the day's bar in
            context = dg.build_schedule_context(scheduled_execution_time=dt.datetime.combine(day, dt.time(22, 30), dt.UTC))
            (request,) = daily_refresh_schedule(context)
            assert dg.materialize(ASSETS, selection=BARS, instance=instance, resources=resources, tags=request.tags).success
        # The automation sensor's ticks: launch what it requests until it requests nothing more.
        launched = set()
        for _ in range(5):
            result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
            cursor = result.cursor
            requested = {r.key.to_user_string() for r in result.results if r.true_subset.size}
            if not requested:
                break
            for key in requested:
                assert result.get_requested_partitions(dg.AssetKey(key)) == {UNIVERSE}
            run = dg.materialize(ASSETS, selection=sorted(requested), partition_key=UNIVERSE, instance=instance,
                                 resources=resources)
            assert run.success and all(e.passed for e in run.get_asset_check_evaluations())
            launched |= requested
        assert {"live_alpha", "target_portfolio", "orders", "decision_ledger", "live_track_record"} <= launched, day

        files = _ledger_files(data_dir)
        assert [f.stem for f in files] == [d.isoformat() for d in DAYS[:DAYS.index(day) + 1]]  # a new decision a day
        for path, stored in previous_bytes.items():
            assert path.read_bytes() == stored, f"{path.name} was rewritten"  # the past untouched
        previous_bytes = {path: path.read_bytes() for path in files}
        record = json.loads(files[-1].read_text())
        # Each strategy keeps its backtest schedule over the live decisions: all decide on the first day, the
        # QP, top-n and top-k again on the sixth (every 5 decision dates), equal weight and long-short after 21,
        # buy-and-hold never.
        decided = {row["strategy"] for row in record["targets"]}
        first, sixth = day == DAYS[0], day == DAYS[5]
        every_5 = {QP, TOP_N, TOPK_DROPOUT}
        assert decided == (every_5 | {EQUAL, BUY_AND_HOLD, LONG_SHORT} if first else every_5 if sixth else set())
        assert {row["date"] for row in record["targets"]} <= {day.isoformat()}
        # The out-of-fold classifiers end weeks before: the threshold profiles are not decided, and say why.
        assert {SNIPER, AUDITED, RECKLESS} <= set(record["undecided"])
        assert all(why.startswith(f"no target on {day}") for why in record["undecided"].values())
        # The first day trades from cash; on the sixth top-n's orders start from what it held (the first
        # day's targets, drifted): the names it drops are sold.
        held = [row for row in record["orders"] if row["strategy"] == TOP_N and row["current_weight"] > 0]
        assert bool(held) == sixth and (bool(record["orders"]) == (first or sixth))
        if len(files) > 1:
            assert record["previous_hash"] == json.loads(files[-2].read_text())["record_hash"]
        track = pl.read_parquet(data_dir / "live_track_record" / f"{UNIVERSE}.parquet")
        scored.append(track.filter(pl.col("strategy") == EQUAL).height)
    # Decision at the close of day 1 trades at the next close (delay 1): then one more scored day per day.
    assert scored == [0, 1, 2, 3, 4, 5]

    # A re-run of the last decision date keeps the first record, byte for byte.
    run = dg.materialize(ASSETS, selection=["target_portfolio", "orders", "decision_ledger"], partition_key=UNIVERSE, instance=instance,
                         resources=resources)
    assert run.success
    assert {path: path.read_bytes() for path in _ledger_files(data_dir)} == previous_bytes
    ledger_event = run.get_asset_materialization_events()[-1].materialization
    assert ledger_event.metadata["written"].value is False

    # A past record edited by hand: the blocking check fails and nothing is chained to the edited ledger.
    first = _ledger_files(data_dir)[0]
    first.write_text(first.read_text().replace('"weight":', '"weight": 0.5, "was":', 1))
    run = dg.materialize(ASSETS, selection=["target_portfolio", "orders", "decision_ledger"], partition_key=UNIVERSE, instance=instance,
                         resources=resources, raise_on_error=False)
    (check,) = [e for e in run.get_asset_check_evaluations() if e.check_name == "decision_ledger_untouched"]
    assert not run.success and not check.passed
    assert "edited after it was stored" in check.metadata["problems"].value
    assert len(_ledger_files(data_dir)) == len(DAYS)


def test_the_lab_automates_the_live_path_weekly_regimes_and_leaves_heavy_tracks_manual() -> None:
    from quantlab_assets.definitions import defs
    from quantlab_assets.defs.automation import WEEKLY_WHERE_CHANGED, automation_sensor

    graph = defs.resolve_asset_graph()
    conditions = {key.to_user_string(): graph.get(key).automation_condition for key in graph.get_all_asset_keys()}
    daily = {"live_alpha", "target_portfolio", "orders", "decision_ledger", "live_track_record"}
    weekly = {"regime_hmm", "regime_hmm_params", "regime_clusters", "regime_labels"}
    assert {name for name, condition in conditions.items() if condition is not None} == daily | weekly
    assert all(conditions[name] == WEEKLY_WHERE_CHANGED for name in weekly)
    assert all(conditions[name].get_label() == "eager" for name in daily)
    assert automation_sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert [sensor.name for sensor in defs.sensors] == [automation_sensor.name]


def test_regimes_refit_weekly_and_only_where_an_input_changed(instance: dg.DagsterInstance) -> None:
    from quantlab_assets.defs.automation import WEEKLY_WHERE_CHANGED

    @dg.asset(partitions_def=universe_partitions)
    def market_state() -> None: ...

    @dg.asset(partitions_def=universe_partitions, deps=[market_state], automation_condition=WEEKLY_WHERE_CHANGED)
    def regime_labels() -> None: ...

    def requested(when: dt.datetime, cursor: object) -> tuple[set[str], object]:
        result = dg.evaluate_automation_conditions(defs=[market_state, regime_labels], instance=instance,
                                                   evaluation_time=when, cursor=cursor)
        return set(result.get_requested_partitions(regime_labels.key)), result.cursor

    thursday, friday_late = dt.datetime(2024, 3, 14, 23, 30, tzinfo=dt.UTC), dt.datetime(2024, 3, 15, 23, 30, tzinfo=dt.UTC)
    _, cursor = requested(thursday, None)
    dg.materialize([market_state], partition_key=UNIVERSE, instance=instance)
    # A changed input waits for the weekly tick (Friday 23:00 UTC) ...
    waiting, cursor = requested(thursday + dt.timedelta(minutes=1), cursor)
    assert waiting == set()
    due, cursor = requested(friday_late, cursor)
    assert due == {UNIVERSE}  # ... then only the universe whose input changed is refitted,
    dg.materialize([regime_labels], partition_key=UNIVERSE, instance=instance)
    # ... and the next week's tick refits nothing when no input changed since.
    assert requested(friday_late + dt.timedelta(days=7), cursor)[0] == set()
