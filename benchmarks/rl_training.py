"""Benchmark: CPU (or GPU) time of the RL policies' default training run on the synthetic universe's shape.

    .venv/bin/python benchmarks/rl_training.py                     # 10 % of the default timesteps, extrapolated
    .venv/bin/python benchmarks/rl_training.py --fraction 0.02     # a quicker estimate

The panel has the default synthetic universe's shape and calendar: its 50 instruments' daily returns from
the seeded synthetic market (2005-01-03 .. 2026-11-30), a noisy copy of the planted signal as the forecast
(bp), seeded regime labels after the universe's train_end; spans as rl_policy builds them (train
2015-01 .. 2017-12, validation 2018, test from 2019). Each algorithm's model is built by the lab's
make_model with the seed's hyper-parameters and trained for `fraction` of rl_policy's default timesteps in
timed segments (SAC: the random warm-up of learning_starts steps apart from the update steps), plus one
validation episode (the selection's unit of work). The extrapolation to the default run is
warm-up + update steps x (seconds per step) + 10 validation episodes. Results: benchmarks/results/rl_training.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time
from pathlib import Path

import numpy as np
import polars as pl

from harness import git_commit
from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.synthetic import SyntheticMarketParams, generate_synthetic_market
from quantlab_assets.compute.rl.environment import EnvParams, PortfolioEnv
from quantlab_assets.compute.rl.panel import TRAIN, VALIDATION, ObservationPanel, build_panel, common_dates, split_spans
from quantlab_assets.compute.rl.episodes import policy_episode, torch_threads
from quantlab_assets.compute.rl.training import TrainingParams, make_model
from quantlab_assets.defs.assets.rl import RlPolicyConfig

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "rl_training.json"
TRAIN_END, VALIDATION_END = dt.date(2014, 12, 31), dt.date(2018, 12, 31)


def synthetic_inputs() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    market = generate_synthetic_market(SyntheticMarketParams(end=dt.date(2026, 11, 30)))
    bars = market.bars.sort(c.TICKER, c.DATE).join(market.oracle, on=[c.DATE, c.TICKER])
    # The raw synthetic bars carry planted defects (the cleaning's job): those days are dropped (a 0 return).
    returns = bars.select(c.DATE, c.TICKER, (pl.col(c.CLOSE) / pl.col(c.CLOSE).shift(1).over(c.TICKER) - 1).alias("return"))
    returns = returns.filter(pl.col("return").is_finite() & pl.col("return").is_between(-0.5, 1.0) | pl.col("return").is_null())
    rng = np.random.default_rng(0)
    alpha = bars.filter(pl.col(c.DATE) > dt.date(2009, 1, 1)).select(c.DATE, c.TICKER, pl.col("planted_signal"))
    alpha = alpha.select(c.DATE, c.TICKER, (pl.col("planted_signal") * 100 + pl.Series(rng.normal(0, 30, alpha.height)))
                         .alias("alpha_combined"))
    dates = returns[c.DATE].unique().sort().filter(returns[c.DATE].unique().sort() > TRAIN_END)
    regimes = pl.DataFrame({c.DATE: dates, "regime_id": pl.Series(rng.integers(0, 5, dates.len()), dtype=pl.Int8)})
    return returns, alpha, regimes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fraction", type=float, default=0.10)
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    args = parser.parse_args()
    returns, alpha, regimes = synthetic_inputs()
    dates = common_dates(returns, alpha, regimes)
    config = RlPolicyConfig()
    spans = split_spans(dates, VALIDATION_END, config.validation_days)
    panel = build_panel(returns, alpha, regimes, dates, dates[spans[TRAIN][1]])
    env_params = EnvParams(episode_days=config.episode_days)
    results = {"commit": git_commit(), "torch_threads": config.training("ppo", 0).torch_threads, "cpus": os.cpu_count(),
               "load_average_start": os.getloadavg(), "instruments": panel.n_assets,
               "spans": {k: [str(dates[a]), str(dates[b])] for k, (a, b) in spans.items()}, "algorithms": {}}
    for algorithm in ("ppo", "sac"):
        params: TrainingParams = config.training(algorithm, seed=0)
        with torch_threads(params.torch_threads):
            results["algorithms"][algorithm] = measure(params, panel, spans, env_params, config, args.fraction)
        print(algorithm, json.dumps(results["algorithms"][algorithm]), flush=True)
    results["load_average_end"] = os.getloadavg()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


def measure(params: TrainingParams, panel: ObservationPanel, spans: dict[str, tuple[int, int]], env_params: EnvParams,
            config: RlPolicyConfig, fraction: float) -> dict:
    """Time `fraction` of the default run of one algorithm and extrapolate to the whole run."""
    model = make_model(params, PortfolioEnv(panel, *spans[TRAIN], env_params), "cpu")
    warmup = params.sac.learning_starts if params.algorithm == "sac" else 0
    steps = max(int(params.total_timesteps * fraction) - warmup, 1)
    if params.algorithm == "ppo":  # whole rollouts, each followed by its update
        steps = max(params.ppo.n_steps, steps // params.ppo.n_steps * params.ppo.n_steps)
    start = time.perf_counter()
    if warmup:
        model.learn(warmup)
    warm_seconds = time.perf_counter() - start
    start = time.perf_counter()
    model.learn(steps, reset_num_timesteps=not warmup)
    update_seconds = time.perf_counter() - start
    start = time.perf_counter()
    policy_episode(model, PortfolioEnv(panel, *spans[VALIDATION]))
    episode_seconds = time.perf_counter() - start
    per_step = update_seconds / steps
    total = warm_seconds + (params.total_timesteps - warmup) * per_step + config.evaluations * episode_seconds
    return {"default_timesteps": params.total_timesteps, "measured_steps": warmup + steps, "warmup_seconds": warm_seconds,
            "update_steps": steps, "update_seconds": update_seconds, "ms_per_step": 1000 * per_step,
            "validation_episode_seconds": episode_seconds, "extrapolated_default_run_minutes": total / 60}


if __name__ == "__main__":
    main()
