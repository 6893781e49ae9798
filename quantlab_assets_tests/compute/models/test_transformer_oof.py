"""The transformer forecaster trained out of fold with Lightning on the CPU (tiny config): forecasts only
on test dates, scored by the model stack's scorecard; deterministic; a collapsed model is caught."""

from __future__ import annotations

import polars as pl
import pytest
import torch

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.models import cv
from quantlab_assets.compute.models.metrics import PREDICTION, degeneracy_problems, score_predictions
from quantlab_assets.compute.torch_runtime.device import choose_device
from quantlab_assets.compute.torch_runtime.oof_engine import TrainingConfig
from quantlab_assets.compute.torch_runtime.training import collapse_problems, fit_oof_transformer
from quantlab_assets.compute.torch_runtime.transformer import TransformerConfig, direction_class, multitask_loss
from quantlab_assets.compute.torch_runtime.windows import build_window_panel

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SEQ_LEN = 10
TINY = TrainingConfig(batch_size=64, max_epochs=2, patience=1, warmup_steps=5)


def _tiny(n_features: int) -> TransformerConfig:
    return TransformerConfig(n_features=n_features, d_model=16, n_heads=2, n_layers=1, dim_ff=32, seq_len=SEQ_LEN)


@pytest.fixture(scope="module")
def frame(model_panel) -> tuple[pl.DataFrame, list[str]]:
    names = [n for n in model_panel.features.columns if n.endswith("__wz") or n.endswith("__rz")]
    joined = model_panel.features.select(c.DATE, c.TICKER, *names).join(
        model_panel.labels.select(c.DATE, c.TICKER, "label_21d"), on=[c.DATE, c.TICKER])
    return joined, names


def _fit(frame: pl.DataFrame, names: list[str], folds: pl.DataFrame):
    panel = build_window_panel(frame, names, ["label_21d"], SEQ_LEN)
    return fit_oof_transformer(panel, folds, _tiny(len(names)), TINY, choose_device(allow_cuda=False))


def test_out_of_fold_forecasts_lie_on_test_dates_and_go_through_the_scorecard(model_panel, frame) -> None:
    joined, names = frame
    folds = cv.make_folds(model_panel.labels)
    result = _fit(joined, names, folds)
    out = result.predictions
    assert out.select(c.DATE, c.TICKER).is_unique().all() and out[PREDICTION].is_finite().all()
    tests = folds.filter((pl.col(cv.SCHEME) == cv.WALK_FORWARD) & (pl.col(cv.HORIZON_DAYS) == 21) & (pl.col(cv.ROLE) == cv.TEST))
    for fold_id, start, end in tests.select(cv.FOLD_ID, cv.START, cv.END).iter_rows():
        inside = out.filter(pl.col(c.DATE).is_between(start, end))
        assert inside.height == 0 or inside[cv.FOLD_ID].unique().to_list() == [fold_id]
    assert out.height == out.filter(pl.col(c.DATE) >= tests[cv.START].min()).height
    assert degeneracy_problems(out, 1e-6, 0.5) == [] and collapse_problems(result.diagnostics, 1e-6) == []
    assert score_predictions(out)["ic"][0] is not None
    heads = set(result.diagnostics["head"]) == {"mean", "direction", "volatility"}
    assert heads and (result.diagnostics["grad_norm"] > 0).all() and (result.diagnostics["representation_std"] > 0).all()
    # Deterministic on the CPU: the same forecasts bit for bit.
    assert _fit(joined, names, folds).predictions.equals(out)


def test_a_constant_forecaster_fails_the_collapse_check_and_has_no_ic(model_panel, frame) -> None:
    # Inputs that carry nothing (every feature constant): every window is the same, so is every forecast.
    joined, names = frame
    blank = joined.with_columns(pl.lit(0.0).alias(n) for n in names)
    result = _fit(blank, names, cv.make_folds(model_panel.labels))
    assert collapse_problems(result.diagnostics, 1e-6)
    assert degeneracy_problems(result.predictions, 1e-6, 0.5)
    assert score_predictions(result.predictions)["ic"][0] is None


def test_direction_classes_and_loss_parts() -> None:
    returns = torch.tensor([-0.05, -0.01, 0.0, 0.01, 0.05])
    assert direction_class(returns, 0.01).tolist() == [0, 1, 1, 1, 2]
    config = _tiny(3)
    outputs = {"mean": torch.zeros(5), "log_variance": torch.zeros(5), "direction_logits": torch.zeros(5, 3),
               "volatility": returns.abs()}
    losses = multitask_loss(outputs, returns, config)
    assert losses["volatility"] == 0 and torch.isclose(losses["direction"], torch.log(torch.tensor(3.0)))
    assert torch.isclose(losses["loss"], losses["nll"] + 0.5 * losses["direction"])
