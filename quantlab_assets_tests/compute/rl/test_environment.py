"""PortfolioEnv: the gymnasium and stable-baselines3 API checks, and an episode's P&L equal to the backtest
engine's on the same targets (so RL results and backtests are comparable)."""

import numpy as np
import polars as pl
import pytest
from gymnasium.utils.env_checker import check_env as gymnasium_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.backtest.engine import BacktestParams, CostParams, run_backtest
from quantlab_assets.compute.rl.environment import EnvParams, PortfolioEnv
from quantlab_assets.compute.rl.episodes import SPAN, episode_weights, run_episode
from quantlab_assets_tests.compute.rl.conftest import SmallMarket


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("use_regime", [True, False], ids=["aware", "blind"])
def test_the_env_passes_gymnasium_and_sb3_checks(market: SmallMarket, use_regime: bool) -> None:
    panel = market.panel(use_regime=use_regime)
    env = PortfolioEnv(panel, *market.spans["train"], EnvParams(episode_days=60))
    gymnasium_check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=False)
    observation, _ = env.reset(seed=1)
    assert observation.shape == (panel.n_assets * 2 + panel.n_assets + 1 + (5 if use_regime else 0),)
    # The current weights sit in the observation: all cash at the start.
    weights = observation[panel.n_assets * 2: panel.n_assets * 3 + 1]
    np.testing.assert_array_equal(weights, [0.0] * panel.n_assets + [1.0])


@pytest.mark.parametrize("delay", [1, 2], ids=["delay1", "delay2"])
def test_an_episode_earns_exactly_what_the_backtest_engine_earns_on_its_targets(market: SmallMarket, delay: int) -> None:
    panel = market.panel()
    first, last = market.spans["validation"]
    params = EnvParams(backtest=BacktestParams(costs=CostParams(), delay=delay))
    env = PortfolioEnv(panel, first, last, params)
    rng = np.random.default_rng(3)
    episode = run_episode(env, lambda _: rng.uniform(-1, 1, panel.n_assets + 1))
    assert episode.cost.sum() > 0 and episode.turnover.max() > 0.1
    weights = episode_weights(episode, panel, "validation").drop(SPAN)
    span = market.dates.slice(first, last - first + 1)
    returns = market.returns.filter(pl.col(c.DATE).is_in(span.implode()))
    daily = run_backtest(returns, weights, params.backtest).daily
    net = daily["net_return"].to_numpy()
    assert net[0] == 0.0
    np.testing.assert_allclose(net[1:], episode.net_return, rtol=0, atol=1e-13)
    np.testing.assert_allclose(daily["cost"].to_numpy()[1:], episode.cost, rtol=0, atol=1e-15)
    equity = np.prod(1.0 + episode.net_return)
    assert daily["equity"][-1] == pytest.approx(equity, rel=1e-12)


def test_training_episodes_start_at_seeded_random_days_and_last_episode_days(market: SmallMarket) -> None:
    env = PortfolioEnv(market.panel(), *market.spans["train"], EnvParams(episode_days=40))
    starts = [env.reset(seed=s)[1]["bar"] for s in (1, 2, 1)]
    assert starts[0] == starts[2] and len(set(starts)) == 2
    steps, done = 0, False
    while not done:
        _, _, done, _, _ = env.step(env.action_space.sample())
        steps += 1
    assert steps == 40


def test_an_all_cash_policy_is_explicit_zero_weights_and_earns_nothing(market: SmallMarket) -> None:
    panel = market.panel()
    first, last = market.spans["test"]
    cash_only = np.full(panel.n_assets + 1, -1.0)
    cash_only[-1] = 1.0
    episode = run_episode(PortfolioEnv(panel, first, last), lambda _: cash_only)
    weights = episode_weights(episode, panel, "test")
    assert weights.height == last - first and (weights["weight"] == 0).all()
    assert (episode.net_return == 0).all() and episode.cost.sum() == 0


def test_the_env_refuses_returns_the_engine_would_refuse(market: SmallMarket) -> None:
    panel = market.panel()
    panel.returns[market.spans["train"][0] + 3, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        PortfolioEnv(panel, *market.spans["train"])
