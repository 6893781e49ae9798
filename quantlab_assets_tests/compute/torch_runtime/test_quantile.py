"""Seed 001's quantile forecaster: the losses against hand-computed values, the date-grouped batches, the
collapse mechanism at the gradient, and a tiny out-of-fold run (healthy passes, collapsed fails,
scorecard IC null, bit-identical when repeated)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
import torch
from polars.testing import assert_frame_equal

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.models import cv
from quantlab_assets.compute.torch_runtime.device import choose_device
from quantlab_assets.compute.torch_runtime.quantile import (
    HORIZONS,
    DateBatches,
    QuantileConfig,
    QuantileForecaster,
    grouped_correlation,
    grouped_ranks,
    pinball_loss,
    quantile_loss,
)
from quantlab_assets.compute.torch_runtime.quantile_training import (
    QuantileTrainingConfig,
    cross_sectional_targets,
    fit_oof_quantile,
    quantile_collapse_problems,
    quantile_forecast_problems,
    quantile_scorecard,
    target_column,
)
from quantlab_assets.compute.torch_runtime.windows import WindowPanel, build_window_panel

INSTRUMENTS, DAYS, FEATURES, SEQ_LEN = 16, 150, 3, 6
DATES = [dt.date(2020, 1, 1) + dt.timedelta(days=k) for k in range(DAYS)]
TINY = {"n_features": FEATURES, "d_model": 8, "n_heads": 2, "n_layers": 1, "dim_ff": 16, "seq_len": SEQ_LEN, "head_hidden": 8}
TRAINING = QuantileTrainingConfig(dates_per_batch=20, max_epochs=2, patience=2, warmup_epochs=1)


def test_pinball_loss_equals_the_hand_computed_value() -> None:
    # q = 0.1 / 0.5 / 0.9 at -1 / 0 / 2. Target 1: errors 2, 1, -1 -> 0.2, 0.5, 0.1. Target -2: errors
    # -1, -2, -4 -> 0.9, 1.0, 0.4. Mean of the six: 3.1 / 6.
    quantiles = torch.tensor([[[-1.0, 0.0, 2.0]], [[-1.0, 0.0, 2.0]]])
    assert float(pinball_loss(quantiles, torch.tensor([[1.0], [-2.0]]))) == pytest.approx(3.1 / 6, abs=1e-7)


def test_grouped_correlation_and_ranks_equal_numpy_per_date() -> None:
    rng = np.random.default_rng(3)
    groups = torch.tensor([0, 0, 0, 0, 1, 1, 1, 2, 2])  # date 2 has 2 rows: no correlation
    x, y = torch.tensor(rng.normal(size=(9, 2))), torch.tensor(rng.normal(size=(9, 2)))
    correlation, valid = grouped_correlation(x, y, groups)
    ranks = grouped_ranks(y, groups)
    assert valid.tolist() == [True, True, False]
    for g in (0, 1):
        rows = (groups == g).numpy()
        for k in range(2):
            assert float(correlation[g, k]) == pytest.approx(np.corrcoef(x[rows, k], y[rows, k])[0, 1], abs=1e-6)
            np.testing.assert_array_equal(ranks[rows, k].numpy(), np.argsort(np.argsort(y[rows, k].numpy())))


def test_quantiles_never_cross() -> None:
    torch.manual_seed(0)
    quantiles = QuantileForecaster(QuantileConfig(**TINY))(torch.randn(64, SEQ_LEN, FEATURES))["quantiles"]
    assert quantiles.shape == (64, len(HORIZONS), 3) and bool((quantiles.diff(dim=-1) > 0).all())


def test_date_batches_hold_whole_dates_each_window_once_reshuffled_per_epoch() -> None:
    last_days = np.repeat(np.arange(10), 3)[np.random.default_rng(1).permutation(30)]
    sampler = DateBatches(last_days, dates_per_batch=4, seed=7)
    first = list(sampler)
    sampler.set_epoch(1)
    second = list(sampler)
    for batches in (first, second):
        assert sorted(i for b in batches for i in b) == list(range(30)) and len(batches) == len(sampler) == 3
        dates = [set(last_days[b]) for b in batches]
        assert all(len(d) <= 4 for d in dates) and sum(len(d) for d in dates) == 10  # no date split
    assert first != second and first == list(DateBatches(last_days, 4, seed=7))
    assert [sorted(set(last_days[b])) for b in DateBatches(last_days, 4, seed=None)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


@pytest.mark.parametrize("weights", [{}, {"weight_rank_ic": 5.0, "weight_ic": 2.5, "weight_variance": 10.0}], ids=["seed", "10x aux"])
def test_zero_initialised_heads_pass_no_gradient_to_their_weights_or_the_encoder(weights: dict[str, float]) -> None:
    """The collapse's mechanism: whatever the aux weights, only the output biases receive a gradient."""
    torch.manual_seed(0)
    windows, targets = torch.randn(40, SEQ_LEN, FEATURES), torch.randn(40, len(HORIZONS))
    groups = torch.arange(40) // 10
    for init in ("zero", "default"):
        config = QuantileConfig(**TINY, head_init=init, **weights)
        model = QuantileForecaster(config)
        quantile_loss(model(windows), targets, groups, config)["loss"].backward()
        head_weights = [p.grad for h in model.heads().values() for n, p in h.named_parameters() if n.endswith("weight")]
        output_biases = [h[2].bias.grad for h in model.heads().values()]
        encoder = [p.grad for p in model.backbone.parameters() if p.grad is not None]
        dead = init == "zero"
        assert all(bool((g == 0).all()) == dead for g in head_weights)
        assert all(bool((g == 0).all()) == dead for g in encoder) and len(encoder) > 0
        assert all(bool(g.abs().sum() > 0) for g in output_biases)  # the constant still learns


