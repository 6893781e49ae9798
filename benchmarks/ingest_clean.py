"""Benchmark: ingest and clean a synthetic daily panel, the lab's polars `clean_bars` against a naive pandas port.

Run from the repository root:

    .venv/bin/python benchmarks/ingest_clean.py [--instruments 500] [--days 5000] [--repeats 3]

Stages (see benchmarks/README.md for the figures measured):

- ingest (polars): `generate_synthetic_market` -> `as_raw_frame` -> one Parquet file per calendar month
  written with the lab's atomic writer (the IO manager's layout and write path) -> read back and concatenated.
- clean (polars): `clean_bars(raw, tickers, window=(first day, last day), as_of=last day)`.
- clean (pandas, naive): `naive_pandas_cleaning.clean_bars_naive` on the same files read by pandas.

Why a subprocess per measurement: each run starts from a fresh interpreter, so neither allocator
arenas, polars' string cache nor pandas' import state of one run leaks into the next, and the peak
memory of one implementation cannot hide inside the other's. Peak memory is the Linux high-water mark
of resident memory (VmHWM), reset through /proc/self/clear_refs once the input is loaded, so
"peak RSS above input" is exactly the extra resident memory the stage needed at its worst moment, not
a sampled estimate. After the timed runs, the outputs of both cleaners are compared (row keys, fills,
caps, prices, returns, quarantine rules); a mismatch fails the benchmark.

Results are printed and written to benchmarks/results/ingest_clean.json (or `--output`).
"""

from __future__ import annotations

import argparse
import calendar
import dataclasses
import datetime as dt
import json
import os
import platform
import shutil
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
from quantlab_assets.compute.data.cleaning import CleaningResult, clean_bars
from quantlab_assets.compute.data.raw import as_raw_frame, month_slice
from quantlab_assets.compute.data.synthetic import (
    SyntheticMarketParams,
    generate_synthetic_market,
    synthetic_tickers,
)
from quantlab_assets.compute.storage import read_parquet_files, write_parquet_atomic

# A sibling module: run as a script, this file's folder is first on sys.path.
from harness import git_commit, panel_params, peak_rss_mib, reset_peak_rss, rss_mib
from naive_pandas_cleaning import NaiveCleaningResult, clean_bars_naive, read_raw_parquet

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "ingest_clean.json"
INGEST, CLEAN_POLARS, CLEAN_PANDAS = "ingest", "clean-polars", "clean-pandas"
STAGES = (INGEST, CLEAN_POLARS, CLEAN_PANDAS)
MIB = 2**20
# Float columns of the cleaned bars compared with a tolerance: log returns go through two different
# log implementations (polars' and numpy's), which may differ in the last bit.
FLOAT_COLUMNS = (c.OPEN, c.HIGH, c.LOW, c.CLOSE, c.VOLUME, c.LOG_RETURN, c.RAW_CLOSE, c.ADJ_FACTOR)
EXACT_COLUMNS = (c.DATE, c.TICKER, c.IS_FILLED, c.IS_OUTLIER)
QUARANTINE_KEY = [c.DATE, c.TICKER, c.SOURCE_ROW, c.RULE, c.ACTION]
RELATIVE_TOLERANCE = 1e-9


@dataclasses.dataclass(frozen=True)
class Measurement:
    """One run of one stage in its own process.

    seconds: wall time of the stage itself (imports and, for cleaning, reading the input excluded).
    peak_rss_mib: peak resident memory during the stage above the resident memory when it started
      (for cleaning: with the raw input already loaded; for ingest: after imports).
    input_rss_mib: resident memory that loading the raw input added (cleaning only; 0 for ingest).
    phases: seconds of the stage's parts, where it has any.
    counts: rows of the stage's input and output (ingest: also files written and their bytes).
    """

    stage: str
    seconds: float
    peak_rss_mib: float
    input_rss_mib: float
    phases: dict[str, float]
    counts: dict[str, int]
    rule_counts: dict[str, int]


# --- memory ------------------------------------------------------------------------------------------


def _months(first_day: dt.date, last_day: dt.date) -> list[tuple[dt.date, dt.date]]:
    """(first, last) calendar day of every month touching [first_day, last_day]."""
    months, month = [], first_day.replace(day=1)
    while month <= last_day:
        month_end = month.replace(day=calendar.monthrange(month.year, month.month)[1])
        months.append((month, month_end))
        month = month_end + dt.timedelta(days=1)
    return months


