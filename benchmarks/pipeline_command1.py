"""Command 1's pipeline (the `core_research` selection), timed step by step, each route on a fresh instance.

- backfill (today's command 1): `python -m quantlab_assets.pipeline core_research ...`, one asset backfill.
  Per run of the backfill: its assets and partitions, the seconds from the backfill's submission to the run's
  creation (when its parents were stored and the backfill requested it) and to its start, and its own wall
  time (process start-up and the definitions' import are before its start).
- previous (with --previous): the earlier command 1, one `dagster asset materialize` process per step in
  sequence, the six base models and the strategies as many at once as there are cores, over the same assets
  as the backfill. Per step: its wall time, process start-up included.

Both run in the same invocation so they share the machine's load (printed, with the load averages at the
start and the end: a shared machine's figures say how loaded it was).

    .venv/bin/python benchmarks/pipeline_command1.py --previous                    # default universe, both routes
    .venv/bin/python benchmarks/pipeline_command1.py --as-of 2008-06-30 --last 2008-06-01 --output /tmp/smoke.json
    .venv/bin/python benchmarks/pipeline_command1.py --instruments 500 --max-concurrent-runs 2 \
        --last 2024-12-01 --as-of 2024-12-28                # 500 names x 20 years, as benchmarks/scale.py's

The backfill route also samples, every second, the resident memory of the backfill driver and every process it
starts (its code server and the run processes): the largest one process reached and the largest sum.

Results are printed and written to benchmarks/results/pipeline_command1.json (or `--output`).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from harness import git_commit
from scale import universe_yaml

from quantlab_assets.compute.portfolio.names import STRATEGY_NAMES

REPO_ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
MODELS = ["xgboost_63d", "xgboost_21d", "lightgbm_63d", "lightgbm_21d", "ridge_63d", "ridge_21d"]


def _fresh_home(root: Path, name: str, as_of: str, max_concurrent_runs: int | None) -> dict[str, str]:
    home = root / name / "dagster_home"
    home.mkdir(parents=True)
    config = (REPO_ROOT / "dagster.yaml").read_text()
    if max_concurrent_runs is not None:
        config = config.replace("max_concurrent_runs: 8", f"max_concurrent_runs: {max_concurrent_runs}", 1)
    (home / "dagster.yaml").write_text(config)
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONWARNINGS": "ignore",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    if as_of:
        env["QUANTLAB_AS_OF"] = as_of
    return env


class MemorySampler(threading.Thread):
    """Every `interval` seconds, the resident memory of process `root` and all its descendants (the backfill
    driver, its code server and the run processes that server launches): the largest one process reached
    (with its command line) and the largest sum over them."""

    def __init__(self, root: int, interval: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.root, self.interval, self.stopped = root, interval, threading.Event()
        self.peak_process_mib, self.peak_process, self.peak_total_mib = 0.0, "", 0.0

    @staticmethod
    def _parents() -> dict[int, int]:
        parents = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                # The command name in parentheses may hold spaces: the fields after its last ')' are fixed.
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # the process ended
            parents[int(stat.parent.name)] = int(fields[1])
        return parents

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            children: dict[int, list[int]] = {}
            for pid, parent in self._parents().items():
                children.setdefault(parent, []).append(pid)
            tree, total = [self.root], 0.0
            for pid in tree:
                tree.extend(children.get(pid, []))
                try:
                    rss_kib = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                                   if line.startswith("VmRSS:"))
                    command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                except (OSError, StopIteration):
                    continue  # the process ended
                total += rss_kib / 1024
                if rss_kib / 1024 > self.peak_process_mib:
                    self.peak_process_mib, self.peak_process = rss_kib / 1024, command[:200]
            self.peak_total_mib = max(self.peak_total_mib, total)


def backfill_route(env: dict[str, str], universe: str, first: str, last: str) -> dict[str, object]:
    began = time.monotonic()
    with open(Path(env["DAGSTER_HOME"]) / "pipeline.log", "w") as log:
        driver = subprocess.Popen(
            [sys.executable, "-m", "quantlab_assets.pipeline", "core_research", "--universe", universe, "--first", first,
             "--last", last], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
        sampler = MemorySampler(driver.pid)
        sampler.start()
        stdout, _ = driver.communicate()
    wall = time.monotonic() - began
    sampler.stopped.set()
    sampler.join()
    # The instance's record of the backfill's runs, read in a process with the same DAGSTER_HOME.
    runs = subprocess.run([sys.executable, "-c", _RUNS_OF_LAST_BACKFILL], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, check=True)
    return {"wall_s": wall, "exit_code": driver.returncode, "stdout_tail": stdout[-2000:],
            "runs": json.loads(runs.stdout.strip().splitlines()[-1]),
            "peak_process_mib": sampler.peak_process_mib, "peak_process": sampler.peak_process,
            "peak_total_mib": sampler.peak_total_mib}


_RUNS_OF_LAST_BACKFILL = """
import json, dagster as dg
from dagster._core.storage.dagster_run import RunsFilter
from dagster._core.storage.tags import BACKFILL_ID_TAG
with dg.DagsterInstance.get() as instance:
    backfill = instance.get_backfills()[0]
    records = instance.get_run_records(filters=RunsFilter(tags={BACKFILL_ID_TAG: backfill.backfill_id}))
    t0 = backfill.backfill_timestamp
    rows = [{"assets": ",".join(sorted(k.to_user_string() for k in r.dagster_run.asset_selection or ())),
             "partition": r.dagster_run.tags.get("dagster/partition", "range"),
             "status": r.dagster_run.status.value,
             "created_s": r.create_timestamp.timestamp() - t0,
             "started_s": r.start_time - t0 if r.start_time else None,
             "run_s": r.end_time - r.start_time if r.start_time and r.end_time else None} for r in records]
    print(json.dumps(sorted(rows, key=lambda row: row["created_s"])))
