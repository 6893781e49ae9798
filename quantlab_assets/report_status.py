"""Print what the lab holds for a universe: partitions, rows, quarantine by rule, latest asset checks.

    python -m quantlab_assets.report_status --universe synthetic

Reads the Dagster instance in $DAGSTER_HOME (materialisations and check results) and the Parquet
partitions in the data directory.
"""

import argparse

import dagster as dg
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.regimes.validation import evaluate_episodes
from quantlab_assets.definitions import defs
from quantlab_assets.defs.partitions import split_bars_key
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
    check_keys = sorted(defs.resolve_asset_graph().asset_check_keys, key=lambda key: key.name)
    checks = instance.event_log_storage.get_asset_check_summary_records(check_keys)
    print("latest asset checks:")
    for key in check_keys:
        evaluation = checks[key].last_check_execution_record
        status = evaluation.status.value if evaluation else "never run"
        print(f"  {key.name:32s} {status}")


def _print_regimes(universe: str) -> None:
    path = data_dir() / "regime_labels" / f"{universe}.parquet"
    if not path.exists():
        return
    labels = pl.read_parquet(path)
    span = f"{labels[c.DATE].min()} .. {labels[c.DATE].max()}" if labels.height else "-"
    print(f"regime_labels  {labels.height:>10,d} dates (after train_end)  {span}")
    for regime, share in labels.group_by("regime").len().with_columns(pl.col("len") / labels.height).sort("regime").iter_rows():
        print(f"  {regime:14s} {share:6.1%}")
    for report in evaluate_episodes(labels):
        if report.covered:
            delay = "-" if report.delay_trading_days is None else f"{report.delay_trading_days} trading days"
            print(f"  {report.name:18s} crisis {report.crisis_days:3d}/{report.trading_days:3d} days  "
                  f"first {report.first_crisis}  delay {delay}  [{report.required}: {report.passed}]")


if __name__ == "__main__":
    main()
