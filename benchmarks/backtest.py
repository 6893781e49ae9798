"""Benchmark: the lab's vectorised backtest engine against vectorbt, and the QP optimiser per rebalance date.

Run from the repository root (vectorbt is the optional `bench` extra: `pip install -e '.[bench]'`):

    .venv/bin/python benchmarks/backtest.py [--instruments 500] [--days 5000] [--top 50] [--repeats 5] [--qp-dates 10]

One process, one seeded panel: daily simple returns (normal, 2 % daily volatility, a small drift) and a
random score per (day, instrument); the target is the top `--top` names by score at equal weight,
decided at every close and traded one bar later (delay 1), rebalanced daily. Both engines get the same
(T, N) arrays (scores follow an AR(1) so turnover is that of a persistent forecast, not of fresh noise):

- engine: `simulate(returns, targets, execution_bars, cost_rate)` (compute/backtest/engine.py), the
  asset's hot path, on the wide arrays;
- vectorbt: `Portfolio.from_orders(close, size=targets at their execution bars, size_type="targetpercent",
  group_by=True, cash_sharing=True, call_seq="auto", fees=cost_rate)` with close = 100 * cumprod(1 + r) and 1e9 of
  initial cash (vectorbt drops orders below an absolute share tolerance; see VBT_INIT_CASH).

Timed: the median of `--repeats` calls each, after warm-up calls on a 50-day slice (vectorbt's numba
kernels compile on first use; the warm-up time is reported separately). Agreement: final equity relative to the start,
without fees (must agree to 1e-9 relative) and with 20 bp of fees (they differ by design: see
`WITH_FEES_NOTE`). Also timed: the long -> wide pivot of `run_backtest` (polars) from long frames, and
the QP (500 assets, Ledoit-Wolf covariance of 252 days) per rebalance date, compile excluded and included.

Results are printed and written to benchmarks/results/backtest.json (or `--output`).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.backtest.engine import RETURN, SIGNAL_DATE, WEIGHT, CostParams, run_backtest, simulate
from quantlab_assets.compute.portfolio.qp import QpOptimiser, QpParams, shrunk_covariance

from harness import git_commit

# vectorbt treats share counts below an absolute tolerance as zero and skips such orders: with 1.0 of
# cash and prices near 100 a small daily re-weighting is ~1e-8 shares and is dropped (measured: 7.5e-9
# relative equity jumps at the skipped bars). A large notional keeps every order above it.
VBT_INIT_CASH = 1e9
SCORE_PERSISTENCE = 0.98
RESULTS_PATH = Path(__file__).resolve().parent / "results" / "backtest.json"
WITH_FEES_NOTE = (
    "vectorbt pays fees in cash at each order, so with cash sharing the last buys of a rebalance are sized "
    "from cash that fees have already reduced and the book is slightly under-invested; the lab's engine "
    "scales the whole portfolio by (1 - cost_rate x turnover) and then holds the targets exactly."
)


def make_panel(n_instruments: int, n_days: int, top: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """(T, N) returns and (T, N) equal-weight top-`top` targets decided at each close."""
    rng = np.random.default_rng(seed)
    returns = rng.normal(2e-4, 0.02, (n_days, n_instruments))
    # Persistent scores (AR(1), rho = SCORE_PERSISTENCE) as a forecast would be: daily turnover near 0.3
    # instead of the 1.8 of fresh random ranks, which no one would trade with costs on.
    shocks = rng.normal(0.0, 1.0, (n_days, n_instruments))
    scores = np.empty_like(shocks)
    scores[0] = shocks[0]
    for t in range(1, n_days):  # panel set-up, not the engine
        scores[t] = SCORE_PERSISTENCE * scores[t - 1] + np.sqrt(1 - SCORE_PERSISTENCE**2) * shocks[t]
    chosen = np.argpartition(-scores, top, axis=1)[:, :top]
    targets = np.zeros((n_days, n_instruments))
    np.put_along_axis(targets, chosen, 1.0 / top, axis=1)
    return returns, targets


def _median_seconds(call, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = call()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def run_engine(returns: np.ndarray, targets: np.ndarray, cost_rate: float) -> float:
    """Final equity / initial of the lab's engine with a one-bar delay."""
    execution_bars = np.arange(1, returns.shape[0])
    out = simulate(returns, targets[:-1], execution_bars, cost_rate)
    return float(np.prod(1.0 + out.net_return))


def run_vectorbt(vbt, close, orders, cost_rate: float) -> float:
    portfolio = vbt.Portfolio.from_orders(
        close, size=orders, size_type="targetpercent", group_by=True, cash_sharing=True, call_seq="auto",
        fees=cost_rate, init_cash=VBT_INIT_CASH, freq="1D",
    )
    return float(np.asarray(portfolio.value()).ravel()[-1]) / VBT_INIT_CASH