def write_monthly_parquet(raw: pl.DataFrame, directory: Path, first_day: dt.date, last_day: dt.date) -> list[Path]:
    """Write `raw` as <YYYY-MM>.parquet files, as the IO manager stores a raw_ohlcv backfill."""
    paths = []
    for month_start, month_end in _months(first_day, last_day):
        path = directory / f"{month_start:%Y-%m}.parquet"
        write_parquet_atomic(month_slice(raw, month_start, month_end), path)
        paths.append(path)
    return paths


# --- workers (each runs in its own process) ----------------------------------------------------------


def run_ingest(params: SyntheticMarketParams, data_dir: Path) -> Measurement:
    """Generate the panel, write it per month to `data_dir`, read it back; check the round trip."""
    baseline = reset_peak_rss()
    started = time.perf_counter()
    market = generate_synthetic_market(params)
    raw = as_raw_frame(
        market.bars,
        source="synthetic",
        source_file=f"synthetic(seed={params.seed}, n_instruments={params.n_instruments}, start={params.start})",
    )
    generated = time.perf_counter()
    paths = write_monthly_parquet(raw, data_dir, params.start, params.end)
    written = time.perf_counter()
    read_back = read_parquet_files(paths)
    finished = time.perf_counter()
    peak = peak_rss_mib() - baseline
    if not read_back.equals(raw):
        raise RuntimeError("raw bars read back from Parquet differ from the bars written")
    return Measurement(
        stage=INGEST,
        seconds=finished - started,
        peak_rss_mib=peak,
        input_rss_mib=0.0,
        phases={"generate": generated - started, "write": written - generated, "read": finished - written},
        counts={"raw": read_back.height, "files": len(paths), "bytes_on_disk": sum(p.stat().st_size for p in paths)},
        rule_counts={},
    )


def run_clean(stage: str, params: SyntheticMarketParams, data_dir: Path, save_dir: Path | None) -> Measurement:
    """Load the raw files with the stage's library, then time `clean_bars` or its naive pandas port.

    With `save_dir`, the cleaned bars and quarantine are written there afterwards for the comparison.
    """
    paths = sorted(data_dir.glob("*.parquet"))
    tickers = synthetic_tickers(params.n_instruments)
    window = (params.start, params.end)
    before_input = rss_mib()
    raw = read_parquet_files(paths) if stage == CLEAN_POLARS else read_raw_parquet(str(p) for p in paths)
    baseline = reset_peak_rss()
    started = time.perf_counter()
    result: CleaningResult | NaiveCleaningResult
    if stage == CLEAN_POLARS:
        result = clean_bars(raw, tickers, window=window, as_of=params.end)
    else:
        result = clean_bars_naive(raw, tickers, window=window, as_of=params.end)
    seconds = time.perf_counter() - started
    peak = peak_rss_mib() - baseline
    cleaned, quarantine = result.cleaned, result.quarantine
    if save_dir is not None:
        save_dir.mkdir(parents=True, exist_ok=True)
        for name, frame in (("cleaned", cleaned), ("quarantine", quarantine)):
            if isinstance(frame, pl.DataFrame):
                frame.write_parquet(save_dir / f"{name}.parquet")
            else:
                frame.to_parquet(save_dir / f"{name}.parquet", index=False)
    return Measurement(
        stage=stage,
        seconds=seconds,
        peak_rss_mib=peak,
        input_rss_mib=baseline - before_input,
        phases={},
        counts={
            "raw": result.raw_rows,
            "cleaned": len(cleaned),
            "filled": int(cleaned[c.IS_FILLED].sum()),
            "outliers": int(cleaned[c.IS_OUTLIER].sum()),
            "quarantined": len(quarantine),
        },
        rule_counts=result.rule_counts,
    )


# --- equivalence -------------------------------------------------------------------------------------


def _read_output(path: Path) -> pl.DataFrame:
    """An output file as polars, dates as Date (pandas writes datetime64 where polars writes Date)."""
    return pl.read_parquet(path).with_columns(pl.col(c.DATE).cast(pl.Date))


