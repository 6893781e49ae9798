"""The rollout's P&L by hand, training determinism, the frozen extractor, and the held-out guard."""

import dataclasses

import numpy as np
import polars as pl
import pytest
import torch

from quantlab_assets.compute.hedging.config import SMOKE, TRAIN
from quantlab_assets.compute.hedging.environments import EnvironmentPaths, simulate_environment
from quantlab_assets.compute.hedging.policy import EnvironmentTensors, load_policy, new_policy, rollout
from quantlab_assets.compute.hedging.training import HeldOutEnvironmentError, TrainedPolicy, train_policy

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def environments() -> dict[str, EnvironmentPaths]:
    return {name: simulate_environment(SMOKE, name) for name in ("low", "medium", "high", "crisis")}


@pytest.fixture(scope="module")
def erm(environments: dict[str, EnvironmentPaths]) -> TrainedPolicy:
    return train_policy(SMOKE, "erm", 0.0, 0, {n: environments[n] for n in TRAIN}, environments["high"], CPU)


def test_a_constant_delta_policy_earns_the_hand_computed_pnl() -> None:
    policy = new_policy(SMOKE)
    with torch.no_grad():
        policy.head.weight.zero_()
        policy.head.bias.fill_(0.0)  # delta = sigmoid(0) = 1/2 at every step
    spot = np.array([[100.0, 110.0, 121.0], [100.0, 90.0, 95.0]])
    cost = np.full_like(spot, 0.01)
    config = dataclasses.replace(SMOKE, n_steps=2)
    with torch.no_grad():
        result = rollout(policy, EnvironmentTensors.of(EnvironmentPaths("toy", spot, cost, 3.0), CPU), config)
    # premium - (S_T - K)^+ + 1/2 (S_T - S_0) - 0.01 * 1/2 * (S_0 + S_T): open and liquidation only.
    expected = [3.0 - 21.0 + 10.5 - 0.005 * 221.0, 3.0 - 0.0 - 2.5 - 0.005 * 195.0]
    np.testing.assert_allclose(result.pnl.numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(result.turnover.numpy(), [1.0, 1.0], rtol=1e-6)


def test_training_is_deterministic_under_a_fixed_seed(environments: dict[str, EnvironmentPaths], erm: TrainedPolicy) -> None:
    train = {n: environments[n] for n in TRAIN}
    again = train_policy(SMOKE, "erm", 0.0, 0, train, environments["high"], CPU)
    assert again.state == erm.state and again.history.equals(erm.history)
    other = train_policy(SMOKE, "erm", 0.0, 1, train, environments["high"], CPU)
    assert other.state != erm.state


def test_the_history_logs_the_early_diagnostics_at_every_evaluation(erm: TrainedPolicy) -> None:
    history = erm.history
    assert history["iteration"].to_list() == [0, 8, 16]
    assert history["msi_high"].is_between(0.0, 1.0, closed="right").all()
    trained = history.drop_nulls("risk_low")
    assert (trained["ig_train"] - (trained["risk_low"] - trained["risk_medium"]).abs()).abs().max() < 1e-9
    assert (trained["wg_train"] == trained.select(pl.max_horizontal("risk_low", "risk_medium")).to_series()).all()


def test_head_only_irm_leaves_the_erm_extractor_bit_identical(environments: dict[str, EnvironmentPaths],
                                                              erm: TrainedPolicy) -> None:
    config = dataclasses.replace(SMOKE, eval_every=1)  # keep a moved head: every step is a candidate checkpoint
    trained = train_policy(config, "irm_head", 1.0, 0, {n: environments[n] for n in TRAIN}, environments["high"], CPU,
                           erm_state=erm.state)
    before, after = load_policy(SMOKE, erm.state), load_policy(SMOKE, trained.state)
    for name, tensor in before.extractor.state_dict().items():
        assert torch.equal(tensor, after.extractor.state_dict()[name]), name
    assert (trained.history.drop_nulls("penalty")["penalty"] > 0).all()
    # The selected checkpoint is a trained one (deterministic under the seed), so the head did move.
    assert trained.best_iteration > 0
    assert not torch.equal(before.head.weight, after.head.weight)
    assert trained.erm_state_sha is not None


def test_crisis_cannot_enter_training_or_selection(environments: dict[str, EnvironmentPaths]) -> None:
    with pytest.raises(HeldOutEnvironmentError):
        train_policy(SMOKE, "erm", 0.0, 0, {"low": environments["low"], "medium": environments["crisis"]},
                     environments["high"], CPU)
    with pytest.raises(HeldOutEnvironmentError):
        train_policy(SMOKE, "erm", 0.0, 0, {n: environments[n] for n in TRAIN}, environments["crisis"], CPU)
    with pytest.raises(ValueError, match="erm_state"):
        train_policy(SMOKE, "irm_head", 0.1, 0, {n: environments[n] for n in TRAIN}, environments["high"], CPU)
