"""Print what the lab holds for a universe: partitions, rows, quarantine by rule, latest asset checks.

    python -m quantlab_assets.report_status --universe synthetic

Reads the Dagster instance in $DAGSTER_HOME (materialisations and check results) and the Parquet
partitions in the data directory.
"""

import argparse
import dataclasses

import dagster as dg
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.backtest.comparison import DIFFERENCE, HIGH, LOW, VERDICT, best_candidate_verdict
from quantlab_assets.compute.backtest.trials import KIND_LABELS
from quantlab_assets.compute.data.synthetic import generate_synthetic_market, planted_oracle_rank_ic
from quantlab_assets.compute.models.scorecard import STACKED
from quantlab_assets.compute.portfolio.desk import summarise
from quantlab_assets.compute.portfolio.strategies import StrategyParams
from quantlab_assets.compute.regimes.validation import episodes_apply, evaluate_episodes
from quantlab_assets.compute.storage import StorageLayout
from quantlab_assets.compute.universe import synthetic_params
from quantlab_assets.definitions import defs
from quantlab_assets.defs.partitions import split_bars_key, universe_catalog
from quantlab_assets.defs.resources import data_dir

BAR_ASSETS = ("raw_ohlcv", "cleaned_bars", "rejected_bars", "labels", "features")
BAR_ASSETS += ("market_state",)


def _stored(asset: str, universe: str) -> pl.DataFrame:
    files = sorted((data_dir() / asset / universe).glob("*.parquet"))
    return pl.concat([pl.read_parquet(f) for f in files]) if files else pl.DataFrame()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--universe", default="synthetic")
    universe = parser.parse_args().universe
    instance = dg.DagsterInstance.get()
    print(f"instance: {instance.root_directory}   data: {data_dir()}")
    for asset in BAR_ASSETS:
        keys = [k for k in instance.get_materialized_partitions(dg.AssetKey(asset)) if split_bars_key(k)[1] == universe]
        frame = _stored(asset, universe)
        span = f"{frame[c.DATE].min()} .. {frame[c.DATE].max()}" if frame.height else "-"
        print(f"{asset:14s} {len(keys):4d} month partitions  {frame.height:>10,d} rows  {span}")
    quarantine = _stored("rejected_bars", universe)
    if quarantine.height:
        by_rule = quarantine.group_by(c.ACTION, c.RULE).len().sort(c.ACTION, "len", descending=[False, True])
        print("quarantine by rule:")
        for action, rule, n in by_rule.iter_rows():
            print(f"  {action:9s} {rule:20s} {n:8,d}")
    _print_regimes(universe)
    _print_models(universe)
    _print_backtests(universe)
    _print_versus_equal_weight(universe)
    _print_overfitting(universe, instance)
    _print_desk(universe)
    check_keys = sorted(defs.resolve_asset_graph().asset_check_keys, key=lambda key: key.name)
    checks = instance.event_log_storage.get_asset_check_summary_records(check_keys)
    print("latest asset checks:")
    for key in check_keys:
        evaluation = checks[key].last_check_execution_record
        status = evaluation.status.value if evaluation else "never run"
        print(f"  {key.name:40s} {status}")


def _print_regimes(universe: str) -> None:
    path = data_dir() / "regime_labels" / f"{universe}.parquet"
    if not path.exists():
        return
    labels = pl.read_parquet(path)
    span = f"{labels[c.DATE].min()} .. {labels[c.DATE].max()}" if labels.height else "-"
    print(f"regime_labels  {labels.height:>10,d} dates (after train_end)  {span}")
    for regime, share in labels.group_by("regime").len().with_columns(pl.col("len") / labels.height).sort("regime").iter_rows():
        print(f"  {regime:14s} {share:6.1%}")
    if not episodes_apply(universe_catalog()[universe].source):
        print("  known crises: not applicable (synthetic prices have no real-world crisis dates)")
        return
    for report in evaluate_episodes(labels):
        if report.covered:
            delay = "-" if report.delay_trading_days is None else f"{report.delay_trading_days} trading days"
            print(f"  {report.name:18s} crisis {report.crisis_days:3d}/{report.trading_days:3d} days  "
                  f"first {report.first_crisis}  delay {delay}  [{report.required}: {report.passed}]")


