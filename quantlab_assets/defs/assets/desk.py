"""The desk, per universe: today's target portfolio of every strategy, the orders that reach it, the decision
ledger that records them, and the live track record that scores past decisions.

  live_alpha[u] + barrier_probabilities + meta_labels + universe + cleaned_bars[*|u] (+ regime_labels)
      -> target_portfolio[u] + orders[u] + decision_ledger[u]   (one step, desk_decision: the targets continue
         each strategy's schedule over the recorded live alphas, the orders start from the last recorded
         decisions, and the ledger records all three)
  decision_ledger[u] + cleaned_bars[*|u] -> live_track_record[u]

Partitioned by universe, every strategy in one partition: a decision is the desk's whole recommendation of a
day, recorded once, and one live alpha date feeds every strategy (one QP solve, the rest rules).
Every asset here refreshes itself when an input changes (eager automation; see defs/automation.py).
"""

from collections.abc import Iterator

import dagster as dg
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.backtest.engine import BacktestParams, returns_from_bars
from quantlab_assets.compute.data.membership import cross_section_rows
from quantlab_assets.compute.portfolio import desk
from quantlab_assets.compute.portfolio.ledger import DecisionLedger, code_version, frame_rows, rows_frame, verify_ledger
from quantlab_assets.compute.portfolio.names import STRATEGY_NAMES
from quantlab_assets.compute.portfolio.strategies import StrategyParams
from quantlab_assets.compute.schemas.base import conform, schema_failures
from quantlab_assets.compute.schemas.data import CleanedBarsSchema
from quantlab_assets.compute.schemas.desk import DecidedTargetsSchema, LiveTrackRecordSchema, OrdersSchema
from quantlab_assets.defs.assets.portfolio import market_regimes
from quantlab_assets.defs.automation import DAILY
from quantlab_assets.defs.checks import Outputs, outputs_then_checks
from quantlab_assets.defs.groups import CORE_RESEARCH
from quantlab_assets.defs.io_managers import PartitionedParquetIOManager, UniverseFrames, optional_input
from quantlab_assets.defs.partitions import same_universe, universe_partitions
from quantlab_assets.defs.resources import MarketDataResource

GROUP = CORE_RESEARCH  # command 1 ends in today's portfolio
LEDGER = "decision_ledger"
# What a record names as its inputs: the assets whose stored versions the decision was made from.
RECORDED_INPUTS = ("live_alpha", "cleaned_bars")


def _returns(cleaned_bars: UniverseFrames, name: str) -> pl.DataFrame:
    return returns_from_bars(conform(cleaned_bars[name], CleanedBarsSchema))


def _input_versions(instance: dg.DagsterInstance, universe: str) -> dict[str, dict[str, str | None]]:
    """Per recorded input, the run and data version of its latest materialisation of the universe's
    partition (cleaned_bars: of its newest month)."""
    versions = {}
    for asset in RECORDED_INPUTS:
        records = instance.fetch_materializations(dg.AssetKey(asset), limit=50).records
        mine = [r for r in records if r.partition_key and universe in str(r.partition_key).split("|")]
        latest = max(mine, key=lambda r: (r.partition_key, r.timestamp), default=None)
        versions[asset] = {} if latest is None else {
            "run_id": latest.run_id, "partition": latest.partition_key,
            "data_version": latest.asset_materialization.tags.get("dagster/data_version")}
    return versions


# Optional inputs neither trigger nor hold back the daily refresh.
DESK_DAILY = DAILY.ignore(dg.AssetSelection.assets("regime_labels"))


