"""The differential Sharpe reward against values computed by hand from Moody & Saffell's definition."""

import math

import pytest

from quantlab_assets.compute.rl.reward import DifferentialSharpeReward, RewardParams


def test_differential_sharpe_matches_hand_computed_values() -> None:
    reward = DifferentialSharpeReward(RewardParams(eta=0.01))
    # Step 1: A = B = 0 -> degenerate denominator -> 0; then A = 0.0001, B = 0.000001.
    assert reward.differential_sharpe(0.01) == 0.0
    assert (reward.a, reward.b) == pytest.approx((1e-4, 1e-6))
    # Step 2, R = -0.02: dA = -0.0201, dB = 0.0004 - 1e-6 = 0.000399; B - A^2 = 1e-6 - 1e-8 = 9.9e-7.
    expected = (1e-6 * -0.0201 - 0.5 * 1e-4 * 0.000399) / (9.9e-7) ** 1.5
    assert reward.differential_sharpe(-0.02) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(-40.66, abs=0.01)
    assert (reward.a, reward.b) == pytest.approx((1e-4 - 0.000201, 1e-6 + 0.00000399))


def test_penalties_enter_with_the_seed_weights() -> None:
    params = RewardParams()
    reward = DifferentialSharpeReward(params)
    # First step: D = 0, so the reward is the penalties alone: 0.5 * 0.1 + 1.0 * 0.002 + 0.1 * (0.4 - 0.1).
    assert reward.step(0.01, cost=0.002, turnover=0.4, drawdown=0.1) == pytest.approx(-(0.05 + 0.002 + 0.03))
    reward.reset()
    # Turnover within the 10 % allowance and no drawdown: no penalty but the cost.
    assert reward.step(0.0, cost=0.0001, turnover=0.05, drawdown=0.0) == pytest.approx(-0.0001)


def test_a_steady_positive_return_stream_earns_positive_differential_sharpe() -> None:
    reward = DifferentialSharpeReward()
    values = [reward.differential_sharpe(0.001 + 0.01 * math.sin(k)) for k in range(300)]
    assert sum(values[50:]) > 0
    losing = DifferentialSharpeReward()
    assert sum(losing.differential_sharpe(-0.001 + 0.01 * math.sin(k)) for k in range(300)) < 0
