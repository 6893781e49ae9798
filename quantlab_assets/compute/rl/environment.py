"""Seed 003's PortfolioEnv: one step = one trading day, on the backtest engine's execution model.

At step t (the close of bar t) the agent sees the observation of date t and its end-of-day weights, and
chooses target weights (N assets + cash, through WeightConstraints). The order is traded at the close of
bar t + delay (BacktestParams.delay, 1 by default). The step then advances to bar t + 1: the book earns
day t+1's returns and drifts; if an order falls due at that close, the drifted book is traded to its
target and pays cost_rate x sum |target - drifted| (10 + 5 + 5 bp by default). The day's net return is
(1 + gross)(1 - cost) - 1, exactly the engine's accounting (compute/backtest/engine.py, vectorised there,
sequential here because each action depends on the state): an episode's daily net returns equal
run_backtest's on the same targets (tested, and checked on every trained policy). Episodes start in cash.

Observation (float32, flat): per asset its features (forecast z-scores [, embeddings]) and eligibility, then
the current weights (N + 1, cash last), then the market features (regime one-hot; none when regime-blind).
"""

from __future__ import annotations

from collections import deque

import gymnasium as gym
import numpy as np

from quantlab_assets.compute.rl.panel import ObservationPanel
from quantlab_assets.compute.rl.params import EnvParams
from quantlab_assets.compute.rl.reward import DifferentialSharpeReward


class PortfolioEnv(gym.Env):
    """The bars first..last (inclusive) of a panel; decisions on first .. last - 1."""

    metadata = {"render_modes": []}

    def __init__(self, panel: ObservationPanel, first: int, last: int, params: EnvParams = EnvParams()) -> None:
        if not 0 <= first < last < panel.dates.len():
            raise ValueError(f"span {first}..{last} is not inside the panel's {panel.dates.len()} dates")
        self.panel, self.first, self.last, self.params = panel, first, last, params
        self.n_assets = panel.n_assets
        self.cost_rate = params.backtest.costs.rate
        self.delay = params.backtest.delay
        # The engine's rule (simulate): a non-finite or <= -100 % return would poison the book silently here.
        returns = panel.returns[first:last + 1]
        if not np.isfinite(returns).all() or (returns <= -1.0).any():
            raise ValueError("returns must be finite and > -100 % (a missing bar is a 0 return)")
        if self.delay < 1:
            raise ValueError("the execution delay must be at least one bar (a decision at t cannot trade before t's close)")
        per_asset = panel.asset_features.shape[-1] + 1
        self.observation_dim = self.n_assets * per_asset + self.n_assets + 1 + panel.market_features.shape[-1]
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(self.observation_dim,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(self.n_assets + 1,), dtype=np.float32)
        self.reward_fn = DifferentialSharpeReward(params.reward)
        self._reset_state(first, last)

    def _reset_state(self, start: int, end: int) -> None:
        self.t, self.end = start, end
        self.weights = np.zeros(self.n_assets + 1)
        self.weights[-1] = 1.0
        self.pending: deque[tuple[int, np.ndarray]] = deque()
        self.equity, self.peak = 1.0, 1.0
        self.reward_fn.reset()

    def _observation(self) -> np.ndarray:
        t = self.t
        per_asset = np.concatenate([self.panel.asset_features[t], self.panel.eligible[t, :, None]], axis=1)
        return np.concatenate([per_asset.ravel(), self.weights, self.panel.market_features[t]]).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        days = self.params.episode_days
        if days is not None and days < self.last - self.first:
            start = int(self.np_random.integers(self.first, self.last - days + 1))
            self._reset_state(start, start + days)
        else:
            self._reset_state(self.first, self.last)
        return self._observation(), {"bar": self.t}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        target = self.params.constraints.normalize(action, self.panel.eligible[self.t])
        decided = self.t
        self.pending.append((decided + self.delay, target))
        self.t += 1
        r = self.panel.returns[self.t]
        holdings = self.weights[:-1]
        gross = float(holdings @ r)
        drifted = np.append(holdings * (1.0 + r), self.weights[-1]) / (1.0 + gross)
        turnover = 0.0
        if self.pending and self.pending[0][0] == self.t:
            _, due = self.pending.popleft()
            turnover = float(np.abs(due[:-1] - drifted[:-1]).sum())
            self.weights = due
        else:
            self.weights = drifted
        cost = turnover * self.cost_rate
        net = (1.0 + gross) * (1.0 - cost) - 1.0
        self.equity *= 1.0 + net
        self.peak = max(self.peak, self.equity)
        drawdown = 1.0 - self.equity / self.peak
        reward = self.reward_fn.step(net, cost, turnover, drawdown)
        terminated = self.t >= self.end
        info = {"bar": self.t, "decided": decided, "target": target, "gross_return": gross, "cost": cost,
                "net_return": net, "turnover": turnover, "drawdown": drawdown}
        return self._observation(), float(reward), terminated, False, info