"""


def previous_route(env: dict[str, str], universe: str, first: str, last: str) -> dict[str, object]:
    """The earlier scripts/run_main.sh, step for step."""
    dagster = str(VENV_BIN / "dagster")
    jobs = os.cpu_count() or 1

    def materialize(select: str, *partition: str) -> float:
        began = time.monotonic()
        done = subprocess.run([dagster, "asset", "materialize", "-m", "quantlab_assets.definitions", "--select", select,
                               *partition], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"dagster asset materialize --select {select} {' '.join(partition)}: exit code "
                               f"{done.returncode}\n{done.stderr[-3000:]}")
        return time.monotonic() - began

    def each_at_once(select: str, keys: list[str]) -> float:
        began = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(lambda key: materialize(select, "--partition", f"{key}|{universe}"), keys))
        return time.monotonic() - began

    span = ("--partition-range", f"{first}|{universe}...{last}|{universe}")
    steps = [
        ("universe", lambda: materialize("universe", "--partition", universe)),
        ("bars and labels", lambda: materialize("raw_ohlcv,cleaned_bars,rejected_bars,labels", *span)),
        ("ffd_orders", lambda: materialize("ffd_orders", "--partition", universe)),
        ("features, market state", lambda: materialize("features,market_state", *span)),
        ("regimes", lambda: materialize("regime_hmm,regime_hmm_params,regime_clusters,regime_labels", "--partition", universe)),
        ("cv_folds", lambda: materialize("cv_folds", "--partition", universe)),
        # The out-of-fold predictions and the all-rows fits are one step (one multi-asset): select both.
        (f"oof x6 ({jobs} at once)", lambda: each_at_once("base_model_fits,oof_predictions", MODELS)),
        # The same assets as the backfill's stack run (the desk's decision and track record included).
        ("stack, live alpha, barrier, desk", lambda: materialize(
            "stacked_alpha,model_scorecard,meta_labels,live_alpha,barrier_probabilities,target_portfolio,orders,"
            "decision_ledger,live_track_record", "--partition", universe)),
        (f"backtests x{len(STRATEGY_NAMES)} ({jobs} at once)", lambda: each_at_once(
            "target_weights,backtest,backtest_positions,backtest_trades", list(STRATEGY_NAMES))),
        ("metrics, report", lambda: materialize("backtest_metrics,backtest_report", "--partition", universe)),
    ]
    began = time.monotonic()
    timed = [{"step": name, "wall_s": run()} for name, run in steps]
    return {"wall_s": time.monotonic() - began, "steps": timed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--universe", default="synthetic")
    parser.add_argument("--instruments", type=int, default=None,
                        help="run a synthetic universe scale_<N> of N names (the default market's parameters) instead")
    parser.add_argument("--max-concurrent-runs", type=int, default=None,
                        help="the instance's run limit (default: dagster.yaml's 8; docs/measurements.md: 2 at 500 names)")
    parser.add_argument("--first", default="2005-01-01")
    parser.add_argument("--last", default=dt.date.today().replace(day=1).isoformat())
    parser.add_argument("--as-of", default="", help="QUANTLAB_AS_OF for both routes (empty: today)")
    parser.add_argument("--previous", action="store_true", help="also time the previous one-process-per-step command 1")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "pipeline_command1.json")
    args = parser.parse_args()

    result: dict[str, object] = {"commit": git_commit(), "cores": os.cpu_count(), "load_before": os.getloadavg(),
                                 "universe": args.universe, "first": args.first, "last": args.last, "as_of": args.as_of}
    with tempfile.TemporaryDirectory(prefix="pipeline_command1_") as root:
        if args.instruments is not None:
            args.universe = f"scale_{args.instruments}"
            (Path(root) / "universes").mkdir()
            (Path(root) / "universes" / f"{args.universe}.yaml").write_text(universe_yaml(args.universe, args.instruments))
            os.environ["QUANTLAB_UNIVERSE_DIR"] = str(Path(root) / "universes")
            result["universe"] = args.universe
        result["backfill"] = backfill_route(_fresh_home(Path(root), "backfill", args.as_of, args.max_concurrent_runs),
                                            args.universe, args.first, args.last)
        if args.previous:
            result["previous"] = previous_route(_fresh_home(Path(root), "previous", args.as_of, args.max_concurrent_runs),
                                                args.universe, args.first, args.last)
    result["load_after"] = os.getloadavg()

    backfill = result["backfill"]
    print(f"commit {result['commit']}, {result['cores']} cores, load average before {result['load_before'][0]:.1f}, "
          f"after {result['load_after'][0]:.1f}")
    print(f"\nbackfill route: {backfill['wall_s']:.0f} s wall, exit code {backfill['exit_code']}; resident memory: "
          f"largest process {backfill['peak_process_mib']:,.0f} MiB, largest sum {backfill['peak_total_mib']:,.0f} MiB\n"
          f"  (largest process: {backfill['peak_process'][:160]})")
    print(f"{'run (assets)':60s} {'partition':>28s} {'created':>8s} {'started':>8s} {'run s':>6s}")
    for run in backfill["runs"]:
        started, took = (f"{run[k]:.0f}" if run[k] is not None else "-" for k in ("started_s", "run_s"))
        print(f"{run['assets'][:60]:60s} {run['partition'][-28:]:>28s} {run['created_s']:8.0f} {started:>8s} {took:>6s}"
              f"  {run['status']}")
    if "previous" in result:
        previous = result["previous"]
        print(f"\nprevious route (one process per step): {previous['wall_s']:.0f} s wall")
        for step in previous["steps"]:
            print(f"  {step['step']:40s} {step['wall_s']:6.0f} s")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
