"""Evaluation of trained policies per environment, the across-environment diagnostics, and seed 000's
success criterion with an interval across seeds.

Per policy x environment (every path): CVaR-95 of the loss -P&L (primary), VaR-95, mean and std of the
terminal P&L, Sharpe (mean / std of the terminal P&L per hedged option, not annualised), turnover (mean
over paths of sum_t |delta_t - delta_{t-1}|, opening trade and liquidation included), and the MSI (compute/hedging/diagnostics.py).

Per policy: IG (invariance gap) = max_e CVaR_e - min_e CVaR_e; WG = max_e CVaR_e (worst-group risk)
and WG variance = Var_e(CVaR_e) (population); each over the training environments and over all.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import torch

from quantlab_assets.compute.backtest.metrics import sharpe_ratio
from quantlab_assets.compute.hedging.config import ENVIRONMENTS, ERM, TRAIN, VALIDATION, HedgingConfig, parse_policy_key
from quantlab_assets.compute.hedging.environments import EnvironmentPaths
from quantlab_assets.compute.hedging.diagnostics import msi, representation_sample
from quantlab_assets.compute.hedging.policy import EnvironmentTensors, cpu_threads, load_policy, rollout
from quantlab_assets.compute.hedging.risk import cvar, var_index
from quantlab_assets.compute.stats import Interval, criterion_verdict, joint_verdict, t_interval


def policy_pnl(state: bytes, paths: EnvironmentPaths, config: HedgingConfig, device: torch.device) -> np.ndarray:
    """Terminal hedged P&L per path of one stored policy on one environment."""
    with cpu_threads(device), torch.no_grad():
        pnl = rollout(load_policy(config, state, device), EnvironmentTensors.of(paths, device), config).pnl
    return pnl.double().cpu().numpy()


def evaluate_policies(states: dict[str, bytes], environments: dict[str, EnvironmentPaths], config: HedgingConfig,
                      device: torch.device) -> pl.DataFrame:
    """One row per policy x environment (METRIC_SCHEMA); see the module docstring."""
    rows = []
    tensors = {name: EnvironmentTensors.of(paths, device) for name, paths in environments.items()}
    with cpu_threads(device), torch.no_grad():
        for key, state in sorted(states.items()):
            method, strength, seed = parse_policy_key(key)
            policy = load_policy(config, state, device)
            reference = np.concatenate([representation_sample(policy, tensors[name], config) for name in TRAIN])
            for name, env in tensors.items():
                result = rollout(policy, env, config)
                losses = -result.pnl.double()
                values = result.pnl.double().cpu().numpy()
                rows.append({
                    "policy": key, "method": method, "strength": strength, "seed": seed, "environment": name,
                    "cvar95": float(cvar(losses, config.alpha)),
                    "var95": float(torch.sort(losses).values[var_index(losses.numel(), config.alpha)]),
                    "mean_pnl": float(values.mean()), "std_pnl": float(values.std(ddof=1)),
                    "sharpe": sharpe_ratio(values), "turnover": float(result.turnover.double().mean()),
                    "msi": msi(representation_sample(policy, env, config), reference, config.msi_quantiles),
                })
    order = {name: i for i, name in enumerate(ENVIRONMENTS)}
    return pl.DataFrame(rows, schema=METRIC_SCHEMA).sort(
        "policy", pl.col("environment").replace_strict(order, return_dtype=pl.Int64))


METRIC_SCHEMA = {
    "policy": pl.String, "method": pl.String, "strength": pl.Float64, "seed": pl.Int64, "environment": pl.String,
    "cvar95": pl.Float64, "var95": pl.Float64, "mean_pnl": pl.Float64, "std_pnl": pl.Float64, "sharpe": pl.Float64,
    "turnover": pl.Float64, "msi": pl.Float64,
}


def diagnostics(metrics: pl.DataFrame) -> pl.DataFrame:
    """Per policy: IG, WG and WG variance of CVaR-95 over the training environments and over all."""
    def spread(frame: pl.DataFrame, suffix: str) -> pl.DataFrame:
        return frame.group_by("policy").agg(
            (pl.col("cvar95").max() - pl.col("cvar95").min()).alias(f"ig_{suffix}"),
            pl.col("cvar95").max().alias(f"wg_{suffix}"),
            pl.col("cvar95").var(ddof=0).alias(f"wg_var_{suffix}"),
        )
    train = spread(metrics.filter(pl.col("environment").is_in(list(TRAIN))), "train")
    return train.join(spread(metrics, "all"), on="policy").sort("policy")


def verdict(improvement: Interval, turnover_increase: Interval, config: HedgingConfig) -> str:
    """met: the whole interval clears both bars; not met: the whole interval misses one; else inconclusive."""
    return joint_verdict([
        criterion_verdict(improvement, config.min_cvar_improvement, higher_is_better=True),
        criterion_verdict(turnover_increase, config.max_turnover_increase, higher_is_better=False),
    ])


def success_table(metrics: pl.DataFrame, config: HedgingConfig) -> pl.DataFrame:
    """Per non-ERM configuration: crisis CVaR-95 improvement vs the ERM policy of the same seed
    ((CVaR_erm - CVaR) / |CVaR_erm|; undefined where CVaR_erm = 0) and turnover increase
    (turnover / turnover_erm - 1), their means and t intervals across the seeds that have both, the
    verdict, and `selected`: the strength of its method with the lowest mean CVaR on `high` (the
    validation environment; crisis plays no part in the choice)."""
    crisis = metrics.filter(pl.col("environment") == "crisis")
    erm = crisis.filter(pl.col("method") == ERM).select("seed", pl.col("cvar95").alias("erm_cvar"),
                                                        pl.col("turnover").alias("erm_turnover"))
    paired = crisis.filter(pl.col("method") != ERM).join(erm, on="seed").with_columns(
        pl.when(pl.col("erm_cvar") != 0).then((pl.col("erm_cvar") - pl.col("cvar95")) / pl.col("erm_cvar").abs())
        .alias("improvement"),
        pl.when(pl.col("erm_turnover") > 0).then(pl.col("turnover") / pl.col("erm_turnover") - 1.0).alias("turnover_increase"),
    )
    validation = metrics.filter(pl.col("environment") == VALIDATION, pl.col("method") != ERM).group_by(
        "method", "strength").agg(pl.col("cvar95").mean().alias("validation_cvar"))
    best = validation.sort("validation_cvar", "strength").group_by("method").first().select(
        "method", pl.col("strength").alias("best"))
    rows = []
    for (method, strength), group in paired.group_by("method", "strength", maintain_order=True):
        improvement = t_interval(group["improvement"].fill_null(np.nan).to_numpy(), config.confidence)
        turnover = t_interval(group["turnover_increase"].fill_null(np.nan).to_numpy(), config.confidence)
        rows.append({
            "method": method, "strength": strength, "n_seeds": group.height,
            "improvement": improvement[0], "improvement_low": improvement[1], "improvement_high": improvement[2],
            "turnover_increase": turnover[0], "turnover_increase_low": turnover[1], "turnover_increase_high": turnover[2],
            "verdict": verdict(improvement, turnover, config),
        })
    schema = {"method": pl.String, "strength": pl.Float64, "n_seeds": pl.Int64, **{
        f"{m}{s}": pl.Float64 for m in ("improvement", "turnover_increase") for s in ("", "_low", "_high")},
        "verdict": pl.String}
    table = pl.DataFrame(rows, schema=schema).join(validation, on=["method", "strength"], how="left")
    return table.join(best, on="method", how="left").with_columns(
        (pl.col("strength") == pl.col("best")).fill_null(False).alias("selected")).drop("best").sort("method", "strength")
