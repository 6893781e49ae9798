"""How the core research pipeline's cost grows with the number of instruments.

For each size N, a synthetic universe `scale_<N>` (the default market's parameters, N instruments, bars
from 2005-01 to the last month given) runs the core research steps end to end on a fresh instance, each
step as its own `dagster asset materialize` process, in the order of `scripts/run_main.sh`'s graph:

    universe -> bars and labels -> FFD diagnostic -> features and market state -> regimes -> CV folds
    -> out-of-fold base models (one process per partition, --jobs at a time) -> stack, scorecard,
    meta-labels, live alpha, barrier classifier -> every strategy's weights and backtest (one process per
    partition, --jobs at a time) -> metrics and report -> the desk (today's targets, orders, ledger, track record)

Per step: wall seconds, CPU seconds (user + system of its processes, from wait4) and the peak RSS of its
largest process. Then, per step, the growth exponent b of cost ~ N^b fitted by least squares on
log cost over log N (wall and CPU), and a projection to --project instruments on one machine.

    .venv/bin/python benchmarks/scale.py --sizes 50,200,500               # the run in docs/measurements.md
    .venv/bin/python benchmarks/scale.py --sizes 8,16 --last 2008-12-01   # smoke run (minutes)

Results are printed and written to benchmarks/results/scale.json (or --output). The step processes pay
Dagster's start-up and the definitions' import each time, as a user's shell steps do; that overhead is
the part of a step's cost that does not grow with N.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from harness import git_commit

REPO = Path(__file__).resolve().parent.parent
FIRST_MONTH = "2005-01-01"
LAST_MONTH = "2024-12-01"  # 20 years of bars from the default market's first month


@dataclass(frozen=True)
class ProcessCost:
    wall_s: float
    cpu_s: float
    peak_rss_mib: float


@dataclass(frozen=True)
class StepCost:
    step: str
    processes: int
    wall_s: float
    cpu_s: float
    peak_rss_mib: float


def universe_yaml(name: str, n_instruments: int) -> str:
    return (
        f"name: {name}\nsource: synthetic\n"
        f"description: The default synthetic market with {n_instruments} instruments (scale benchmark).\n"
        "splits: {train_end: 2014-12-31, validation_end: 2018-12-31}\nbenchmark: null\nclose_is_adjusted: true\n"
        f"synthetic:\n  seed: 42\n  n_instruments: {n_instruments}\n  start: 2005-01-03\n"
    )


def _run(args: Sequence[str], env: dict[str, str], log: Path) -> ProcessCost:
    """One process, its wall time, CPU time and peak RSS (wait4 gives this child's own rusage)."""
    start = time.perf_counter()
    with log.open("w") as out:
        process = subprocess.Popen(list(args), env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-40:])
        raise RuntimeError(f"{' '.join(args)} exited {process.returncode}; log {log}:\n{tail}")
    return ProcessCost(time.perf_counter() - start, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def _materialize(selection: str, partition: str, *, ranged: bool = False) -> list[str]:
    dagster = str(Path(sys.executable).with_name("dagster"))
    return [dagster, "asset", "materialize", "-m", "quantlab_assets.definitions", "--select", selection,
            "--partition-range" if ranged else "--partition", partition]


def _step(name: str, commands: list[list[str]], env: dict[str, str], logs: Path, jobs: int) -> StepCost:
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        costs = list(pool.map(lambda item: _run(item[1], env, logs / f"{name}_{item[0]}.log"), enumerate(commands)))
    return StepCost(name, len(commands), time.perf_counter() - start, sum(c.cpu_s for c in costs),
                    max(c.peak_rss_mib for c in costs))


def run_size(n_instruments: int, first: str, last: str, jobs: int, work: Path) -> list[StepCost]:
    """The core research steps on a fresh instance and data directory for one universe size."""
    from quantlab_assets.compute.portfolio.names import STRATEGY_NAMES
    from quantlab_assets.defs.partitions import model_horizon_partitions

    name = f"scale_{n_instruments}"
    home, universes, logs = work / name / "home", work / name / "universes", work / name / "logs"
    for folder in (home, universes, logs):
        folder.mkdir(parents=True)
    (universes / f"{name}.yaml").write_text(universe_yaml(name, n_instruments))
    # The lab's instance configuration, as a user's: its pooled event log makes a step over 240 months
    # store its events three times faster than Dagster's stock SQLite storage.
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    env = {**os.environ, "DAGSTER_HOME": str(home), "QUANTLAB_UNIVERSE_DIR": str(universes),
           "QUANTLAB_AS_OF": last[:8] + "28", "PYTHONWARNINGS": "ignore"}  # MLflow: the lab's default store
    env.pop("MLFLOW_TRACKING_URI", None)
    months = f"{first}|{name}...{last}|{name}"
    slowest_first = sorted(model_horizon_partitions.get_partition_keys(), key=lambda k: ("ridge" in k, k))
    plan = [
        ("universe", [_materialize("universe", name)]),
        ("bars_and_labels", [_materialize("raw_ohlcv,cleaned_bars,rejected_bars,labels", months, ranged=True)]),
        ("ffd_diagnostic", [_materialize("ffd_orders", name)]),
        ("features_and_market_state", [_materialize("features,market_state", months, ranged=True)]),
        ("regimes", [_materialize("regime_hmm,regime_hmm_params,regime_clusters,regime_labels", name)]),
        ("cv_folds", [_materialize("cv_folds", name)]),
        ("out_of_fold_models", [_materialize("oof_predictions,base_model_fits", f"{key}|{name}")
                                for key in slowest_first]),
        ("stack_and_live_alpha", [_materialize(
            "stacked_alpha,model_scorecard,meta_labels,live_alpha,barrier_probabilities", name)]),
        ("strategies_and_backtests", [_materialize("target_weights,backtest,backtest_positions,backtest_trades",
                                                   f"{strategy}|{name}") for strategy in STRATEGY_NAMES]),
        ("metrics_and_report", [_materialize("backtest_metrics,backtest_report", name)]),
        ("desk", [_materialize("target_portfolio,orders,decision_ledger,live_track_record", name)]),
    ]
    costs = []
    for step, commands in plan:
        costs.append(_step(step, commands, env, logs, jobs))
        print(f"  N={n_instruments:>4}  {step:<26} {costs[-1].wall_s:8.1f} s wall {costs[-1].cpu_s:8.1f} s CPU "
              f"{costs[-1].peak_rss_mib:8.0f} MiB", flush=True)
    return costs


def growth_exponent(sizes: Sequence[int], costs: Sequence[float]) -> float | None:
    """b of cost ~ a N^b, least squares on the logs; None with fewer than two sizes or a zero cost."""
    if len(sizes) < 2 or min(costs) <= 0:
        return None
    return float(np.polyfit(np.log(sizes), np.log(costs), 1)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="50,200,500", help="instrument counts, comma-separated")
    parser.add_argument("--first", default=FIRST_MONTH)
    parser.add_argument("--last", default=LAST_MONTH)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="partitions at once")
    parser.add_argument("--project", type=int, default=3000, help="instruments to project the cost to")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "scale.json")
    args = parser.parse_args()
    sizes = sorted(int(size) for size in args.sizes.split(","))
    load_before = os.getloadavg()

    by_size: dict[int, list[StepCost]] = {}
    with tempfile.TemporaryDirectory(prefix="quantlab_scale_") as work:
        for size in sizes:
            print(f"== {size} instruments, {args.first[:7]} .. {args.last[:7]}", flush=True)
            by_size[size] = run_size(size, args.first, args.last, args.jobs, Path(work))

    steps = [cost.step for cost in by_size[sizes[0]]]
    rows = []
    for index, step in enumerate(steps):
        walls = [by_size[size][index].wall_s for size in sizes]
        cpus = [by_size[size][index].cpu_s for size in sizes]
        wall_b, cpu_b = growth_exponent(sizes, walls), growth_exponent(sizes, cpus)
        rows.append({"step": step, "wall_s": dict(zip(sizes, walls)), "cpu_s": dict(zip(sizes, cpus)),
                     "peak_rss_mib": {size: by_size[size][index].peak_rss_mib for size in sizes},
                     "wall_exponent": wall_b, "cpu_exponent": cpu_b,
                     "projected_cpu_s": cpus[-1] * (args.project / sizes[-1]) ** cpu_b if cpu_b is not None else None})
    totals = {size: {"wall_s": sum(c.wall_s for c in by_size[size]), "cpu_s": sum(c.cpu_s for c in by_size[size]),
                     "peak_rss_mib": max(c.peak_rss_mib for c in by_size[size])} for size in sizes}

    header = " | ".join(f"N={size} wall / CPU s / peak MiB" for size in sizes)
    print(f"\n| step | {header} | exponent wall / CPU | CPU s at N={args.project} |")
    print("|---|" + "---:|" * (len(sizes) + 2))
    for row in rows:
        cells = " | ".join(f"{row['wall_s'][s]:.1f} / {row['cpu_s'][s]:.1f} / {row['peak_rss_mib'][s]:.0f}" for s in sizes)
        exps = " / ".join("n/a" if b is None else f"{b:.2f}" for b in (row["wall_exponent"], row["cpu_exponent"]))
        projected = "n/a" if row["projected_cpu_s"] is None else f"{row['projected_cpu_s']:.0f}"
        print(f"| {row['step']} | {cells} | {exps} | {projected} |")
    total_cells = " | ".join(f"{totals[s]['wall_s']:.1f} / {totals[s]['cpu_s']:.1f} / {totals[s]['peak_rss_mib']:.0f}"
                             for s in sizes)
    print(f"| **total** | {total_cells} | | |")

    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "commit": git_commit(), "cpus": os.cpu_count(), "load_before": load_before, "load_after": os.getloadavg(), "jobs": args.jobs,
        "months": [args.first, args.last], "steps": rows, "totals": totals,
        "by_size": {size: [asdict(cost) for cost in costs] for size, costs in by_size.items()},
    }, indent=2, default=str))
    print(f"\nwritten to {args.output}")


if __name__ == "__main__":
    main()
