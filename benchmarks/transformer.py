"""Benchmark: training throughput of the transformer forecaster through the lab's windows data path.

    .venv/bin/python benchmarks/transformer.py                    # on a CUDA machine: the three settings below
    .venv/bin/python benchmarks/transformer.py --steps 20 --instruments 50 --days 1000   # a CPU smoke run

Seed 003's architecture (d_model 128, 8 heads, 4 layers, dim_ff 512, seq_len 63) on a synthetic panel of
`--instruments` x `--days` x 40 features held as one tensor on the device; every step gathers a batch
of windows by index (compute/torch_runtime/windows.py, the training path) from a shuffled order, then
runs forward, the multi-task loss, backward, grad clipping and an AdamW step. Settings:

- `seed`: batch 64, fp32, eager (the seed's settings);
- `large_bf16`: batch 4096, bf16 autocast, eager (CUDA with native bf16 only);
- `large_bf16_compile`: the same under torch.compile (CUDA only).

Reported per setting: training samples per second (median of `--repeats` timed spans of `--steps`
steps after `--warmup` steps) and peak GPU memory. Issue 12's reference on one H100: about 5.4k / 98k /
158k samples/s; target >= 150k end to end. Results go to benchmarks/results/transformer.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import polars as pl
import torch

from harness import git_commit
from quantlab_assets.compute.torch_runtime.device import choose_device
from quantlab_assets.compute.torch_runtime.transformer import TransformerConfig, TransformerForecaster, multitask_loss
from quantlab_assets.compute.torch_runtime.windows import WindowPanel, gather_windows

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "transformer.json"


def synthetic_panel(instruments: int, days: int, features: int, seq_len: int, device: torch.device) -> WindowPanel:
    generator = torch.Generator().manual_seed(5)
    values = torch.randn(instruments, days, features, generator=generator)
    targets = 0.05 * torch.randn(instruments, days, 1, generator=generator)
    first_rows = torch.arange(days - seq_len + 1)
    starts = (torch.arange(instruments)[:, None] * days + first_rows[None, :]).flatten().to(torch.int32)
    dates = pl.Series("date", range(days))
    return WindowPanel(values, targets, starts, seq_len, tuple(f"S{i}" for i in range(instruments)), dates,
                       tuple(f"f{k}" for k in range(features)), ("target",)).to(device)


def measure(panel: WindowPanel, batch: int, bf16: bool, compile_model: bool, args: argparse.Namespace,
            device: torch.device) -> dict:
    torch.manual_seed(0)
    config = TransformerConfig(n_features=panel.values.shape[2], seq_len=panel.seq_len)
    model = TransformerForecaster(config).to(device)
    step_model = torch.compile(model) if compile_model else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
    order = panel.starts.long()[torch.randperm(panel.starts.shape[0], device=device)]
    position = 0

    def step() -> None:
        nonlocal position
        if position + batch > order.shape[0]:
            position = 0
        windows, targets = gather_windows(panel, order[position : position + batch])
        position += batch
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = multitask_loss(step_model(windows), targets[:, 0].float(), config)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    def synchronise() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for _ in range(args.warmup):
        step()
    synchronise()
    rates = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        for _ in range(args.steps):
            step()
        synchronise()
        rates.append(args.steps * batch / (time.perf_counter() - started))
    return {"batch": batch, "bf16": bf16, "compile": compile_model, "samples_per_s": round(statistics.median(rates)),
            "peak_gpu_mib": round(torch.cuda.max_memory_allocated() / 2**20) if device.type == "cuda" else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instruments", type=int, default=500)
    parser.add_argument("--days", type=int, default=5000)
    parser.add_argument("--features", type=int, default=40)
    parser.add_argument("--seq-len", type=int, default=63)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    args = parser.parse_args()
    choice = choose_device()
    device = choice.device
    panel = synthetic_panel(args.instruments, args.days, args.features, args.seq_len, device)
    settings = {"seed": (64, False, False)}
    if choice.is_cuda and choice.precision == "bf16":
        settings |= {"large_bf16": (4096, True, False), "large_bf16_compile": (4096, True, True)}
    results = {"commit": git_commit(), "device": choice.describe(), "torch": torch.__version__,
               "panel": [args.instruments, args.days, args.features], "seq_len": args.seq_len,
               "windows": int(panel.starts.shape[0]),
               "settings": {name: measure(panel, *setting, args, device) for name, setting in settings.items()}}
    print(json.dumps(results, indent=1))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