@dg.multi_asset(
    partitions_def=universe_partitions,
    group_name=GROUP,
    can_subset=False,
    outs={
        "target_portfolio": dg.AssetOut(
            kinds={"polars", "cvxpy"}, automation_condition=DESK_DAILY, is_required=False,
            description="Today's target weights of every strategy that rebalances today, dated by the decision date "
                        "(the live alpha's); the others hold their last decision (metadata `undecided`: why)."),
        "orders": dg.AssetOut(
            kinds={"polars"}, automation_condition=DESK_DAILY, is_required=False,
            description="Trades from each strategy's last decided holdings (drifted) to today's targets, with the "
                        "backtest cost model's estimated cost."),
        LEDGER: dg.AssetOut(
            kinds={"json"}, automation_condition=DESK_DAILY, is_required=False,
            description="Append-only, hash-chained record per decision date (live alpha, targets, orders, code "
                        "version, inputs); this output is every record's targets, for the track record."),
    },
    ins={
        "live_alpha": dg.AssetIn(),
        "meta_labels": dg.AssetIn(),
        "barrier_probabilities": dg.AssetIn(),
        "cleaned_bars": dg.AssetIn(partition_mapping=same_universe),
        "universe": dg.AssetIn(),
        "regime_labels": optional_input(),
    },
    check_specs=[
        dg.AssetCheckSpec("target_portfolio_valid", asset="target_portfolio", blocking=True,
                          description="Schema: one decision date, no later signal, no leverage per strategy."),
        dg.AssetCheckSpec("orders_valid", asset="orders", blocking=True,
                          description="Schema: trade = target - current, costs non-negative, one row per strategy and ticker."),
        dg.AssetCheckSpec("decision_ledger_untouched", asset=LEDGER, blocking=True,
                          description="Every stored record still matches its hash and chains to the previous one "
                                      "(no past decision edited, removed or inserted)."),
    ],
)
def desk_decision(
    context: dg.AssetExecutionContext,
    live_alpha: UniverseFrames,
    meta_labels: UniverseFrames,
    barrier_probabilities: UniverseFrames,
    cleaned_bars: UniverseFrames,
    universe: UniverseFrames,
    regime_labels: UniverseFrames,
    market_data: MarketDataResource,
    io_manager: dg.ResourceParam[PartitionedParquetIOManager],
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """The day's decision in one step, since each part needs the ledger's past: the targets (the strategy
    builder over the recorded live alphas and today's), the orders from the last decided holdings, and today's
    record appended to the ledger (kept as first stored when the date already has one: never rewritten)."""
    name = context.partition_key
    ledger = DecisionLedger(io_manager.layout.ledger(LEDGER, name))
    stored = ledger.records()
    # A ledger whose past was changed gets no new record chained to it: the check fails, nothing is output.
    problems = verify_ledger(stored)
    alpha = live_alpha[name]
    bars = conform(cleaned_bars[name], CleanedBarsSchema)
    returns = returns_from_bars(bars)
    members = universe[name]
    targets = desk.live_targets(
        STRATEGY_NAMES, alpha, returns, past_alpha=_recorded(stored, "alpha", dict(alpha.schema)),
        meta=meta_labels[name], barrier=barrier_probabilities[name], regimes=market_regimes(regime_labels, name),
        sectors=dict(members.select(c.TICKER, c.SECTOR).iter_rows()), members=cross_section_rows(bars, members),
        benchmark=market_data.universe(name).benchmark,
    )
    as_of = targets.as_of
    previous = desk.latest_decisions(_recorded(stored, "targets", desk.target_schema()).filter(pl.col(c.DATE) < as_of))
    params = BacktestParams()
    book = desk.orders(targets.weights, desk.drifted_holdings(previous, returns, as_of, params.delay), params.costs)
    appended = None if problems else ledger.append(as_of, {
        "universe": name, "alpha": frame_rows(alpha), "targets": frame_rows(targets.weights),
        "orders": frame_rows(book), "undecided": targets.undecided, "code_version": code_version(),
        "inputs": {"as_of": str(as_of), "newest_bar": str(returns[c.DATE].max()),
                   "versions": _input_versions(context.instance, name)},
        "params": {"strategy": repr(StrategyParams()), "execution": repr(params)},
    })
    records = ledger.records()
    problems += verify_ledger(records) if appended is not None else []
    # What is output is what the ledger holds for the date (the first record, on a rerun).
    decided = targets.weights if appended is None else rows_frame(appended.record["targets"], desk.target_schema())
    recorded_orders = book if appended is None else rows_frame(appended.record["orders"], desk.order_schema())
    undecided = targets.undecided if appended is None else appended.record["undecided"]
    failures = {"target_portfolio": schema_failures(DecidedTargetsSchema, decided, asset="target_portfolio", partition=name),
                "orders": schema_failures(OrdersSchema, recorded_orders, asset="orders", partition=name)}
    checks = [
        *(dg.AssetCheckResult(check_name=f"{asset}_valid", asset_key=asset, passed=failure is None,
                              metadata={"failures": failure or "none"}) for asset, failure in failures.items()),
        dg.AssetCheckResult(check_name="decision_ledger_untouched", asset_key=LEDGER, passed=not problems,
                            metadata={"records": len(records), "problems": "\n".join(problems) or "none"}),
    ]

    def outputs() -> Outputs:
        yield dg.Output({name: decided}, output_name="target_portfolio", metadata={
            "decision_date": str(as_of),
            "decided": ", ".join(decided[desk.STRATEGY].unique().sort().to_list()) or "none",
            "undecided": dg.MetadataValue.json(undecided),
            "invested": dg.MetadataValue.json({s: round(float(w), 6) for s, w in decided.group_by(desk.STRATEGY)
                                               .agg(pl.col("weight").sum()).sort(desk.STRATEGY).iter_rows()})})
        yield dg.Output({name: recorded_orders}, output_name="orders", metadata={
            "decision_date": str(as_of), "orders": recorded_orders.height,
            "estimated_cost": dg.MetadataValue.json({s: float(v) for s, v in recorded_orders.group_by(desk.STRATEGY)
                                                     .agg(pl.col(desk.COST).sum()).sort(desk.STRATEGY).iter_rows()})})
        yield dg.Output({name: _recorded(records, "targets", desk.target_schema())}, output_name=LEDGER, metadata={
            "decision_date": str(as_of), "records": len(records), "written": appended.written,
            "record_hash": appended.record["record_hash"], "path": dg.MetadataValue.path(str(appended.path)),
            "note": "new record" if appended.written else "this decision date was already recorded: first record kept"})
    yield from outputs_then_checks(outputs, checks)


def _recorded(records: list[dict], key: str, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """The rows every record holds under `key` (its live alpha, its targets), as one frame of `schema`."""
    frames = [rows_frame(record[key], schema) for record in records]
    return pl.concat(frames) if frames else pl.DataFrame(schema=schema)


@dg.asset(
    kinds={"polars"},
    partitions_def=universe_partitions,
    group_name=GROUP,
    automation_condition=DAILY,
    output_required=False,
    check_specs=[dg.AssetCheckSpec("live_track_record_valid", asset="live_track_record", blocking=True,
                                   description="Schema: one row per strategy and scored day, costs non-negative, equity positive.")],
    ins={
        LEDGER: dg.AssetIn(),
        "cleaned_bars": dg.AssetIn(partition_mapping=same_universe),
    },
)
def live_track_record(
    context: dg.AssetExecutionContext, decision_ledger: UniverseFrames, cleaned_bars: UniverseFrames
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """Each strategy's recorded decisions scored on the returns that arrived after them (the backtest engine's
    timing and costs): daily net returns and equity; the summary (cumulative return, hit rate, Sharpe and its
    interval once enough days are scored) as metadata."""
    name = context.partition_key
    record = desk.track_record(decision_ledger[name], _returns(cleaned_bars, name))
    failure = schema_failures(LiveTrackRecordSchema, record.daily, asset="live_track_record", partition=name)
    check = dg.AssetCheckResult(check_name="live_track_record_valid", passed=failure is None,
                                metadata={"failures": failure or "none"})

    def outputs() -> Outputs:
        yield dg.Output({name: record.daily}, metadata={
            "scored_days": dg.MetadataValue.json(dict(record.summary.select(desk.STRATEGY, "scored_days").iter_rows())),
            "summary": dg.MetadataValue.json(json_rows(record.summary)),
        })
    yield from outputs_then_checks(outputs, check)


def json_rows(frame: pl.DataFrame) -> list[dict]:
    return [{k: (round(v, 6) if isinstance(v, float) else str(v) if v is not None and not isinstance(v, int | str) else v)
             for k, v in row.items()} for row in frame.to_dicts()]
