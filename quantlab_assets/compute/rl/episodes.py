"""A policy's deterministic walk of a span, as the engine's target weights, and the engine's check of its P&L."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
import polars as pl
import torch
from stable_baselines3.common.base_class import BaseAlgorithm

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.backtest.engine import SIGNAL_DATE, WEIGHT, run_backtest
from quantlab_assets.compute.backtest.metrics import periods_per_year, sharpe_ratio
from quantlab_assets.compute.rl.environment import EnvParams, PortfolioEnv
from quantlab_assets.compute.rl.panel import SPAN, SPANS, ObservationPanel  # noqa: F401 (SPAN re-exported)


@dataclass(frozen=True)
class Episode:
    """One deterministic walk of a span: decisions at bars first .. last-1; the returns of bars first+1 .. last."""

    decision_bars: np.ndarray  # (K,)
    targets: np.ndarray  # (K, N + 1), cash last
    gross_return: np.ndarray  # (K,)
    cost: np.ndarray
    net_return: np.ndarray
    turnover: np.ndarray
    total_reward: float


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to n inside the block, restored after it."""
    previous = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def run_episode(env: PortfolioEnv, act: Callable[[np.ndarray], np.ndarray]) -> Episode:
    """Walk the env's span from its start (episode_days must be None) with the given action function."""
    observation, _ = env.reset(seed=0)
    rows, total, done = [], 0.0, False
    while not done:
        observation, reward, done, _, info = env.step(act(observation))
        rows.append(info)
        total += reward
    return Episode(
        decision_bars=np.array([r["decided"] for r in rows]), targets=np.stack([r["target"] for r in rows]),
        gross_return=np.array([r["gross_return"] for r in rows]), cost=np.array([r["cost"] for r in rows]),
        net_return=np.array([r["net_return"] for r in rows]), turnover=np.array([r["turnover"] for r in rows]),
        total_reward=total,
    )


def policy_episode(model: BaseAlgorithm, env: PortfolioEnv) -> Episode:
    """The deterministic policy's walk of the env's span. One observation at a time: single-threaded torch (a
    tanh of 256 values took 11 ms with 2 threads on the busy 2-core machine, against microseconds)."""
    with torch_threads(1):
        return run_episode(env, lambda observation: model.predict(observation, deterministic=True)[0])


def annualised_sharpe(net_return: np.ndarray, panel: ObservationPanel) -> float | None:
    """Sharpe of an episode's net returns, annualised with the periods per year of the panel's dates."""
    sharpe = sharpe_ratio(net_return)
    return None if sharpe is None else sharpe * math.sqrt(periods_per_year(panel.dates))


def episode_weights(episode: Episode, panel: ObservationPanel, span: str) -> pl.DataFrame:
    """The episode's targets as the engine's target weights: date (decision), ticker, weight, signal_date, span.

    Non-zero asset weights only, plus one explicit zero on an all-cash decision date (a date must appear to be
    a decision: the engine then sells everything)."""
    dates = panel.dates.gather(episode.decision_bars)
    assets = episode.targets[:, :-1]
    day, asset = np.nonzero(assets)
    cash_days = np.flatnonzero(~(assets > 0).any(axis=1))
    held = pl.DataFrame({c.DATE: dates.gather(day), c.TICKER: pl.Series(panel.tickers).gather(asset),
                         WEIGHT: assets[day, asset]})
    closed = pl.DataFrame({c.DATE: dates.gather(cash_days),
                           c.TICKER: pl.Series([panel.tickers[0]] * cash_days.size, dtype=pl.String),
                           WEIGHT: np.zeros(cash_days.size)})
    return pl.concat([held, closed]).sort(c.DATE, c.TICKER).with_columns(
        pl.col(c.DATE).alias(SIGNAL_DATE), pl.lit(span).alias(SPAN))


@dataclass(frozen=True)
class SpanWalks:
    weights: pl.DataFrame  # date, ticker, weight, signal_date, span: every span's episode
    problems: list[str]  # constraint violations and decisions outside their span
    engine_difference: float  # largest |env net return - run_backtest net return| over every day of every span
    summary: dict[str, dict[str, float | None]]  # span -> sharpe, total_return, mean_turnover, total_reward


def walk_spans(model: BaseAlgorithm, panel: ObservationPanel, spans: dict[str, tuple[int, int]], returns: pl.DataFrame,
               env_params: EnvParams) -> SpanWalks:
    """The policy's episode on each span (whole span, from cash), restated by run_backtest on the same targets."""
    params = replace(env_params, episode_days=None)
    frames, problems, difference, summary = [], [], 0.0, {}
    for span in SPANS:
        episode = policy_episode(model, PortfolioEnv(panel, *spans[span], params))
        problems += [f"{span}: {p}" for p in params.constraints.violations(episode.targets)]
        weights = episode_weights(episode, panel, span)
        first, last = (panel.dates[i] for i in spans[span])
        if not weights[c.DATE].is_between(first, last).all():
            problems.append(f"{span}: decisions outside {first}..{last}")
        in_span = pl.col(c.DATE).is_between(first, last) & pl.col(c.TICKER).is_in(panel.tickers)
        net = run_backtest(returns.filter(in_span), weights.drop(SPAN), params.backtest).daily["net_return"].to_numpy()
        difference = max(difference, float(np.abs(net[1:] - episode.net_return).max()), abs(float(net[0])))
        summary[span] = {"sharpe": annualised_sharpe(episode.net_return, panel),
                         "total_return": float(np.prod(1.0 + episode.net_return) - 1.0),
                         "mean_turnover": float(episode.turnover.mean()), "total_reward": episode.total_reward}
        frames.append(weights)
    return SpanWalks(pl.concat(frames), problems, difference, summary)
