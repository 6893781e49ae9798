"""WeightConstraints map any action to valid weights; the shared cap-and-fill keeps the cap exactly."""

import numpy as np
import pytest

from quantlab_assets.compute.portfolio.constraints import cap_and_fill
from quantlab_assets.compute.rl.constraints import WeightConstraints


def test_cap_and_fill_caps_exactly_and_never_revives_a_zero() -> None:
    weights = cap_and_fill(np.array([0.5, 0.3, 0.1, 0.1, 0.0, 0.0]), 0.3)
    # 0.5 and 0.3 sit at the cap; 0.1 / 0.1 fill the remaining 0.4; the zeros stay zero.
    np.testing.assert_allclose(weights, [0.3, 0.3, 0.2, 0.2, 0.0, 0.0])
    uncapped_cash = cap_and_fill(np.array([0.6, 0.1, 0.05]), np.array([0.2, 0.2, np.inf]))
    np.testing.assert_allclose(uncapped_cash, [0.2, 0.2, 0.6])


@pytest.mark.parametrize("seed", range(20))
def test_any_action_becomes_valid_weights(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 60))
    constraints = WeightConstraints()
    eligible = rng.random(n) < 0.8
    weights = constraints.normalize(rng.uniform(-1, 1, n + 1) * rng.choice([0.1, 1.0, 3.0]), eligible)
    assert constraints.violations(weights) == []
    assert (weights[:-1][~eligible] == 0).all() and weights[-1] > 0


def test_a_concentrated_action_fills_the_cap_and_the_rest_goes_to_cash_or_other_names() -> None:
    constraints = WeightConstraints()
    action = np.full(11, -1.0)
    action[0] = 1.0  # one name wanted, cash and the others at the bottom
    weights = constraints.normalize(action, np.ones(10, dtype=bool))
    # softmax: e^10 / (e^10 + 10 e^-10) ~ 1 on A0 -> capped at 20 %; the rest (tiny) zeroed; cash takes 80 %.
    assert weights[0] == pytest.approx(0.2) and weights[-1] == pytest.approx(0.8)
    assert (weights[1:-1] == 0).all()


def test_tiny_positions_are_zeroed_but_cash_never_is() -> None:
    constraints = WeightConstraints()
    action = np.zeros(51)
    action[-1] = -1.0  # cash lowest: softmax ~ 1/50 each name (~2 %) and e^-5/50 on cash
    weights = constraints.normalize(action, np.ones(50, dtype=bool))
    assert weights[-1] > 0 and constraints.violations(weights) == []
    nothing_eligible = constraints.normalize(np.ones(4), np.zeros(3, dtype=bool))
    np.testing.assert_array_equal(nothing_eligible, [0, 0, 0, 1])


def test_violations_name_what_is_wrong() -> None:
    problems = WeightConstraints().violations(np.array([0.3, 0.01, 0.5, 0.19]))
    assert any("above 20%" in p for p in problems) and any("under 2%" in p for p in problems)