def _print_models(universe: str) -> None:
    path = data_dir() / "model_scorecard" / f"{universe}.parquet"
    if not path.exists():
        return
    card = pl.read_parquet(path).filter(pl.col("fold_id").is_null()).sort("model", "horizon_days")
    oracle = _planted_oracle(universe, card)
    if oracle:
        print("planted price signal (synthetic market): oracle rank IC "
              + ", ".join(f"{h}d {ic:.4f}" for h, ic in sorted(oracle.items())) + "; 'share' = a model's rank IC / the oracle's")
    print("model scorecard (out of fold, all folds; IC null where undefined):")
    for row in card.iter_rows(named=True):
        share = (f"  share {row['rank_ic'] / oracle[row['horizon_days']]:+.0%}"
                 if row["rank_ic"] is not None and oracle.get(row["horizon_days"]) else "")
        print(f"  {row['model']:9s} {row['horizon_days']:2d}d  rows {row['n_rows']:>9,d}  IC {_num(row['ic'], '+.4f')}  "
              f"rank IC {_num(row['rank_ic'], '+.4f')}{share}  ICIR {_num(row['icir'], '+.3f')}  "
              f"pred std {_num(row['prediction_std'], '.4g')}")
    for horizon, frame in card.group_by("horizon_days", maintain_order=True):
        stacked = frame.filter(pl.col("model") == STACKED)["rank_ic"]
        members = frame.filter((pl.col("model") != STACKED) & pl.col("rank_ic").is_not_null()).sort("rank_ic")
        if stacked.len() and stacked[0] is not None and members.height:
            best, best_ic = members["model"][-1], members["rank_ic"][-1]
            verdict = "at least as good as" if stacked[0] >= best_ic else "below"
            print(f"  the {horizon[0]}d stack is {verdict} its best member ({best} {best_ic:+.4f}) out of fold, "
                  "each on its own rows")
    live = data_dir() / "live_alpha" / f"{universe}.parquet"
    if live.exists():
        traded = StrategyParams().alpha
        frame = pl.read_parquet(live).sort(traded, descending=True)
        top = ", ".join(f"{t} {a:+.0f}" for t, a in frame.select(c.TICKER, traded).head(3).iter_rows())
        print(f"live_alpha     {frame.height} instruments on {frame[c.DATE].max()}  (top bp of {traded}: {top})")


def _planted_oracle(universe: str, card: pl.DataFrame) -> dict[int, float]:
    """Horizon -> the rank IC of the synthetic market's planted price signal, recomputed from its generator up to
    the newest stored bar (the ceiling a model's rank IC is read against); empty for a market with no oracle."""
    spec = universe_catalog().get(universe)
    bars = data_dir() / "cleaned_bars" / universe
    if spec is None or spec.source != "synthetic" or not bars.exists():
        return {}
    newest = pl.scan_parquet(bars / "*.parquet").select(pl.col(c.DATE).max()).collect().item()
    if newest is None:
        return {}
    market = generate_synthetic_market(dataclasses.replace(synthetic_params(spec), end=newest))
    return {h: planted_oracle_rank_ic(market, c.PLANTED_EXPECTED_RETURN, h) for h in sorted(set(card["horizon_days"]))}


def _print_backtests(universe: str) -> None:
    path = data_dir() / "backtest_metrics" / f"{universe}.parquet"
    if not path.exists():
        return
    metrics = pl.read_parquet(path).sort("sharpe", descending=True, nulls_last=True)
    print(f"backtests over {metrics['days'].max()} days (Sharpe with its 95 % bootstrap interval; DSR over {metrics['n_trials'].max()} trials):")
    for row in metrics.iter_rows(named=True):
        print(f"  {row['strategy']:24s} CAGR {_num(row['cagr'], '+.1%')}  Sharpe {_num(row['sharpe'], '.2f')} "
              f"[{_num(row['sharpe_ci_low'], '.2f')}, {_num(row['sharpe_ci_high'], '.2f')}]  DSR {_num(row['dsr'], '.2f')}  "
              f"max DD {_num(row['max_drawdown'], '.1%')}  trades {row['trades']}")
    report = data_dir() / "reports" / "backtest_report" / f"{universe}.html"
    if report.exists():
        print(f"report: {report}")


