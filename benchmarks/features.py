"""Benchmark: the lab's polars `compute_features` against a naive pandas reference, on a synthetic panel.

Run from the repository root:

    .venv/bin/python benchmarks/features.py [--instruments 500] [--days 5000] [--repeats 3] [--pandas-repeats N]

The panel is made once: `generate_synthetic_market` (n instruments, an end date giving exactly `--days`
business days from 2005-01-03) -> `as_raw_frame` -> `clean_bars`; the cleaned bars and the universe are
written to a temporary Parquet file. Then, every run in its own fresh process (see ingest_clean.py for why):

- features (polars): `compute_features(bars, universe)`, the asset's code as is (every registered feature);
- features (pandas, naive): `naive_pandas_features.compute_features_naive(bars, universe)`, a seed-style
  pandas port of the subset of features listed in that module.

Only the call is timed; loading the Parquet file is not. Peak memory is VmHWM after resetting it through
/proc/self/clear_refs once the input is loaded ("peak RSS above input"). The output frame's size is
`DataFrame.estimated_size()` (polars) and `memory_usage(deep=True)` (pandas). After the timed runs the
first run's outputs are compared on exactly the columns both compute: missing values (null or NaN) must
sit in identical positions and values must agree within 1e-9 relative to max(|value|, the column's standard
deviation); rolling z-scores beyond that are arbitrated against an exact two-pass computation
(`compare_outputs`); a mismatch fails the benchmark.

Results are printed and written to benchmarks/results/features.json (or `--output`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.cleaning import clean_bars
from quantlab_assets.compute.data.raw import as_raw_frame
from quantlab_assets.compute.data.synthetic import generate_synthetic_market, synthetic_tickers
from quantlab_assets.compute.features.compute import compute_features
from quantlab_assets.compute.features.preprocessing import ROLLING_Z_SUFFIX, ROLLING_Z_WINDOW

# Sibling modules: run as a script, this file's folder is first on sys.path.
from harness import git_commit, panel_params, peak_rss_mib, reset_peak_rss, rss_mib
from naive_pandas_features import compute_features_naive

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "features.json"
POLARS, PANDAS = "features-polars", "features-pandas"
STAGES = (POLARS, PANDAS)
MIB = 2**20
RELATIVE_TOLERANCE = 1e-9
# Pairs where one side is exactly 0 and the other within ZERO_RESIDUE of it count as equal (reported per
# column as `zero_vs_residue`): sqrt of a running variance's ~1e-18 residue, annualised, is ~3e-8.
ZERO_RESIDUE = 1e-7
# The feature pipeline's speed and memory targets.
TARGET_SPEEDUP = 15.0
TARGET_RSS_OVER_OUTPUT = 2.0


@dataclasses.dataclass(frozen=True)
class Measurement:
    """One run in its own process: seconds of the call, peak RSS above the loaded input, RSS the input
    added, the output frame's size, its rows and columns (date and ticker excluded)."""

    stage: str
    seconds: float
    peak_rss_mib: float
    input_rss_mib: float
    output_mib: float
    rows: int
    columns: int


# --- the panel ---------------------------------------------------------------------------------------


def make_panel(instruments: int, days: int, directory: Path) -> dict[str, Any]:
    """Generate, ingest and clean the synthetic panel; write bars.parquet and universe.parquet."""
    params = panel_params(instruments, days)
    started = time.perf_counter()
    market = generate_synthetic_market(params)
    raw = as_raw_frame(market.bars, source="synthetic", source_file=f"synthetic(seed={params.seed})")
    cleaned = clean_bars(
        raw, synthetic_tickers(params.n_instruments), window=(params.start, params.end), as_of=params.end
    ).cleaned
    cleaned.write_parquet(directory / "bars.parquet")
    market.universe.write_parquet(directory / "universe.parquet")
    return {
        "start": str(params.start),
        "end": str(params.end),
        "raw_rows": raw.height,
        "cleaned_rows": cleaned.height,
        "seconds": time.perf_counter() - started,
    }


# --- workers (each runs in its own process) ----------------------------------------------------------


