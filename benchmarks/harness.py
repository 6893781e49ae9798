"""Helpers shared by the benchmarks: peak RSS of a stage, the panel size, the commit measured, a stored run's
data directory from the command line."""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import re
import subprocess
from pathlib import Path

from quantlab_assets.compute.data.synthetic import SyntheticMarketParams, business_days
from quantlab_assets.compute.storage import StorageLayout


def _proc_status_kib(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB$", Path("/proc/self/status").read_text(), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"/proc/self/status has no {field}: this benchmark needs Linux")
    return int(match.group(1))


def rss_mib() -> float:
    return _proc_status_kib("VmRSS") / 1024


def peak_rss_mib() -> float:
    return _proc_status_kib("VmHWM") / 1024


def reset_peak_rss() -> float:
    """Reset the kernel's high-water mark to the current RSS (Linux >= 4.0) and return that RSS."""
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")
    return rss_mib()


def panel_params(n_instruments: int, n_days: int) -> SyntheticMarketParams:
    """Default market parameters with `n_instruments` and an end date giving exactly `n_days` business days."""
    start = SyntheticMarketParams().start
    # 7 calendar days hold 5 business days; the margin covers any start weekday.
    days = business_days(start, start + dt.timedelta(days=n_days * 7 // 5 + 7))
    return SyntheticMarketParams(n_instruments=n_instruments, end=days[n_days - 1].astype(dt.date))


def git_commit() -> str | None:
    """The commit measured, with -dirty when the working tree differs (the code measured is then not
    exactly that commit); None outside a git checkout."""
    described = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=Path(__file__).resolve().parent, capture_output=True, text=True
    )
    return described.stdout.strip() if described.returncode == 0 else None


def stored_run(description: str) -> tuple[StorageLayout, str]:
    """The storage layout of `--data-dir` (a run's data directory, command 1's: `./dagster_home/data`) and
    the universe `--universe` (default synthetic) of a benchmark that reads a stored run."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--universe", default="synthetic")
    args = parser.parse_args()
    return StorageLayout(args.data_dir), args.universe