def compare_outputs(polars_run: Measurement, pandas_run: Measurement, outputs: Path) -> dict[str, Any]:
    """Check that both cleaners produced the same result; return what was checked.

    Row counts, per-rule quarantine counts, keys, flags and quarantine rules must be identical; prices
    and returns equal within RELATIVE_TOLERANCE. Quarantine detail strings are only counted, not
    asserted: polars and Python may write the same float differently (e.g. 1e-5 against 1e-05).
    `outputs` holds the first run's files of each implementation, in a folder named after its stage.
    """
    mismatches = []
    if polars_run.counts != pandas_run.counts:
        mismatches.append(f"row counts: polars {polars_run.counts}, pandas {pandas_run.counts}")
    if polars_run.rule_counts != pandas_run.rule_counts:
        mismatches.append(f"rule counts: polars {polars_run.rule_counts}, pandas {pandas_run.rule_counts}")
    polars_cleaned, pandas_cleaned = (_read_output(outputs / stage / "cleaned.parquet") for stage in STAGES[1:])
    if polars_cleaned.height == pandas_cleaned.height:
        for column in EXACT_COLUMNS:
            if not polars_cleaned[column].equals(pandas_cleaned[column]):
                mismatches.append(f"cleaned column {column} differs")
        for column in FLOAT_COLUMNS:
            left, right = (frame[column].to_numpy().astype(float) for frame in (polars_cleaned, pandas_cleaned))
            if not np.allclose(left, right, rtol=RELATIVE_TOLERANCE, atol=0.0, equal_nan=True):
                mismatches.append(f"cleaned column {column} differs beyond rtol={RELATIVE_TOLERANCE}")
    polars_quarantine, pandas_quarantine = (
        _read_output(outputs / stage / "quarantine.parquet")
        .select(*QUARANTINE_KEY, c.DETAIL)
        .with_columns(pl.col(c.SOURCE_ROW).cast(pl.Int64))
        for stage in STAGES[1:]
    )
    if not polars_quarantine.select(QUARANTINE_KEY).equals(pandas_quarantine.select(QUARANTINE_KEY)):
        mismatches.append(f"quarantine {QUARANTINE_KEY} differs")
    if mismatches:
        raise AssertionError("pandas and polars cleaning disagree:\n  " + "\n  ".join(mismatches))
    log_return_difference = np.abs(
        polars_cleaned[c.LOG_RETURN].to_numpy().astype(float) - pandas_cleaned[c.LOG_RETURN].to_numpy().astype(float)
    )
    return {
        "cleaned_rows": polars_cleaned.height,
        "quarantine_rows": polars_quarantine.height,
        "cleaned_exact": list(EXACT_COLUMNS),
        "cleaned_within_rtol": {"rtol": RELATIVE_TOLERANCE, "columns": list(FLOAT_COLUMNS)},
        "quarantine_exact": QUARANTINE_KEY,
        "quarantine_detail_differences": int(
            (polars_quarantine[c.DETAIL] != pandas_quarantine[c.DETAIL]).fill_null(True).sum()
        ),
        "max_abs_log_return_difference": float(np.nanmax(log_return_difference)),
    }


# --- orchestration -----------------------------------------------------------------------------------


def _spawn(stage: str, args: argparse.Namespace, data_dir: Path, save_dir: Path | None = None) -> Measurement:
    command = [
        sys.executable, str(Path(__file__).resolve()), "--worker", stage, "--data-dir", str(data_dir),
        "--instruments", str(args.instruments), "--days", str(args.days),
    ]
    if save_dir is not None:
        command += ["--save-dir", str(save_dir)]
    completed = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
    measurement = Measurement(**json.loads(completed.stdout.splitlines()[-1]))
    print(f"  {stage:<13} {measurement.seconds:8.2f} s  peak +{measurement.peak_rss_mib:7.0f} MiB", file=sys.stderr)
    return measurement


def _summary(runs: list[Measurement]) -> dict[str, Any]:
    """Median time and the largest peak over the repeats, plus every run."""
    return {
        "median_seconds": statistics.median(run.seconds for run in runs),
        "peak_rss_mib": max(run.peak_rss_mib for run in runs),
        "input_rss_mib": statistics.median(run.input_rss_mib for run in runs),
        "phases_median_seconds": {
            phase: statistics.median(run.phases[phase] for run in runs) for phase in runs[0].phases
        },
        "counts": runs[0].counts,
        "rule_counts": runs[0].rule_counts,
        "runs": [dataclasses.asdict(run) for run in runs],
    }