def _print_versus_equal_weight(universe: str) -> None:
    """Each strategy's Sharpe minus equal weight's with its paired interval, and the verdict on the best candidate."""
    path = data_dir() / "backtest_metrics" / f"{universe}.parquet"
    metrics = pl.read_parquet(path) if path.exists() else None
    if metrics is None or DIFFERENCE not in metrics.columns:
        return
    print("against equal weight (Sharpe difference, 95 % paired bootstrap interval on the same days):")
    for row in metrics.filter(pl.col(DIFFERENCE).is_not_null()).sort(DIFFERENCE, descending=True).iter_rows(named=True):
        print(f"  {row['strategy']:24s} {_num(row[DIFFERENCE], '+.2f')} [{_num(row[LOW], '.2f')}, {_num(row[HIGH], '.2f')}]"
              f"  {row[VERDICT]}")
    print(f"  {best_candidate_verdict(metrics)}")


def _print_desk(universe: str) -> None:
    """Today's targets (strategies decided, positions, invested), the ledger's records, the live track record."""
    path = data_dir() / "target_portfolio" / f"{universe}.parquet"
    if not path.exists():
        return
    targets = pl.read_parquet(path)
    records = len(list(StorageLayout(data_dir()).ledger("decision_ledger", universe).glob("*.json")))
    print(f"target_portfolio on {targets[c.DATE].max()}  ({records} decisions recorded in the ledger):")
    for strategy, positions, invested in (targets.group_by("strategy").agg(pl.len(), pl.col("weight").sum())
                                          .sort("strategy").iter_rows()):
        print(f"  {strategy:24s} {positions:3d} positions  invested {invested:.1%}")
    track = data_dir() / "live_track_record" / f"{universe}.parquet"
    if track.exists():
        print("live track record (net of costs; Sharpe from 21 scored days):")
        for row in summarise(pl.read_parquet(track)).iter_rows(named=True):
            print(f"  {row['strategy']:24s} {row['scored_days']:4d} days  return {_num(row['cumulative_return'], '+.2%')}  "
                  f"positive days {_num(row['hit_rate'], '.0%')}  Sharpe {_num(row['sharpe'], '.2f')} "
                  f"[{_num(row['sharpe_ci_low'], '.2f')}, {_num(row['sharpe_ci_high'], '.2f')}]")


def _print_overfitting(universe: str, instance: dg.DagsterInstance) -> None:
    """The trials the DSR counts, the PBO across the candidates and the CPCV paths' Sharpes (backtest_metrics)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("backtest_metrics"), asset_partitions=[universe]), limit=1).records
    if not records:
        return
    metadata = records[0].asset_materialization.metadata
    kinds, overfitting = metadata["trials_by_kind"].value, metadata["overfitting"].value
    counted = " + ".join(f"{kinds.get(kind, 0)} {label}" for kind, label in KIND_LABELS.items())
    print(f"trials counted (the DSR's N): {metadata['n_trials'].value} = {counted} "
          f"(not stored: {metadata['trial_inputs_not_stored'].value})")
    print(f"PBO across {len(overfitting['candidates'])} candidates: {_num(overfitting['pbo'], '.3f')} "
          f"({overfitting['pbo_splits']} CSCV splits); the in-sample best loses out of sample in "
          f"{_num(overfitting['pbo_oos_loss_share'], '.1%')} of them")
    paths = ", ".join(_num(row["sharpe"], ".2f") for row in overfitting["selection_path_sharpes"]) or "none"
    print(f"CPCV paths, Sharpe of trading the in-sample best candidate: {paths}")


def _num(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


if __name__ == "__main__":
    main()