def test_zeroing_only_the_output_layer_does_not_collapse() -> None:
    """The control: with the hidden layer at torch's init its activations differ across windows, so the
    zero output weights get a gradient at once; the collapse needs both layers at zero."""
    torch.manual_seed(0)
    config = QuantileConfig(**TINY)
    model = QuantileForecaster(config)
    for head in model.heads().values():
        torch.nn.init.zeros_(head[2].weight)
        torch.nn.init.zeros_(head[2].bias)
    quantile_loss(model(torch.randn(40, SEQ_LEN, FEATURES)), torch.randn(40, len(HORIZONS)), torch.arange(40) // 10,
                  config)["loss"].backward()
    assert all(bool(head[2].weight.grad.abs().sum() > 0) for head in model.heads().values())


def _panel_and_folds() -> tuple[WindowPanel, pl.DataFrame]:
    """16 instruments x 150 days; daily returns load on yesterday's first feature; one walk-forward fold."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(INSTRUMENTS, DAYS, FEATURES))
    returns = np.zeros((INSTRUMENTS, DAYS))
    returns[:, 1:] = 0.01 * (0.3 * x[:, :-1, 0] + rng.normal(size=(INSTRUMENTS, DAYS - 1)))
    cumulative = np.concatenate([np.zeros((INSTRUMENTS, 1)), returns.cumsum(axis=1)], axis=1)
    columns: dict[str, object] = {c.DATE: pl.Series(DATES * INSTRUMENTS, dtype=pl.Date),
                                  c.TICKER: np.repeat([f"T{i:02d}" for i in range(INSTRUMENTS)], DAYS)}
    columns.update({f"f{k}": x[:, :, k].ravel() for k in range(FEATURES)})
    for h in HORIZONS:
        forward = np.full((INSTRUMENTS, DAYS), np.nan)
        forward[:, : DAYS - h] = cumulative[:, 1 + h :] - cumulative[:, 1 : DAYS + 1 - h]
        columns[f"fwd_return_{h}d"] = forward.ravel()
    frame = pl.DataFrame(columns).fill_nan(None)
    joined = frame.select(c.DATE, c.TICKER, "f0", "f1", "f2").join(cross_sectional_targets(frame, HORIZONS), on=[c.DATE, c.TICKER])
    panel = build_window_panel(joined, ["f0", "f1", "f2"], [target_column(h) for h in HORIZONS], SEQ_LEN)

    def segment(role: str, first: int, last: int) -> dict[str, object]:
        return {cv.SCHEME: cv.WALK_FORWARD, cv.HORIZON_DAYS: 21, cv.FOLD_ID: 0, cv.ROLE: role, cv.START: DATES[first],
                cv.END: DATES[last], cv.N_DATES: last - first + 1, cv.TEST_GROUP: None, cv.PATH_ID: None}

    return panel, pl.DataFrame([segment(cv.TRAIN, 0, 99), segment(cv.TEST, 121, 128)], schema=cv.FOLD_SCHEMA)


@pytest.fixture(scope="module")
def runs() -> dict[str, object]:
    panel, folds = _panel_and_folds()
    cpu = choose_device(allow_cuda=False)
    return {name: fit_oof_quantile(panel, folds, QuantileConfig(**TINY, head_init=init), TRAINING, cpu)
            for name, init in (("healthy", "default"), ("repeat", "default"), ("collapsed", "zero"))}


def test_cross_sectional_targets_are_z_scores_per_date() -> None:
    labels = pl.DataFrame({c.DATE: [DATES[0]] * 3 + [DATES[1]], c.TICKER: ["A", "B", "C", "A"],
                           **{f"fwd_return_{h}d": [0.01, 0.02, 0.06, 0.5] for h in HORIZONS}})
    z = cross_sectional_targets(labels, HORIZONS)[target_column(5)].to_list()
    assert z[:3] == pytest.approx([-0.755929, -0.377964, 1.133893], abs=1e-6) and z[3] is None


def test_healthy_run_passes_the_checks_and_scores_every_horizon(runs) -> None:
    result = runs["healthy"]
    assert quantile_collapse_problems(result.diagnostics, 1e-6, 1e-10) == []
    assert quantile_forecast_problems(result.predictions, 1e-6, 0.5) == []
    scorecard = quantile_scorecard(result.predictions)
    assert scorecard["horizon_days"].to_list() == list(HORIZONS) and scorecard["ic"].null_count() == 0
    assert result.predictions.height == 8 * INSTRUMENTS * len(HORIZONS)


def test_collapsed_run_fails_the_checks_and_its_ic_is_undefined(runs) -> None:
    result = runs["collapsed"]
    problems = quantile_collapse_problems(result.diagnostics, 1e-6, 1e-10)
    assert len(problems) == len(HORIZONS) and all("dead head" in p and "median std" in p for p in problems)
    assert (result.diagnostics["encoder_grad_norm"] == 0).all() and (result.diagnostics["grad_norm"] > 0).all()
    scorecard = quantile_scorecard(result.predictions)
    assert scorecard["ic"].null_count() == scorecard["rank_ic"].null_count() == len(HORIZONS)
    assert (scorecard["n_dates_ic_defined"] == 0).all()
    assert any("distinct predictions" in p for p in quantile_forecast_problems(result.predictions, 1e-6, 0.5))


def test_training_is_deterministic_on_the_cpu(runs) -> None:
    assert_frame_equal(runs["healthy"].predictions, runs["repeat"].predictions)
    assert_frame_equal(runs["healthy"].diagnostics, runs["repeat"].diagnostics)
