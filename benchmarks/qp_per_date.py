"""Benchmark: the QP per rebalance date at 100 / 250 / 500 assets, warm-started against cold and against the
previous solver (one cvxpy problem over every name, compiled once with parameters, solved by CLARABEL).

Run from the repository root:

    .venv/bin/python benchmarks/qp_per_date.py [--assets 100 250 500] [--dates 60] [--reference-dates 8]

One process, one seeded market per size: 252 + `--dates` days of daily returns from a market factor, ten
sector factors and idiosyncratic noise (about 2 % daily volatility), and a stacked alpha in bp over 21 days
(cross-sectional spread 40 bp, an AR(1) with daily persistence 0.95) turned into the QP's daily decimal
return by `alpha_to_daily_return`, as the strategies do. Every day is a decision date (the hardest case for
a warm start is fewer, farther apart dates; daily is what the per-date target is about).

Per date, with the production parameters (QpParams(): 20 % cap, 2 % minimum, 20 bp per unit of turnover):
- covariance: `shrunk_covariance` on the trailing 252 days, and scikit-learn's `LedoitWolf` (the previous
  path) on the same window, for the first `--reference-dates` dates;
- warm: one QpOptimiser over the consecutive dates, each solve starting from the previous date's solution
  (the production path in `qp_weights`);
- cold: the same problem (same previous holdings) after `cold_start()`: the reference measured in this run;
- previous solver: the full problem in cvxpy (CLARABEL), compiled once, on the first `--reference-dates`
  dates without the minimum position (one solve per date, which flatters it: with the minimum it solved
  about twice per date), the largest weight difference to the working-set solution of that problem and
  the objective gained by the working set (it must not be negative); `--reference-dates 0` leaves it out
  (needed at large sizes: cvxpy's dense coefficient matrix for it has (2N+1) x (N+1)^2 entries, 15 GiB at
  1,000 assets and 403 GiB at 3,000; e.g. `--assets 3000 --dates 20 --reference-dates 0`).
Everything runs on one BLAS thread, as `qp_weights` does.

The machine's load average is printed with the results (this machine is shared: state it with any figure),
and the process's CPU time per date next to the wall time: on one thread, about the wall time of an idle machine.
Results are printed and written to benchmarks/results/qp_per_date.json (or `--output`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import time
from pathlib import Path

import cvxpy as cp
import numpy as np
import polars as pl
from sklearn.covariance import LedoitWolf
from threadpoolctl import threadpool_limits

from quantlab_assets.compute.portfolio.qp import QpOptimiser, QpParams, alpha_to_daily_return, shrunk_covariance

from harness import git_commit

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "qp_per_date.json"
WINDOW = 252
HORIZON_DAYS = 21
ALPHA_SPREAD_BP = 40.0
ALPHA_PERSISTENCE = 0.95


def make_market(n_assets: int, n_dates: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(returns (WINDOW + n_dates, N), expected daily returns (n_dates, N)) of a factor market with AR(1) alphas."""
    rng = np.random.default_rng(seed)
    days = WINDOW + n_dates
    sector = rng.integers(0, 10, n_assets)
    market = rng.normal(3e-4, 0.011, (days, 1)) * rng.uniform(0.6, 1.4, n_assets)
    sectors = rng.normal(0, 0.007, (days, 10))[:, sector]
    returns = market + sectors + rng.normal(0, 0.015, (days, n_assets))
    alpha_bp = np.empty((n_dates, n_assets))
    alpha_bp[0] = rng.normal(0, ALPHA_SPREAD_BP, n_assets)
    for k in range(1, n_dates):
        alpha_bp[k] = ALPHA_PERSISTENCE * alpha_bp[k - 1] + np.sqrt(1 - ALPHA_PERSISTENCE ** 2) * rng.normal(
            0, ALPHA_SPREAD_BP, n_assets)
    expected = pl.DataFrame({"alpha": alpha_bp.ravel()}).select(alpha_to_daily_return(pl.col("alpha"), HORIZON_DAYS))
    return returns, expected.to_series().to_numpy().reshape(n_dates, n_assets)


