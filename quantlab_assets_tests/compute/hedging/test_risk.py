"""CVaR, IRMv1 and V-REx against hand computations."""

import numpy as np
import pytest
import torch

from quantlab_assets.compute.hedging.risk import cvar, irmv1_penalty, var_index, vrex_penalty


@pytest.mark.parametrize(("n", "alpha", "expected"), [
    pytest.param(20, 0.95, 20.0, id="worst-one-of-20"),
    pytest.param(40, 0.95, 39.5, id="worst-two-of-40"),
    pytest.param(10, 0.95, 10.0, id="fractional-tail-is-the-max-atom"),
    pytest.param(4, 0.5, 3.5, id="worst-half"),
])
def test_cvar_of_losses_one_to_n_is_the_mean_of_the_worst_tail(n: int, alpha: float, expected: float) -> None:
    losses = torch.arange(n, 0, -1, dtype=torch.float64)  # unsorted on purpose
    assert cvar(losses, alpha).item() == pytest.approx(expected, abs=1e-12)


def test_cvar_is_the_minimum_of_the_rockafellar_uryasev_objective() -> None:
    losses = np.random.default_rng(0).standard_t(3, size=999)
    grid = np.linspace(losses.min(), losses.max(), 4001)
    objective = grid + np.maximum(losses[None, :] - grid[:, None], 0).mean(axis=1) / 0.05
    assert cvar(torch.as_tensor(losses), 0.95).item() == pytest.approx(objective.min(), rel=1e-3)
    assert var_index(20, 0.95) == 18


def test_irmv1_penalty_is_the_squared_gradient_in_the_dummy_scale() -> None:
    scale = torch.ones((), dtype=torch.float64, requires_grad=True)
    x, y = torch.tensor([1.0, 2.0], dtype=torch.float64), torch.tensor([1.0, 1.0], dtype=torch.float64)
    # d/dw mean((w x - y)^2) at w = 1 is 2 mean((x - y) x) = 2 * mean([0, 2]) = 2, squared: 4.
    assert irmv1_penalty(((scale * x - y) ** 2).mean(), scale).item() == pytest.approx(4.0)
    # CVaR is positively homogeneous, so d/dw CVaR(w L) = CVaR(L): the worst third of (1, 2, 3) is 3, squared 9.
    assert irmv1_penalty(cvar(scale * torch.tensor([1.0, 3.0, 2.0], dtype=torch.float64), 2 / 3), scale).item() == pytest.approx(9.0)


def test_irmv1_penalty_keeps_the_graph_so_it_trains_the_head() -> None:
    weight = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    scale = torch.ones((), dtype=torch.float64, requires_grad=True)
    penalty = irmv1_penalty((scale * weight - 1.0) ** 2, scale)  # gradient 2 (w - 1) w -> penalty 4 w^2 (w - 1)^2
    assert penalty.item() == pytest.approx(16.0)
    (gradient,) = torch.autograd.grad(penalty, weight)
    # d/dw 4 w^2 (w - 1)^2 = 8 w (w - 1)^2 + 8 w^2 (w - 1) = 16 + 32 at w = 2.
    assert gradient.item() == pytest.approx(48.0)


def test_vrex_penalty_is_the_population_variance_of_the_risks() -> None:
    assert vrex_penalty(torch.tensor([1.0, 3.0])).item() == pytest.approx(1.0)
    assert vrex_penalty(torch.tensor([2.0, 2.0, 2.0])).item() == 0.0
