"""The top-k and long-short configurations tried while choosing the strategy defaults, on a stored run.

Reads the `cleaned_bars` months, the `universe` and the `stacked_alpha` of one universe from a data
directory (command 1's: `./dagster_home/data`) and backtests, with the lab's execution model and costs,
the chosen defaults (StrategyParams: the top-k, long-short, QP and top-n books) and every configuration of compute/portfolio/design_search.py (the
registry's design trials), each against equal weight on the same days: net and gross Sharpe, turnover a
year, and the Sharpe difference with equal weight with its 95 % paired bootstrap interval. About 40 s.

    .venv/bin/python benchmarks/strategy_defaults.py --data-dir dagster_home/data --universe synthetic
"""

from __future__ import annotations

import numpy as np
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.backtest.comparison import DIFFERENCE, HIGH, LOW, versus_equal_weight
from quantlab_assets.compute.backtest.engine import returns_from_bars, run_backtest
from quantlab_assets.compute.backtest.metrics import periods_per_year
from quantlab_assets.compute.data.membership import cross_section_rows
from quantlab_assets.compute.portfolio import design_search as search
from quantlab_assets.compute.portfolio.names import EQUAL, LONG_SHORT, QP, TOP_N, TOPK_DROPOUT
from quantlab_assets.compute.portfolio.strategies import StrategyParams, build_target_weights
from quantlab_assets.compute.storage import read_parquet_file, read_parquet_files

from harness import stored_run


def main() -> None:
    layout, universe_name = stored_run(__doc__.split("\n\n")[0])
    bars = read_parquet_files(sorted((layout.asset_dir("cleaned_bars") / universe_name).glob("*.parquet")))
    universe = read_parquet_file(layout.partition_file("universe", universe_name))
    alpha = read_parquet_file(layout.partition_file("stacked_alpha", universe_name))
    returns, members = returns_from_bars(bars), cross_section_rows(bars, universe)
    # The backtest asset's span: the alpha's first to last date.
    in_span = returns.filter(pl.col(c.DATE).is_between(alpha[c.DATE].min(), alpha[c.DATE].max()))

    def backtest(strategy: str, params: StrategyParams) -> pl.DataFrame:
        weights = build_target_weights(strategy, alpha, returns, members=members, params=params).weights
        return run_backtest(in_span, weights).daily

    chosen = StrategyParams()
    topk, book = chosen.topk, chosen.long_short
    equal = backtest(EQUAL, chosen)
    runs = {
        "default: " + search.topk_name(chosen.alpha, topk.k, topk.n_drop, topk.buffer, topk.every): backtest(TOPK_DROPOUT, chosen),
        "default: " + search.long_short_name(chosen.alpha, book.fraction, book.every): backtest(LONG_SHORT, chosen),
        **{f"default: {name} on {chosen.alpha}": backtest(name, chosen) for name in (QP, TOP_N)},
        **{search.topk_name(column, *variant): backtest(TOPK_DROPOUT, search.topk_params(column, *variant))
           for column, variants in search.TOPK_TRIED.items() for variant in variants},
        **{search.long_short_name(column, *variant): backtest(LONG_SHORT, search.long_short_params(column, *variant))
           for column, variants in search.LONG_SHORT_TRIED.items() for variant in variants},
        **{f"{name} on {column}": backtest(name, StrategyParams(alpha=column))
           for column, names in search.DEFAULT_BOOKS_TRIED.items() for name in names},
    }
    comparison = versus_equal_weight({EQUAL: equal, **runs})
    periods = periods_per_year(equal[c.DATE])

    def sharpe(x: np.ndarray) -> float:
        return float(x.mean() / x.std(ddof=1) * np.sqrt(periods))

    print(f"equal weight: net Sharpe {sharpe(equal['net_return'].to_numpy()):+.2f} over {equal.height} days")
    print(f"{'configuration':66s} {'net':>6s} {'gross':>6s} {'turnover/yr':>11s}  Sharpe - equal weight [95 %]")
    for name, daily in runs.items():
        row = comparison.filter(pl.col("strategy") == name).row(0, named=True)
        print(f"{name:66s} {sharpe(daily['net_return'].to_numpy()):+6.2f} {sharpe(daily['gross_return'].to_numpy()):+6.2f} "
              f"{daily['turnover'].mean() * periods:11.1f}  {row[DIFFERENCE]:+.2f} [{row[LOW]:+.2f}, {row[HIGH]:+.2f}]")


if __name__ == "__main__":
    main()
