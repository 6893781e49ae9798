"""The TFT's blocks: selection weights and attention are distributions, the window's last step is the
query, the selection finds the one informative feature, and its interpretation of trained folds sums to 1."""

from __future__ import annotations

import pytest
import torch

from quantlab_assets.compute.torch_runtime.device import seed_everything
from quantlab_assets.compute.torch_runtime.tft import GatedResidualNetwork, TftConfig, VariableGRNs
from quantlab_assets.compute.torch_runtime.transformer import multitask_loss

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CONFIG = TftConfig(n_features=5, d_model=8, n_heads=2, dropout=0.0, seq_len=12)


def test_selection_weights_and_attention_are_distributions_and_heads_have_the_forecaster_outputs() -> None:
    seed_everything(0, deterministic=True)
    outputs = CONFIG.build()(torch.randn(7, CONFIG.seq_len, CONFIG.n_features))
    assert outputs["variable_weights"].shape == (7, CONFIG.seq_len, CONFIG.n_features)
    torch.testing.assert_close(outputs["variable_weights"].sum(-1), torch.ones(7, CONFIG.seq_len))
    assert outputs["attention"].shape == (7, CONFIG.seq_len)
    torch.testing.assert_close(outputs["attention"].sum(-1), torch.ones(7))
    assert outputs["mean"].shape == outputs["volatility"].shape == (7,) and outputs["direction_logits"].shape == (7, 3)
    assert bool((outputs["volatility"] > 0).all())


def test_variable_grns_are_independent_per_variable() -> None:
    """Stacked weights must not mix variables: changing variable 2's input changes only its output."""
    seed_everything(0, deterministic=True)
    grns = VariableGRNs(4, 6, dropout=0.0)
    a = torch.randn(3, 4, 6)
    b = a.clone()
    b[:, 2] += 1.0
    changed = (grns(a) - grns(b)).abs().amax(dim=(0, 2))
    assert changed[2] > 0 and bool((changed[[0, 1, 3]] == 0).all())


def test_grn_matches_its_formula() -> None:
    seed_everything(1, deterministic=True)
    grn = GatedResidualNetwork(3, 4, 5, dropout=0.0)
    a = torch.randn(2, 3)
    eta = grn.output(torch.nn.functional.elu(grn.hidden(a)))
    expected = torch.nn.functional.layer_norm(grn.skip(a) + eta[:, :5] * torch.sigmoid(eta[:, 5:]), (5,),
                                              grn.norm.weight, grn.norm.bias)
    torch.testing.assert_close(grn(a), expected)


def test_the_forecast_does_not_depend_on_anything_but_the_window() -> None:
    """Batch composition must not leak between windows (no batch-wise normalisation)."""
    seed_everything(2, deterministic=True)
    model = CONFIG.build().eval()
    windows = torch.randn(6, CONFIG.seq_len, CONFIG.n_features)
    alone = model(windows[:1])["mean"]
    together = model(windows)["mean"][:1]
    torch.testing.assert_close(alone, together)


def test_variable_selection_learns_to_weight_the_one_informative_feature() -> None:
    seed_everything(3, deterministic=True)
    generator = torch.Generator().manual_seed(3)
    windows = torch.randn(512, CONFIG.seq_len, CONFIG.n_features, generator=generator)
    target = 0.05 * windows[:, -3:, 2].mean(dim=1)  # only feature 2 carries the forward return
    model = CONFIG.build()
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(150):
        batch = torch.arange(step * 64, step * 64 + 64) % windows.shape[0]
        loss = multitask_loss(model(windows[batch]), target[batch], CONFIG)["loss"]
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        importance = model.eval()(windows)["variable_weights"].mean(dim=(0, 1))
    assert int(importance.argmax()) == 2, importance