def run_worker(stage: str, data_dir: Path, save_path: Path | None) -> Measurement:
    before_input = rss_mib()
    if stage == POLARS:
        bars, universe = pl.read_parquet(data_dir / "bars.parquet"), pl.read_parquet(data_dir / "universe.parquet")
    else:
        bars, universe = pd.read_parquet(data_dir / "bars.parquet"), pd.read_parquet(data_dir / "universe.parquet")
        bars[c.DATE] = pd.to_datetime(bars[c.DATE])  # pyarrow gives datetime.date objects
    baseline = reset_peak_rss()
    started = time.perf_counter()
    if stage == POLARS:
        frame = compute_features(bars, universe).frame
    else:
        frame = compute_features_naive(bars, universe)
    seconds = time.perf_counter() - started
    peak = peak_rss_mib() - baseline
    if isinstance(frame, pl.DataFrame):
        output_bytes = frame.estimated_size()
    else:
        output_bytes = int(frame.memory_usage(deep=True).sum())
    if save_path is not None:
        if isinstance(frame, pl.DataFrame):
            frame.write_parquet(save_path)
        else:
            frame.to_parquet(save_path, index=False)
    return Measurement(
        stage=stage,
        seconds=seconds,
        peak_rss_mib=peak,
        input_rss_mib=baseline - before_input,
        output_mib=output_bytes / MIB,
        rows=len(frame),
        columns=len(frame.columns) - 2,
    )


# --- equivalence -------------------------------------------------------------------------------------


def _exact_rolling_z(values: np.ndarray, end: int, window: int) -> float:
    """(x_end - mean) / std (ddof 1) of values[end - window + 1 .. end], two-pass with exactly rounded sums."""
    sample = values[end - window + 1 : end + 1]
    mean = math.fsum(sample) / window
    std = math.sqrt(math.fsum((sample - mean) ** 2) / (window - 1))
    return (values[end] - mean) / std


def _arbitrate_rolling_z(frame: pl.DataFrame, column: str, rows: np.ndarray) -> np.ndarray:
    """Exact `<raw>__rz` at the given row positions of `frame` (sorted by date, ticker), from the raw column."""
    raw = column.removesuffix(ROLLING_Z_SUFFIX)
    by_instrument = frame.select(c.TICKER, raw).with_row_index("row").sort(c.TICKER, "row")
    values = by_instrument[raw].cast(pl.Float64).to_numpy()
    position = np.empty(frame.height, dtype=np.int64)
    position[by_instrument["row"].to_numpy()] = np.arange(frame.height)
    return np.array([_exact_rolling_z(values, int(position[row]), ROLLING_Z_WINDOW) for row in rows])


def compare_outputs(polars_path: Path, pandas_path: Path) -> dict[str, Any]:
    """Compare both outputs on the columns both have; the result lists every mismatch.

    Missing = null or NaN (pandas has only NaN): positions must be identical. Values: |a - b| <=
    rtol * max(|a|, |b|, column scale), the scale being the column's standard deviation (polars side), so
    that values that are ~0 by cancellation (a price at its moving average, a z-score of ~0) are compared
    at the precision of the column's typical magnitude instead of their own rounding residue. Both the
    plain relative difference and the count beyond the plain rtol are reported too.

    Rolling z-scores (`__rz`) beyond tolerance are arbitrated: the exact value is recomputed with
    exactly rounded two-pass sums; a difference counts as the reference's error (`reference_error`) when
    polars is within tolerance of the exact value and pandas is not, otherwise as a mismatch.
    """
    left = pl.read_parquet(polars_path)
    right = pl.read_parquet(pandas_path).with_columns(pl.col(c.DATE).cast(pl.Date))
    common = [name for name in left.columns if name in right.columns and name not in (c.DATE, c.TICKER)]
    only_polars = [name for name in left.columns if name not in right.columns]
    mismatches: list[str] = []
    if left.height != right.height or not left.select(c.DATE, c.TICKER).equals(right.select(c.DATE, c.TICKER)):
        raise AssertionError("pandas and polars outputs have different (date, ticker) rows")
    per_column: dict[str, dict[str, Any]] = {}
    for name in common:
        a = left[name].cast(pl.Float64).fill_null(np.nan).to_numpy()
        b = right[name].cast(pl.Float64).fill_null(np.nan).to_numpy()
        missing_a, missing_b = np.isnan(a), np.isnan(b)
        missing_differs = int(np.count_nonzero(missing_a != missing_b))
        both = ~missing_a & ~missing_b
        x, y = a[both], b[both]
        column_scale = float(np.std(x)) if x.size else 0.0
        magnitude = np.maximum(np.abs(x), np.abs(y))
        diff = np.abs(x - y)
        relative = np.divide(diff, magnitude, out=np.zeros_like(diff), where=magnitude > 0)
        tolerance = RELATIVE_TOLERANCE * np.maximum(magnitude, column_scale)
        outside = diff > tolerance
        # Explicit, reported exception: one side exactly 0 (a window of forward-filled days, whose returns
        # are 0), the other the rounding residue of a running sum or variance, |x| <= ZERO_RESIDUE; see
        # benchmarks/README.md. Counted per column as `zero_vs_residue`.
        near_zero = outside & ((x == 0) | (y == 0)) & (magnitude <= ZERO_RESIDUE)
        suspects = np.flatnonzero(outside & ~near_zero)
        reference_error = 0
        if suspects.size and name.endswith(ROLLING_Z_SUFFIX):
            exact = _arbitrate_rolling_z(left, name, np.flatnonzero(both)[suspects])
            ours_exact = np.abs(x[suspects] - exact) <= tolerance[suspects]
            theirs_exact = np.abs(y[suspects] - exact) <= tolerance[suspects]
            reference_error = int(np.count_nonzero(ours_exact & ~theirs_exact))
            suspects = suspects[~(ours_exact & ~theirs_exact)]
        beyond = int(suspects.size)
        worst = int(np.argmax(relative)) if relative.size else 0
        per_column[name] = {
            "values": int(both.sum()),
            "missing": int(missing_a.sum()),
            "missing_positions_differ": missing_differs,
            "column_scale": column_scale,
            "max_relative_difference": float(relative.max()) if relative.size else 0.0,
            "beyond_plain_rtol": int(np.count_nonzero(relative > RELATIVE_TOLERANCE)),
            "max_abs_difference": float(diff.max()) if diff.size else 0.0,
            "beyond_tolerance": beyond,
            "zero_vs_residue": int(np.count_nonzero(near_zero)),
            "reference_error": reference_error,
            "worst_pair": [float(x[worst]), float(y[worst])] if relative.size else None,
        }
        if missing_differs or beyond:
            mismatches.append(f"{name}: {missing_differs} missing positions differ, {beyond} values beyond tolerance")
    return {
        "rows": left.height,
        "rtol": RELATIVE_TOLERANCE,
        "compared_columns": len(common),
        "polars_only_columns": only_polars,
        "columns": per_column,
        "mismatches": mismatches,
    }


