"""Training PPO and SAC (stable-baselines3) on the training span, with the checkpoint selected on validation.

Seed 003's hyper-parameters are the defaults. Every `eval_every` timesteps the deterministic policy walks
the whole validation span; the checkpoint with the best validation Sharpe (net of costs) is kept, and the
test span is never looked at here (the evaluation walks it once, with the kept checkpoint). Seeded: the
same seed, data and device give the same policy (SB3's seed sets python, numpy, torch and the env's RNG).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, replace

import numpy as np
import polars as pl
import torch
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback

from quantlab_assets.compute.rl.environment import EnvParams, PortfolioEnv
from quantlab_assets.compute.rl.episodes import annualised_sharpe, policy_episode, torch_threads
from quantlab_assets.compute.rl.names import PPO as PPO_NAME
from quantlab_assets.compute.rl.names import SAC as SAC_NAME
from quantlab_assets.compute.rl.panel import TRAIN, VALIDATION, ObservationPanel
from quantlab_assets.compute.rl.params import PpoParams, SacParams, TrainingParams  # noqa: F401 (re-exported)


@dataclass
class TrainedPolicy:
    model: BaseAlgorithm
    curve: pl.DataFrame  # timesteps, validation_sharpe, validation_total_return, train_episode_reward
    selected_timesteps: int
    seconds: float


def make_model(params: TrainingParams, env: PortfolioEnv, device: torch.device | str = "cpu") -> BaseAlgorithm:
    if params.algorithm == PPO_NAME:
        p = params.ppo
        return PPO("MlpPolicy", env, learning_rate=p.learning_rate, n_steps=p.n_steps, batch_size=p.batch_size,
                   n_epochs=p.n_epochs, gamma=p.gamma, gae_lambda=p.gae_lambda, clip_range=p.clip_range,
                   ent_coef=p.ent_coef, seed=params.seed, device=device, verbose=0,
                   policy_kwargs={"net_arch": {"pi": list(p.net_arch), "vf": list(p.net_arch)}, "activation_fn": torch.nn.Tanh})
    if params.algorithm == SAC_NAME:
        s = params.sac
        return SAC("MlpPolicy", env, learning_rate=s.learning_rate, buffer_size=s.buffer_size, batch_size=s.batch_size,
                   tau=s.tau, gamma=s.gamma, train_freq=s.train_freq, gradient_steps=s.gradient_steps,
                   learning_starts=s.learning_starts, seed=params.seed, device=device, verbose=0,
                   policy_kwargs={"net_arch": list(s.net_arch)})
    raise ValueError(f"unknown algorithm {params.algorithm!r}")


class _SelectOnValidation(BaseCallback):
    """Walks the validation span every `every` timesteps and keeps the policy weights of the best Sharpe."""

    def __init__(self, validation_env: PortfolioEnv, every: int) -> None:
        super().__init__()
        self.validation_env, self.every = validation_env, every
        self.rows: list[dict[str, float | int | None]] = []
        self.best: tuple[float, int, dict] | None = None
        self.next_at = every

    def evaluate(self) -> None:
        episode = policy_episode(self.model, self.validation_env)
        sharpe = annualised_sharpe(episode.net_return, self.validation_env.panel)
        rewards = [info["r"] for info in self.model.ep_info_buffer] if self.model.ep_info_buffer else []
        self.rows.append({"timesteps": self.num_timesteps, "validation_sharpe": sharpe,
                          "validation_total_return": float(np.prod(1.0 + episode.net_return) - 1.0),
                          "train_episode_reward": float(np.mean(rewards)) if rewards else None})
        score = -math.inf if sharpe is None else sharpe
        if self.best is None or score > self.best[0]:
            self.best = (score, self.num_timesteps, copy.deepcopy(self.model.policy.state_dict()))

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.next_at:
            self.evaluate()
            self.next_at += self.every
        return True


def train_policy(panel: ObservationPanel, spans: dict[str, tuple[int, int]], params: TrainingParams,
                 env_params: EnvParams = EnvParams(), device: torch.device | str = "cpu") -> TrainedPolicy:
    """Train on spans['train'] (episodes of env_params.episode_days), select on spans['validation']."""
    with torch_threads(params.torch_threads):
        return _train(panel, spans, params, env_params, device)


def _train(panel: ObservationPanel, spans: dict[str, tuple[int, int]], params: TrainingParams, env_params: EnvParams,
           device: torch.device | str) -> TrainedPolicy:
    start = time.perf_counter()
    train_env = PortfolioEnv(panel, *spans[TRAIN], env_params)
    validation_env = PortfolioEnv(panel, *spans[VALIDATION], replace(env_params, episode_days=None))
    model = make_model(params, train_env, device)
    selection = _SelectOnValidation(validation_env, params.eval_every)
    model.learn(total_timesteps=params.total_timesteps, callback=selection)
    if not selection.rows or selection.rows[-1]["timesteps"] != model.num_timesteps:
        selection.num_timesteps = model.num_timesteps
        selection.evaluate()
    _, selected_at, state = selection.best
    model.policy.load_state_dict(state)
    curve = pl.DataFrame(selection.rows, schema={"timesteps": pl.Int64, "validation_sharpe": pl.Float64,
                                                 "validation_total_return": pl.Float64, "train_episode_reward": pl.Float64})
    return TrainedPolicy(model=model, curve=curve, selected_timesteps=selected_at, seconds=time.perf_counter() - start)
