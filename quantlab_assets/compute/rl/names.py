"""The RL variants (one partition each): algorithm x regime inputs x seed. Free of heavy imports (partitions)."""

from __future__ import annotations

PPO, SAC = "ppo", "sac"
ALGORITHMS = (PPO, SAC)
AWARE, BLIND = "aware", "blind"
# The kind of an evaluated strategy (rl_evaluation's `kind` column): a trained policy or a baseline beside it.
RL, BASELINE = "rl", "baseline"
REGIME_MODES = (AWARE, BLIND)
# Two seeds per algorithm x regime mode: enough to see seed-to-seed spread and to select on validation,
# few enough that the eight policies of a universe train in about an hour on two CPU cores.
SEEDS = (0, 1)
VARIANT_NAMES = tuple(f"{a}_{m}_seed{s}" for a in ALGORITHMS for m in REGIME_MODES for s in SEEDS)


def split_variant(variant: str) -> tuple[str, str, int]:
    """(algorithm, regime mode, seed) of a variant name such as 'ppo_aware_seed0'."""
    algorithm, mode, seed = variant.split("_")
    if algorithm not in ALGORITHMS or mode not in REGIME_MODES or not seed.startswith("seed"):
        raise ValueError(f"{variant!r} is not a variant name like 'ppo_aware_seed0'")
    return algorithm, mode, int(seed.removeprefix("seed"))