# --- orchestration -----------------------------------------------------------------------------------


def _spawn(stage: str, data_dir: Path, save_path: Path | None) -> Measurement:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", stage, "--data-dir", str(data_dir)]
    if save_path is not None:
        command += ["--save-path", str(save_path)]
    completed = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
    measurement = Measurement(**json.loads(completed.stdout.splitlines()[-1]))
    print(
        f"  {stage:<16} {measurement.seconds:8.2f} s  peak +{measurement.peak_rss_mib:7.0f} MiB  "
        f"output {measurement.output_mib:7.0f} MiB",
        file=sys.stderr,
    )
    return measurement


def _summary(runs: list[Measurement]) -> dict[str, Any]:
    return {
        "median_seconds": statistics.median(run.seconds for run in runs),
        "peak_rss_mib": max(run.peak_rss_mib for run in runs),
        "input_rss_mib": statistics.median(run.input_rss_mib for run in runs),
        "output_mib": runs[0].output_mib,
        "rows": runs[0].rows,
        "columns": runs[0].columns,
        "runs": [dataclasses.asdict(run) for run in runs],
    }


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    commit = git_commit()
    runs: dict[str, list[Measurement]] = {stage: [] for stage in STAGES}
    with tempfile.TemporaryDirectory(prefix="features_bench_") as scratch:
        data_dir = Path(scratch)
        print("making the panel", file=sys.stderr)
        panel = make_panel(args.instruments, args.days, data_dir)
        print(f"  {panel['cleaned_rows']:,} cleaned bars in {panel['seconds']:.1f} s", file=sys.stderr)
        outputs = {stage: data_dir / f"{stage}.parquet" for stage in STAGES}
        for repeat in range(max(args.repeats, args.pandas_repeats)):
            print(f"repeat {repeat + 1}", file=sys.stderr)
            if repeat < args.repeats:
                runs[POLARS].append(_spawn(POLARS, data_dir, outputs[POLARS] if repeat == 0 else None))
            if repeat < args.pandas_repeats:
                runs[PANDAS].append(_spawn(PANDAS, data_dir, outputs[PANDAS] if repeat == 0 else None))
        equivalence = compare_outputs(outputs[POLARS], outputs[PANDAS])
    stages = {stage: _summary(stage_runs) for stage, stage_runs in runs.items()}
    polars_summary, pandas_summary = stages[POLARS], stages[PANDAS]
    speedup = pandas_summary["median_seconds"] / polars_summary["median_seconds"]
    rss_over_output = polars_summary["peak_rss_mib"] / polars_summary["output_mib"]
    return {
        "config": {
            "instruments": args.instruments, "days": args.days,
            "repeats": args.repeats, "pandas_repeats": args.pandas_repeats,
        },
        "commit": commit,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "polars": pl.__version__,
            "pandas": pd.__version__,
            "numpy": np.__version__,
        },
        "panel": panel,
        "stages": stages,
        "targets": {
            "speedup_pandas_over_polars": speedup,
            "speedup_target": TARGET_SPEEDUP,
            "speedup_met": speedup >= TARGET_SPEEDUP,
            "polars_peak_rss_over_output": rss_over_output,
            "rss_target": TARGET_RSS_OVER_OUTPUT,
            "rss_met": rss_over_output <= TARGET_RSS_OVER_OUTPUT,
            "pandas_peak_rss_over_polars_output": pandas_summary["peak_rss_mib"] / polars_summary["output_mib"],
        },
        "equivalence": equivalence,
    }


