"""Seed 002's sequence classifier: focal loss and calibration scores against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
import torch

from quantlab_assets.compute.models.calibration import across_folds, calibration_by_fold, reliability_curve
from quantlab_assets.compute.torch_runtime.tbm import focal_loss


def test_focal_loss_equals_the_hand_computed_value() -> None:
    # logit 0 (p = 0.5), target 1: BCE ln 2, weight (1 - 0.5)^2 = 0.25. logit ln 3 (p = 0.75), target 0:
    # p_true 0.25, BCE ln 4, weight 0.75^2. Mean of the two; alpha 0.25 weights them 0.25 and 0.75.
    logits, targets = torch.tensor([0.0, math.log(3.0)]), torch.tensor([1.0, 0.0])
    first, second = 0.25 * math.log(2.0), 0.5625 * math.log(4.0)
    assert float(focal_loss(logits, targets, gamma=2.0)) == pytest.approx((first + second) / 2, rel=1e-6)
    assert float(focal_loss(logits, targets, gamma=2.0, alpha=0.25)) == pytest.approx((0.25 * first + 0.75 * second) / 2, rel=1e-6)
    assert float(focal_loss(logits, targets, gamma=0.0)) == pytest.approx((math.log(2.0) + math.log(4.0)) / 2, rel=1e-6)


def test_calibration_scores_equal_the_hand_computed_values() -> None:
    # Fold 0: p 0.1, 0.2, 0.8, 0.9 with outcomes 0, 1, 1, 1. Brier (0.01 + 0.64 + 0.04 + 0.01) / 4 = 0.175.
    # Bins of 0.5: [0.1, 0.2] observed 0.5 vs 0.15, [0.8, 0.9] observed 1 vs 0.85 -> ECE (2*0.35 + 2*0.15)/4 = 0.25.
    # AUC: of 3 x 1 positive-negative pairs all ranked right -> 1.
    predictions = pl.DataFrame({"fold_id": [0, 0, 0, 0, 1, 1, 1, 1], "p": [0.1, 0.2, 0.8, 0.9, 0.5, 0.5, 0.5, 0.5],
                                "y": [0, 1, 1, 1, 0, 1, 0, 1]})
    by_fold = calibration_by_fold(predictions, "p", "y", "fold_id", bins=2)
    first = by_fold.row(0, named=True)
    assert first["brier"] == pytest.approx(0.175) and first["ece"] == pytest.approx(0.25) and first["auc"] == 1.0
    log_loss = -(np.log(0.9) + np.log(0.2) + np.log(0.8) + np.log(0.9)) / 4
    assert first["log_loss"] == pytest.approx(log_loss)
    second = by_fold.row(1, named=True)
    assert second["brier"] == pytest.approx(0.25) and second["ece"] == pytest.approx(0.0) and second["auc"] == 0.5
    summary = across_folds(by_fold)
    half = 12.7062047 * np.std([0.175, 0.25], ddof=1) / np.sqrt(2)  # t(0.975, 1 dof)
    assert summary["folds"] == 2 and summary["brier"] == pytest.approx(0.2125)
    assert summary["brier_ci_high"] - summary["brier"] == pytest.approx(half, rel=1e-5)
    assert summary["ece_ci_low"] == 0.0 and summary["auc_ci_high"] == 1.0  # cut at the scores' range
    curve = reliability_curve(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 1, 1, 1]), bins=2)
    assert curve["rows"].to_list() == [2, 2] and curve["observed"].to_list() == [0.5, 1.0]
