"""The settings of the RL environment and training (seed 003's PPO and SAC hyper-parameters): plain
dataclasses, free of torch, stable-baselines3 and gymnasium, so that the Dagster definitions build their run
config from them without importing those (every run process loads the definitions). Re-exported by
environment.py and training.py, which use them."""

from __future__ import annotations

from dataclasses import dataclass, field

from quantlab_assets.compute.backtest.engine import BacktestParams
from quantlab_assets.compute.params import described
from quantlab_assets.compute.rl.constraints import WeightConstraints
from quantlab_assets.compute.rl.names import PPO as PPO_NAME
from quantlab_assets.compute.rl.reward import RewardParams


@dataclass(frozen=True)
class PpoParams:
    """Seed 003, configs/rl/ppo.yaml; policy and value networks separate MLPs [256, 256] with tanh."""

    learning_rate: float = described(3e-4, "PPO's Adam learning rate.")
    n_steps: int = described(2048, "Environment steps per PPO update.")
    batch_size: int = described(64, "PPO minibatch size.")
    n_epochs: int = described(10, "Passes over each rollout per update.")
    gamma: float = described(0.99, "Discount factor.")
    gae_lambda: float = described(0.95, "GAE lambda (bias-variance trade-off of the advantage).")
    clip_range: float = described(0.2, "PPO's clipping range of the probability ratio.")
    ent_coef: float = described(0.01, "Entropy bonus coefficient.")
    net_arch: tuple[int, ...] = (256, 256)


@dataclass(frozen=True)
class SacParams:
    """Seed 003, configs/rl/sac.yaml; SB3's default MLP [256, 256] (ReLU) for actor and critics."""

    learning_rate: float = described(3e-4, "SAC's Adam learning rate.")
    buffer_size: int = described(100_000, "Replay buffer capacity (transitions).")
    batch_size: int = described(256, "SAC minibatch size.")
    tau: float = described(0.005, "Soft update coefficient of the target networks.")
    gamma: float = described(0.99, "Discount factor.")
    train_freq: int = described(1, "Environment steps between updates.")
    gradient_steps: int = described(1, "Gradient steps per update.")
    learning_starts: int = described(
        1_000, "Random actions before the first update (SB3's default is 100; a year of days fills the buffer first).")
    net_arch: tuple[int, ...] = (256, 256)


@dataclass(frozen=True)
class TrainingParams:
    algorithm: str = PPO_NAME
    seed: int = 0
    # About 100 PPO updates of 2048 steps (about 800 one-year episodes); measured in docs/measurements.md.
    total_timesteps: int = 200_000
    eval_every: int = 20_000
    # The networks are small (a 256 x 256 MLP, batches of 64-256): thread hand-offs cost more than they save,
    # and on a busy 2-core machine SAC's smoke run took 54 s with 2 threads and 2.8 s with 1 (measured here).
    torch_threads: int | None = described(
        1, "Intra-op torch threads while training (1: small networks on a busy machine; None: torch's setting).")
    ppo: PpoParams = field(default_factory=PpoParams)
    sac: SacParams = field(default_factory=SacParams)


@dataclass(frozen=True)
class EnvParams:
    constraints: WeightConstraints = field(default_factory=WeightConstraints)
    reward: RewardParams = field(default_factory=RewardParams)
    backtest: BacktestParams = field(default_factory=BacktestParams)
    # Training episodes: this many days from a random start in the span (None: the whole span every time).
    episode_days: int | None = None