def _report(results: dict[str, Any]) -> str:
    stages, targets, eq = results["stages"], results["targets"], results["equivalence"]
    cfg = results["config"]
    labels = {POLARS: "features (polars)", PANDAS: "features (pandas, naive)"}
    lines = [
        f"{cfg['instruments']} instruments x {cfg['days']} business days ({results['panel']['cleaned_rows']:,} "
        f"cleaned bars), polars median of {cfg['repeats']}, pandas of {cfg['pandas_repeats']}; "
        f"{results['machine']['cpus']} CPUs, commit {results['commit']}",
        "",
        f"{'implementation':<26}{'median s':>10}{'peak RSS MiB':>14}{'input MiB':>11}{'output MiB':>12}{'columns':>9}",
    ]
    for stage in STAGES:
        s = stages[stage]
        lines.append(
            f"{labels[stage]:<26}{s['median_seconds']:>10.2f}{s['peak_rss_mib']:>14.0f}{s['input_rss_mib']:>11.0f}"
            f"{s['output_mib']:>12.0f}{s['columns']:>9}"
        )
    lines += [
        "",
        f"speed-up pandas / polars: {targets['speedup_pandas_over_polars']:.1f}x "
        f"(target >= {TARGET_SPEEDUP:.0f}x: {'met' if targets['speedup_met'] else 'NOT met'})",
        f"polars peak RSS / output size: {targets['polars_peak_rss_over_output']:.2f}x "
        f"(target <= {TARGET_RSS_OVER_OUTPUT:.0f}x: {'met' if targets['rss_met'] else 'NOT met'})",
        "",
        f"equivalence on {eq['compared_columns']} common columns x {eq['rows']:,} rows (rtol {eq['rtol']:g} of max(|value|, column std)):",
        f"{'column':<28}{'values':>10}{'missing':>10}{'miss.diff':>10}{'max rel diff':>14}{'>rtol':>7}{'beyond':>8}"
        f"{'zero':>6}{'ref.err':>8}",
    ]
    for name, col in eq["columns"].items():
        lines.append(
            f"{name:<28}{col['values']:>10,}{col['missing']:>10,}{col['missing_positions_differ']:>10}"
            f"{col['max_relative_difference']:>14.1e}{col['beyond_plain_rtol']:>7}{col['beyond_tolerance']:>8}"
            f"{col['zero_vs_residue']:>6}{col['reference_error']:>8}"
        )
    polars_only = [n for n in eq["polars_only_columns"] if n not in (c.DATE, c.TICKER)]
    lines.append(f"polars-only columns ({len(polars_only)}): " + (", ".join(polars_only) or "none"))
    lines.append("equivalence: " + ("OK" if not eq["mismatches"] else "MISMATCH\n  " + "\n  ".join(eq["mismatches"])))
    return "\n".join(lines)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instruments", type=int, default=500, help="instruments in the panel (default 500)")
    parser.add_argument("--days", type=int, default=5000, help="business days in the panel (default 5000)")
    parser.add_argument("--repeats", type=int, default=3, help="polars runs; the median is reported (default 3)")
    parser.add_argument(
        "--pandas-repeats", type=int, default=None, help="naive pandas runs (default: --repeats)"
    )
    parser.add_argument(
        "--output", type=Path, default=RESULTS_PATH, help=f"JSON file for the results (default {RESULTS_PATH})"
    )
    parser.add_argument("--worker", choices=STAGES, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--save-path", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.pandas_repeats is None:
        args.pandas_repeats = args.repeats
    if args.instruments < 2 or args.days < 300 or args.repeats < 1 or args.pandas_repeats < 1:
        parser.error("need --instruments >= 2, --days >= 300, --repeats >= 1 and --pandas-repeats >= 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    if args.worker is not None:
        print(json.dumps(dataclasses.asdict(run_worker(args.worker, args.data_dir, args.save_path))))
        return
    results = run_benchmark(args)
    print(_report(results))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {args.output}")
    if results["equivalence"]["mismatches"]:
        raise SystemExit("pandas and polars features disagree (see above)")


if __name__ == "__main__":
    main()