class PreviousSolver:
    """The full problem over every name as the lab solved it before: cvxpy parameters (alpha, previous
    holdings, Cholesky factor of the covariance), compiled once, CLARABEL."""

    def __init__(self, n_assets: int, params: QpParams) -> None:
        self.expected, self.previous = cp.Parameter(n_assets), cp.Parameter(n_assets, nonneg=True)
        self.factor = cp.Parameter((n_assets, n_assets))
        self.w = cp.Variable(n_assets, nonneg=True)
        objective = (params.alpha_scale * params.holding_days * self.expected @ self.w
                     - params.risk_aversion * params.holding_days * cp.sum_squares(self.factor @ self.w)
                     - params.turnover_cost * cp.norm1(self.w - self.previous))
        self.problem = cp.Problem(cp.Maximize(objective), [cp.sum(self.w) == 1, self.w <= params.max_position])

    def solve(self, expected: np.ndarray, covariance: np.ndarray, previous: np.ndarray) -> np.ndarray:
        self.expected.value, self.previous.value = expected, previous
        self.factor.value = np.linalg.cholesky(covariance + 1e-12 * np.eye(len(expected))).T
        self.problem.solve(solver="CLARABEL")
        return self.w.value


def _ms(seconds: list[float]) -> dict:
    ordered = sorted(seconds)
    return {"median_ms": 1e3 * statistics.median(ordered), "p90_ms": 1e3 * ordered[int(0.9 * (len(ordered) - 1))],
            "max_ms": 1e3 * ordered[-1]}


def benchmark_size(n_assets: int, n_dates: int, reference_dates: int, seed: int) -> dict:
    returns, expected = make_market(n_assets, n_dates, seed)
    params = QpParams()
    everyone = np.ones(n_assets, dtype=bool)
    warm, cold = QpOptimiser(n_assets, params), QpOptimiser(n_assets, params)
    previous = np.zeros(n_assets)
    covariance_s, warm_s, cold_s, total_s, total_cpu_s = [], [], [], [], []
    rounds, cold_rounds, passes, differences = [], [], [], []
    statuses = set()
    for k in range(n_dates):
        started, started_cpu = time.perf_counter(), time.process_time()
        covariance = shrunk_covariance(returns[k:k + WINDOW])
        covariance_s.append(time.perf_counter() - started)
        solution = warm.solve(expected[k], covariance, previous, everyone)
        total_s.append(time.perf_counter() - started)
        total_cpu_s.append(time.process_time() - started_cpu)
        cold.cold_start()
        from_scratch = cold.solve(expected[k], covariance, previous, everyone)
        warm_s.append(solution.seconds)
        cold_s.append(from_scratch.seconds)
        rounds.append(solution.rounds)
        cold_rounds.append(from_scratch.rounds)
        passes.append(solution.passes)
        statuses.update({solution.status, from_scratch.status})
        differences.append(float(np.abs(solution.weights - from_scratch.weights).max()))
        if solution.status == "optimal":
            previous = solution.weights
    # `--reference-dates 0` skips the previous solver, whose problem cvxpy cannot build at 3,000 names.
    reference = (benchmark_previous_solver(returns, expected, min(reference_dates, n_dates), params)
                 if reference_dates else None)
    return {
        "assets": n_assets, "dates": n_dates, "statuses": sorted(statuses),
        "per_date_covariance_plus_warm_solve": _ms(total_s),
        # CPU time of this process (one thread): about the wall time on an idle machine.
        "per_date_cpu": _ms(total_cpu_s), "covariance": _ms(covariance_s),
        "warm_solve": _ms(warm_s), "cold_solve": _ms(cold_s),
        "median_rounds_warm": statistics.median(rounds), "median_rounds_cold": statistics.median(cold_rounds),
        "median_passes": statistics.median(passes), "max_weight_difference_warm_vs_cold": max(differences),
        "previous_solver": reference,
    }