def _report(results: dict[str, Any]) -> str:
    stages = results["stages"]
    labels = {INGEST: "ingest (polars)", CLEAN_POLARS: "clean (polars)", CLEAN_PANDAS: "clean (pandas, naive)"}
    lines = [
        f"{results['config']['instruments']} instruments x {results['config']['days']} business days, "
        f"median of {results['config']['repeats']} runs each, {results['machine']['cpus']} CPUs, "
        f"commit {results['commit']}",
        "",
        f"{'implementation':<24}{'median s':>10}{'peak RSS MiB':>14}{'input MiB':>11}",
        f"{'':<24}{'':>10}{'above input':>14}{'(loaded)':>11}",
    ]
    for stage in STAGES:
        summary = stages[stage]
        input_mib = f"{summary['input_rss_mib']:.0f}" if stage != INGEST else "-"
        lines.append(
            f"{labels[stage]:<24}{summary['median_seconds']:>10.2f}{summary['peak_rss_mib']:>14.0f}{input_mib:>11}"
        )
    ratio = results["ratio_pandas_over_polars"]
    ingest = stages[INGEST]
    clean_rows = stages[CLEAN_POLARS]["counts"]
    lines += [
        f"{'ratio pandas/polars':<24}{ratio['time']:>9.2g}x{ratio['peak_rss']:>13.2g}x{ratio['input_rss']:>10.2g}x",
        "",
        "ingest phases (median s): "
        + ", ".join(f"{phase} {seconds:.2f}" for phase, seconds in ingest["phases_median_seconds"].items())
        + f"; {ingest['counts']['files']} monthly files, {ingest['counts']['bytes_on_disk'] / MIB:.0f} MiB on disk",
        f"rows in {clean_rows['raw']:,}; cleaned out {clean_rows['cleaned']:,} "
        f"(filled {clean_rows['filled']:,}, outliers flagged {clean_rows['outliers']:,}); "
        f"quarantined {clean_rows['quarantined']:,}",
        "quarantine by rule: "
        + ", ".join(f"{rule} {count:,}" for rule, count in stages[CLEAN_POLARS]["rule_counts"].items() if count),
        f"equivalence: pandas == polars on {results['equivalence']['cleaned_rows']:,} cleaned and "
        f"{results['equivalence']['quarantine_rows']:,} quarantined rows "
        f"(max |log_return difference| {results['equivalence']['max_abs_log_return_difference']:.1e}, "
        f"{results['equivalence']['quarantine_detail_differences']} detail strings written differently)",
    ]
    return "\n".join(lines)


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Run every stage `args.repeats` times, each in a fresh process, compare outputs, summarise."""
    commit = git_commit()  # before the runs: other work may commit while they go on
    runs: dict[str, list[Measurement]] = {stage: [] for stage in STAGES}
    with tempfile.TemporaryDirectory(prefix="ingest_clean_") as scratch:
        data_dir, outputs = Path(scratch) / "raw_ohlcv", Path(scratch) / "outputs"
        for repeat in range(args.repeats):
            print(f"repeat {repeat + 1}/{args.repeats}", file=sys.stderr)
            # Every ingest writes into an empty directory; the panel is deterministic, so each
            # repeat cleans the same bars. Stages are interleaved, so a slow spell of the machine
            # hits both implementations alike.
            shutil.rmtree(data_dir, ignore_errors=True)
            runs[INGEST].append(_spawn(INGEST, args, data_dir))
            for stage in (CLEAN_POLARS, CLEAN_PANDAS):
                runs[stage].append(_spawn(stage, args, data_dir, outputs / stage if repeat == 0 else None))
        equivalence = compare_outputs(runs[CLEAN_POLARS][0], runs[CLEAN_PANDAS][0], outputs)
    stages = {stage: _summary(stage_runs) for stage, stage_runs in runs.items()}
    polars_clean, pandas_clean = stages[CLEAN_POLARS], stages[CLEAN_PANDAS]
    return {
        "config": {"instruments": args.instruments, "days": args.days, "repeats": args.repeats},
        "commit": commit,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "polars": pl.__version__,
            "pandas": pd.__version__,
            "numpy": np.__version__,
        },
        "stages": stages,
        "ratio_pandas_over_polars": {
            "time": pandas_clean["median_seconds"] / polars_clean["median_seconds"],
            "peak_rss": pandas_clean["peak_rss_mib"] / polars_clean["peak_rss_mib"],
            "input_rss": pandas_clean["input_rss_mib"] / polars_clean["input_rss_mib"],
        },
        "equivalence": equivalence,
    }


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instruments", type=int, default=500, help="instruments in the panel (default 500)")
    parser.add_argument("--days", type=int, default=5000, help="business days in the panel (default 5000)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each stage; the median is reported (default 3)")
    parser.add_argument(
        "--output", type=Path, default=RESULTS_PATH, help=f"JSON file for the results (default {RESULTS_PATH})"
    )
    # Internal: how the harness starts one measurement in a child process.
    parser.add_argument("--worker", choices=STAGES, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--save-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.instruments < 1 or args.days < 2 or args.repeats < 1:
        parser.error("need --instruments >= 1, --days >= 2 and --repeats >= 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    if args.worker is not None:
        params = panel_params(args.instruments, args.days)
        if args.worker == INGEST:
            measurement = run_ingest(params, args.data_dir)
        else:
            measurement = run_clean(args.worker, params, args.data_dir, args.save_dir)
        print(json.dumps(dataclasses.asdict(measurement)))
        return
    results = run_benchmark(args)
    print(_report(results))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {args.output}")


if __name__ == "__main__":
    main()