def benchmark_engines(returns: np.ndarray, targets: np.ndarray, repeats: int, cost_rate: float) -> dict:
    import pandas as pd
    import vectorbt as vbt

    close = pd.DataFrame(100.0 * np.cumprod(1.0 + returns, axis=0))
    orders = np.full_like(targets, np.nan)
    orders[1:] = targets[:-1]  # decided at t, ordered at the close of t + 1
    orders = pd.DataFrame(orders)
    result: dict = {"vectorbt_version": vbt.__version__}
    start = time.perf_counter()
    for rate in (0.0, cost_rate):  # compile every numba specialisation the timed calls use
        run_vectorbt(vbt, close.iloc[:50], orders.iloc[:50], rate)
    result["vectorbt_warm_up_s"] = time.perf_counter() - start
    for label, rate in (("no_fees", 0.0), ("fees", cost_rate)):
        engine_s, engine_equity = _median_seconds(lambda: run_engine(returns, targets, rate), repeats)
        vbt_s, vbt_equity = _median_seconds(lambda: run_vectorbt(vbt, close, orders, rate), repeats)
        result[label] = {
            "engine_s": engine_s, "vectorbt_s": vbt_s, "speedup": vbt_s / engine_s,
            "engine_final_equity": engine_equity, "vectorbt_final_equity": vbt_equity,
            "relative_difference": abs(engine_equity - vbt_equity) / abs(vbt_equity),
        }
    result["fees"]["note"] = WITH_FEES_NOTE
    return result


def benchmark_long_frames(returns: np.ndarray, targets: np.ndarray, repeats: int) -> dict:
    """run_backtest from long frames (pivot to wide included), the path the asset takes."""
    n_days, n_instruments = returns.shape
    dates = pl.date_range(pl.date(2005, 1, 3), pl.date(2005, 1, 3) + pl.duration(days=n_days - 1), eager=True)
    tickers = [f"I{i:04d}" for i in range(n_instruments)]
    day = np.repeat(np.arange(n_days), n_instruments)
    asset = np.tile(np.arange(n_instruments), n_days)
    long_returns = pl.DataFrame({c.DATE: dates.gather(day), c.TICKER: pl.Series(tickers).gather(asset),
                                 RETURN: returns.ravel()})
    held = np.nonzero(targets)
    long_weights = pl.DataFrame({c.DATE: dates.gather(held[0]), c.TICKER: pl.Series(tickers).gather(held[1]),
                                 WEIGHT: targets[held]}).with_columns(pl.col(c.DATE).alias(SIGNAL_DATE))
    seconds, result = _median_seconds(lambda: run_backtest(long_returns, long_weights), repeats)
    return {"run_backtest_s": seconds, "final_equity": float(result.daily["equity"][-1]),
            "engine_only_equity_check": run_engine(returns, targets, CostParams().rate)}


def benchmark_qp(n_assets: int, n_dates: int, seed: int = 3) -> dict:
    rng = np.random.default_rng(seed)
    returns = rng.normal(2e-4, 0.02, (252 + n_dates, n_assets))
    optimiser = QpOptimiser(n_assets, QpParams())
    previous = np.zeros(n_assets)
    seconds, statuses, passes, covariance_s = [], [], [], []
    for k in range(n_dates):
        start = time.perf_counter()
        covariance = shrunk_covariance(returns[k:k + 252])
        covariance_s.append(time.perf_counter() - start)
        solution = optimiser.solve(rng.normal(0, 5e-4, n_assets), covariance, previous, np.ones(n_assets, dtype=bool))
        seconds.append(solution.seconds)
        statuses.append(solution.status)
        passes.append(solution.passes)
        if solution.status == "optimal":
            previous = solution.weights
    return {
        "assets": n_assets, "dates": n_dates, "first_solve_s_including_compile": seconds[0],
        "median_solve_s_after_first": statistics.median(seconds[1:]) if n_dates > 1 else None,
        "median_covariance_s": statistics.median(covariance_s), "statuses": sorted(set(statuses)),
        "median_passes": statistics.median(passes),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instruments", type=int, default=500)
    parser.add_argument("--days", type=int, default=5000)
    parser.add_argument("--top", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--qp-dates", type=int, default=10)
    parser.add_argument("--qp-assets", type=int, default=500)
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    args = parser.parse_args()

    returns, targets = make_panel(args.instruments, args.days, args.top)
    cost_rate = CostParams().rate
    results = {
        "commit": git_commit(), "python": platform.python_version(), "instruments": args.instruments,
        "days": args.days, "top": args.top, "repeats": args.repeats, "cost_rate": cost_rate,
        "engines": benchmark_engines(returns, targets, args.repeats, cost_rate),
        "long_frames": benchmark_long_frames(returns, targets, max(1, args.repeats // 2)),
        "qp": benchmark_qp(args.qp_assets, args.qp_dates),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, default=str))
    print(json.dumps(results, indent=2, default=str))
    no_fees = results["engines"]["no_fees"]
    if no_fees["relative_difference"] > 1e-9:
        raise SystemExit(f"final equity without fees differs by {no_fees['relative_difference']:.3e} relative (> 1e-9)")


if __name__ == "__main__":
    main()