def benchmark_previous_solver(returns: np.ndarray, expected: np.ndarray, n_dates: int, params: QpParams) -> dict:
    """The previous path (scikit-learn covariance, full cvxpy problem) against the working set, without the
    minimum position so that both solve the same single problem."""
    n_assets = expected.shape[1]
    single = dataclasses.replace(params, min_position=0.0)
    previous_solver, working_set = PreviousSolver(n_assets, single), QpOptimiser(n_assets, single)
    previous = np.zeros(n_assets)
    sklearn_s, solve_s, working_s, differences, gains = [], [], [], [], []
    for k in range(n_dates):
        started = time.perf_counter()
        covariance = LedoitWolf().fit(returns[k:k + WINDOW]).covariance_
        sklearn_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        weights = previous_solver.solve(expected[k], covariance, previous)
        solve_s.append(time.perf_counter() - started)
        solution = working_set.solve(expected[k], covariance, previous, np.ones(n_assets, dtype=bool))
        working_s.append(solution.seconds)
        differences.append(float(np.abs(solution.weights - weights).max()))
        gains.append(solution.objective - working_set.objective(weights, expected[k], covariance, previous))
        previous = solution.weights
    return {"dates": n_dates, "first_solve_ms_including_compile": 1e3 * solve_s[0],
            "solve_after_first": _ms(solve_s[1:]) if n_dates > 1 else None, "sklearn_ledoit_wolf": _ms(sklearn_s),
            "working_set_same_problem": _ms(working_s), "max_weight_difference": max(differences),
            # Objective (return over the holding period) of the working set's solution less the previous
            # solver's: >= 0 up to rounding when the working set is at least as close to the optimum.
            "min_objective_gain": min(gains)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, nargs="+", default=[100, 250, 500])
    parser.add_argument("--dates", type=int, default=60)
    parser.add_argument("--reference-dates", type=int, default=8)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    args = parser.parse_args()
    load_before = os.getloadavg()
    with threadpool_limits(limits=1):  # as qp_weights runs (one BLAS thread); the previous solver too
        sizes = [benchmark_size(n, args.dates, args.reference_dates, args.seed) for n in args.assets]
    results = {"commit": git_commit(), "python": platform.python_version(), "cpus": os.cpu_count(),
               "load_average_1_5_15_before": load_before, "load_average_1_5_15_after": os.getloadavg(),
               "sizes": sizes}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, default=str))
    print(json.dumps(results, indent=2, default=str))
    print(f"\nload average before {load_before[0]:.1f}, after {results['load_average_1_5_15_after'][0]:.1f} "
          f"on {os.cpu_count()} CPUs; ms per date, median (p90)")
    print("| assets | covariance + warm solve | its CPU time | covariance | warm solve | cold solve | rounds warm / cold "
          "| previous: sklearn covariance | previous: cvxpy solve | max |dw| vs previous |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in sizes:
        ref = size["previous_solver"] or {"sklearn_ledoit_wolf": None, "solve_after_first": None}
        cell = lambda entry: f"{entry['median_ms']:.1f} ({entry['p90_ms']:.1f})" if entry else "-"  # noqa: E731
        difference = f"{ref['max_weight_difference']:.1e}" if "max_weight_difference" in ref else "-"
        print(f"| {size['assets']} | {cell(size['per_date_covariance_plus_warm_solve'])} | {cell(size['per_date_cpu'])} "
              f"| {cell(size['covariance'])} "
              f"| {cell(size['warm_solve'])} | {cell(size['cold_solve'])} | {size['median_rounds_warm']:g} / "
              f"{size['median_rounds_cold']:g} | {cell(ref['sklearn_ledoit_wolf'])} | "
              f"{cell(ref['solve_after_first'])} | {difference} |")
    # The previous solver ran at CLARABEL's default tolerances (weights within ~1e-4 of the optimum, whose
    # objective is flat there): agreement is judged on the objective, which must not be worse than its.
    bad = [s["assets"] for s in sizes if s["statuses"] != ["optimal"] or s["max_weight_difference_warm_vs_cold"] > 1e-6
           or (s["previous_solver"] is not None and s["previous_solver"]["min_objective_gain"] < -1e-10)]
    if bad:
        raise SystemExit(f"not every date solved, or warm / cold / previous solutions disagree, at {bad} assets")


if __name__ == "__main__":
    main()
