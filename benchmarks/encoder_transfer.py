"""Measurement: the patch forecaster initialised from a per-fold pre-trained masked encoder vs at random.

    .venv/bin/python benchmarks/encoder_transfer.py                       # defaults below, CPU or GPU
    .venv/bin/python benchmarks/encoder_transfer.py --d-model 128 --layers 4 --heads 8 --dim-ff 512 --epochs 20

A seeded synthetic market (`--instruments` x `--start`..`--end`) through the lab's own cleaning, features and
labels; the forecaster's inputs (the __wz / __rz features), label_21d, the model stack's purged walk-forward
folds; then compute/torch_runtime/transfer.py's comparison (both variants trained identically, per fold
pre-training on that fold's training windows only). Prints the scorecard rows over all folds and per fold,
the paired daily-IC difference with its interval, and the wall time; writes results/encoder_transfer.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from pathlib import Path

import polars as pl

from harness import git_commit
from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.cleaning import clean_bars
from quantlab_assets.compute.data.raw import as_raw_frame
from quantlab_assets.compute.data.synthetic import SyntheticMarketParams, generate_synthetic_market
from quantlab_assets.compute.features.compute import compute_features
from quantlab_assets.compute.labels.compute import compute_labels
from quantlab_assets.compute.models import cv
from quantlab_assets.compute.torch_runtime.device import choose_device
from quantlab_assets.compute.torch_runtime.masked_encoder import MaskedEncoderConfig
from quantlab_assets.compute.torch_runtime.oof_engine import TrainingConfig
from quantlab_assets.compute.torch_runtime.transfer import compare_encoder_transfer
from quantlab_assets.compute.torch_runtime.transformer import TransformerConfig
from quantlab_assets.compute.torch_runtime.windows import build_window_panel

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "encoder_transfer.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instruments", type=int, default=40)
    parser.add_argument("--start", default="2010-01-01")
    parser.add_argument("--end", default="2016-12-30")
    parser.add_argument("--d-model", type=int, default=32)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--dim-ff", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=4, help="pre-training and fine-tuning epochs (early stopping)")
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()

    started = time.perf_counter()
    params = SyntheticMarketParams(seed=42, n_instruments=args.instruments, start=dt.date.fromisoformat(args.start),
                                   end=dt.date.fromisoformat(args.end))
    market = generate_synthetic_market(params)
    raw = as_raw_frame(market.bars, source="synthetic", source_file="synthetic(benchmark)")
    bars = clean_bars(raw, market.universe[c.TICKER], window=(params.start, params.end), as_of=params.end).cleaned
    features, labels = compute_features(bars, market.universe).frame, compute_labels(bars, market.universe)
    names = [n for n in features.columns if n.endswith(("__wz", "__rz"))]
    frame = features.select(c.DATE, c.TICKER, *names).join(labels.select(c.DATE, c.TICKER, "label_21d"), on=[c.DATE, c.TICKER])
    panel = build_window_panel(frame, names, ["label_21d"], 63)
    sizes = {"d_model": args.d_model, "n_heads": args.heads, "n_layers": args.layers, "dim_ff": args.dim_ff, "seq_len": 63}
    training = TrainingConfig(batch_size=args.batch_size, max_epochs=args.epochs, patience=2, warmup_steps=50)
    device = choose_device()
    prepared = time.perf_counter()
    result = compare_encoder_transfer(panel, cv.make_folds(labels), MaskedEncoderConfig(n_features=len(names), **sizes),
                                      TransformerConfig(n_features=len(names), **sizes), training, training, device)
    trained = time.perf_counter()

    columns = ["model", "fold_id", "n_rows", "n_dates", "ic", "icir", "rank_ic", "prediction_std"]
    with pl.Config(tbl_rows=40, tbl_cols=len(columns), float_precision=4):
        print(result.scorecard.select(columns))
    print("paired daily IC, pretrained - random:", result.ic_difference)
    print(f"windows {panel.starts.shape[0]}, features {len(names)}, device {device.describe()['device']}; "
          f"data {prepared - started:.1f} s, both variants {trained - prepared:.1f} s")
    RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_PATH.write_text(json.dumps({
        "commit": git_commit(), "args": vars(args), "device": device.describe(), "windows": int(panel.starts.shape[0]),
        "train_seconds": trained - prepared, "ic_difference": result.ic_difference,
        "scorecard": result.scorecard.select(columns).to_dicts(),
    }, indent=1, default=str))


if __name__ == "__main__":
    main()
