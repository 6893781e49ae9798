"""A smoke configuration trains PPO and SAC in seconds, deterministically under a seed, selects its checkpoint on
validation, and the evaluation puts the policies beside the baselines with paired intervals."""

import dataclasses

import numpy as np
import polars as pl
import pytest

from quantlab_assets.compute.backtest.metrics import MetricParams
from quantlab_assets.compute.rl.environment import EnvParams, PortfolioEnv
from quantlab_assets.compute.rl.evaluation import EvaluationParams, evaluate_policies, paired_sharpe_difference
from quantlab_assets.compute.rl.panel import SPANS, forecast_tickers, span_dates
from quantlab_assets.compute.rl.episodes import episode_weights, policy_episode
from quantlab_assets.compute.rl.training import PpoParams, SacParams, TrainedPolicy, TrainingParams, train_policy
from quantlab_assets_tests.compute.rl.conftest import SmallMarket

SMOKE = {
    "ppo": TrainingParams(algorithm="ppo", total_timesteps=128, eval_every=64,
                          ppo=PpoParams(n_steps=64, batch_size=32, n_epochs=2, net_arch=(32, 32))),
    "sac": TrainingParams(algorithm="sac", total_timesteps=96, eval_every=48,
                          sac=SacParams(batch_size=32, learning_starts=32, net_arch=(32, 32))),
}
ENV = EnvParams(episode_days=60)


@pytest.fixture(scope="module")
def trained(market: SmallMarket) -> dict[str, TrainedPolicy]:
    panel = market.panel()
    return {name: train_policy(panel, market.spans, params, ENV) for name, params in SMOKE.items()}


def _validation_targets(policy: TrainedPolicy, market: SmallMarket) -> np.ndarray:
    return policy_episode(policy.model, PortfolioEnv(market.panel(), *market.spans["validation"])).targets


@pytest.mark.parametrize("algorithm", ["ppo", "sac"])
def test_smoke_training_is_deterministic_under_a_seed(trained: dict[str, TrainedPolicy], market: SmallMarket, algorithm: str) -> None:
    again = train_policy(market.panel(), market.spans, SMOKE[algorithm], ENV)
    first = _validation_targets(trained[algorithm], market)
    np.testing.assert_array_equal(first, _validation_targets(again, market))
    other_seed = train_policy(market.panel(), market.spans, dataclasses.replace(SMOKE[algorithm], seed=1), ENV)
    assert not np.array_equal(first, _validation_targets(other_seed, market))


@pytest.mark.parametrize("algorithm", ["ppo", "sac"])
def test_the_kept_checkpoint_is_the_best_on_validation(trained: dict[str, TrainedPolicy], market: SmallMarket, algorithm: str) -> None:
    policy = trained[algorithm]
    curve = policy.curve
    assert curve["timesteps"].to_list() == [SMOKE[algorithm].eval_every, SMOKE[algorithm].total_timesteps]
    best = curve.sort(pl.col("validation_sharpe").fill_null(-np.inf), descending=True).row(0, named=True)
    assert policy.selected_timesteps == best["timesteps"]
    episode = policy_episode(policy.model, PortfolioEnv(market.panel(), *market.spans["validation"]))
    dates = market.panel().dates
    periods = (dates.len() - 1) / ((dates.max() - dates.min()).days / 365.25)  # the panel's sessions a year
    sharpe = episode.net_return.mean() / episode.net_return.std(ddof=1) * np.sqrt(periods)
    assert sharpe == pytest.approx(best["validation_sharpe"], rel=1e-9)


def test_the_evaluation_compares_policies_with_baselines_on_every_span(trained: dict[str, TrainedPolicy], market: SmallMarket) -> None:
    panel = market.panel()
    weights = {}
    for variant, algorithm in (("ppo_aware_seed0", "ppo"), ("sac_aware_seed0", "sac")):
        frames = [episode_weights(policy_episode(trained[algorithm].model, PortfolioEnv(panel, *market.spans[s])), panel, s)
                  for s in SPANS]
        weights[variant] = pl.concat(frames)
    params = EvaluationParams(metrics=MetricParams(bootstrap_reps=100))
    result = evaluate_policies(weights, market.alpha, market.returns, span_dates(market.dates, market.spans),
                               forecast_tickers(market.alpha, market.dates), params)
    metrics = result.metrics
    assert metrics.height == (2 + 3) * 3
    assert set(metrics["strategy"]) == {"ppo_aware_seed0", "sac_aware_seed0", "equal_weight", "top_n_equal", "buy_and_hold_benchmark"}
    assert (metrics["n_trials"] == 5).all()
    rl = metrics.filter(pl.col("kind") == "rl")
    assert rl["selected"].all() and rl["beats_equal_weight_on_train"].is_not_null().all()
    defined = metrics.filter(pl.col("sharpe").is_not_null())
    assert (defined["sharpe_ci_low"] <= defined["sharpe"]).all() and (defined["sharpe"] <= defined["sharpe_ci_high"]).all()
    assert [row["strategy"] for row in result.verdict] == ["ppo_aware_seed0", "sac_aware_seed0"]
    # The forecast knows part of the next days' returns: top-N on it beats equal weight on every span.
    top = metrics.filter(pl.col("strategy") == "top_n_equal")
    assert (top["sharpe_minus_equal_weight"] > 0).all()


def test_the_paired_sharpe_difference_is_zero_for_a_series_against_itself_and_signed_otherwise() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(0.001, 0.01, 500)
    params = MetricParams(bootstrap_reps=200)
    assert paired_sharpe_difference(a, a, params, 252.0) == (0.0, 0.0, 0.0)
    diff, low, high = paired_sharpe_difference(a + 0.002, a, params, 252.0)
    assert diff > 0 and 0 < low <= diff <= high
    assert paired_sharpe_difference(np.zeros(500), a, params, 252.0) == (None, None, None)
