"""Benchmark: the windows data path (compute/torch_runtime/windows.py) against materialised windows.

    .venv/bin/python benchmarks/windows.py                      # 500 x 5,000 x 40, seq_len 63
    .venv/bin/python benchmarks/windows.py --instruments 50 --days 1000 --output /tmp/smoke.json

1. Build: a long frame (date, ticker, 40 float features, 1 target; instruments listed late) is made,
   then `build_window_panel` turns it into the (instruments, days, features) float32 panel and the index
   of complete windows. Reported: peak RSS of the build above the frame (kernel high-water mark), as a
   multiple of the panel tensor's size; and what the materialised (N, seq_len, F) float32 layout
   would need.
2. Shuffled epoch: batches of `--batch` windows in a seeded random order, gathered by index from the
   panel, against the same batches read from a materialised (S, seq_len, F) array. The full
   materialised array does not fit in this machine's memory at the default size, so both are timed on
   the same random subsample of `--sample` windows (the materialised side gets the smaller, cache-
   friendlier array; the comparison favours it). Reported: windows per second each, and the ratio.

Results go to benchmarks/results/windows.json (or `--output`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

from harness import git_commit, peak_rss_mib, reset_peak_rss
from quantlab_assets.compute import columns as c
from quantlab_assets.compute.torch_runtime.windows import build_window_panel, gather_windows

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "windows.json"


def make_frame(instruments: int, days: int, features: int, seed: int = 11) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    dates = pl.Series(c.DATE, [dt.date(2005, 1, 3) + dt.timedelta(days=d) for d in range(days)], dtype=pl.Date)
    # Late listings, as in a real universe: an instrument's rows start on a random day of the first quarter.
    listed = np.repeat(rng.integers(0, days // 4, instruments), days) <= np.tile(np.arange(days), instruments)
    frame = pl.DataFrame({
        c.DATE: dates.gather(np.tile(np.arange(days), instruments)),
        c.TICKER: np.repeat([f"S{i:03d}" for i in range(instruments)], days),
    }).filter(pl.Series(listed))
    return frame.with_columns(
        *(pl.Series(f"f{k}", rng.standard_normal(frame.height)) for k in range(features)),
        pl.Series("target", rng.standard_normal(frame.height)),
    )


def epoch_rate(batches: list[torch.Tensor], read) -> float:
    started = time.perf_counter()
    total = 0
    for batch in batches:
        total += read(batch).shape[0]
    return total / (time.perf_counter() - started)


def run(args: argparse.Namespace) -> dict:
    frame = make_frame(args.instruments, args.days, args.features)
    features = [f"f{k}" for k in range(args.features)]
    baseline = reset_peak_rss()
    started = time.perf_counter()
    panel = build_window_panel(frame, features, ["target"], args.seq_len)
    build_s = time.perf_counter() - started
    build_peak_mib = peak_rss_mib() - baseline
    panel_mib = panel.values.numel() * 4 / 2**20
    n_windows = panel.starts.shape[0]
    index_mib = panel.starts.numel() * 4 / 2**20

    generator = torch.Generator().manual_seed(3)
    sample = panel.starts[torch.randperm(n_windows, generator=generator)[: args.sample]].long()
    # (S, seq_len, F) and (S, T): the layout seed 002 built, features and targets read per batch like ours
    materialised, materialised_targets = (t.contiguous() for t in gather_windows(panel, sample))
    order = torch.randperm(sample.shape[0], generator=generator)
    batches = [order[i : i + args.batch] for i in range(0, order.shape[0], args.batch)]
    rates = {"by_index": [], "materialised": []}
    for _ in range(args.repeats):
        rates["by_index"].append(epoch_rate(batches, lambda b: gather_windows(panel, sample[b])[0]))
        rates["materialised"].append(epoch_rate(batches, lambda b: (materialised[b], materialised_targets[b])[0]))
    by_index, from_array = float(np.median(rates["by_index"])), float(np.median(rates["materialised"]))
    return {
        "commit": git_commit(), "instruments": args.instruments, "days": args.days, "features": args.features,
        "seq_len": args.seq_len, "windows": n_windows, "torch_threads": torch.get_num_threads(),
        "build_seconds": round(build_s, 2), "panel_tensor_mib": round(panel_mib, 1),
        "build_peak_rss_above_frame_mib": round(build_peak_mib, 1),
        "build_peak_over_panel": round(build_peak_mib / panel_mib, 3),
        "targets_and_index_mib": round(panel.targets.numel() * 4 / 2**20 + index_mib, 1),
        "materialised_layout_gib": round(n_windows * args.seq_len * args.features * 4 / 2**30, 2),
        "epoch_sample_windows": int(sample.shape[0]), "batch": args.batch,
        "windows_per_s_by_index": round(by_index), "windows_per_s_materialised": round(from_array),
        "by_index_over_materialised": round(by_index / from_array, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instruments", type=int, default=500)
    parser.add_argument("--days", type=int, default=5000)
    parser.add_argument("--features", type=int, default=40)
    parser.add_argument("--seq-len", type=int, default=63)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--sample", type=int, default=200_000, help="windows in the timed epoch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    results = run(parser.parse_args())
    print(json.dumps(results, indent=1))
    print(f"build peak {results['build_peak_over_panel']:.3f}x the panel tensor (target <= 1.1x: "
          f"{'met' if results['build_peak_over_panel'] <= 1.1 else 'NOT met'}); materialised layout would need "
          f"{results['materialised_layout_gib']} GiB")
    print(f"shuffled epoch: {results['by_index_over_materialised']:.2f}x the materialised array's rate (target >= 1: "
          f"{'met' if results['by_index_over_materialised'] >= 1 else 'NOT met'})")
    args_output = parser.parse_args().output
    args_output.parent.mkdir(parents=True, exist_ok=True)
    args_output.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
