"""Seed 002's SupCon encoder and linear probe: the loss against a hand-computed value, anchors without a
positive left out, bit-identical repeated runs, no test-fold window in pre-training, and the paired
comparison's verdict only where its interval excludes 0."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

import numpy as np
import polars as pl
import pytest
import torch
from polars.testing import assert_frame_equal

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.models import cv
from quantlab_assets.compute.torch_runtime.device import choose_device
from quantlab_assets.compute.torch_runtime.oof_engine import TrainingConfig
from quantlab_assets.compute.torch_runtime.supcon import (
    PROBABILITY,
    SupConConfig,
    compare_with_plain,
    fit_linear_probes,
    pretrain_supcon_encoders,
    supcon_loss,
)
from quantlab_assets.compute.torch_runtime.tbm import HITS_UPPER, TbmConfig
from quantlab_assets.compute.torch_runtime.tbm import PROBABILITY as TBM_PROBABILITY
from quantlab_assets.compute.torch_runtime.windows import WindowPanel, build_window_panel

pytestmark = pytest.mark.usefixtures("one_torch_thread")

INSTRUMENTS, DAYS, FEATURES, SEQ_LEN = 12, 150, 3, 5
DATES = [dt.date(2020, 1, 1) + dt.timedelta(days=k) for k in range(DAYS)]
CONFIG = SupConConfig(TbmConfig(n_features=FEATURES, d_model=8, n_heads=2, n_layers=1, dim_ff=16, dropout=0.0,
                                seq_len=SEQ_LEN), projection_dim=4)
TRAINING = TrainingConfig(lr=3e-3, batch_size=64, max_epochs=2, patience=2, warmup_steps=2)
FOLD0_TEST_START = 100


def test_supcon_loss_equals_the_hand_computed_value() -> None:
    # Directions (1,0), (0,1), (-1,0), (0,-1) (scaled: the loss normalises), labels 1, 1, 1, 0, tau 0.5.
    # z.z/tau: anchor 0 sees 0 (to 1), -2 (to 2), 0 (to 3): denominator D = 2 + e^-2 (a != i).
    #   positives {1, 2}: -1/2 [(0 - ln D) + (-2 - ln D)] = ln D + 1.
    # anchor 1 sees 0, 0, -2: D again; positives {0, 2} at 0, 0: ln D.
    # anchor 2 sees -2, 0, 0: D; positives {0, 1} at -2, 0: ln D + 1.
    # anchor 3 (label 0) has no positive: no term. Mean over anchors 0..2: ln(2 + e^-2) + 2/3.
    z = torch.tensor([[3.0, 0.0], [0.0, 0.5], [-2.0, 0.0], [0.0, -1.0]])
    expected = math.log(2 + math.exp(-2)) + 2 / 3
    assert float(supcon_loss(z, torch.tensor([1.0, 1.0, 1.0, 0.0]), temperature=0.5)) == pytest.approx(expected, rel=1e-6)


def test_anchors_without_positives_are_left_out() -> None:
    z = torch.tensor([[3.0, 0.0], [0.0, 0.5], [-2.0, 0.0], [0.0, -1.0]], requires_grad=True)
    # Labels 1, 1, 1, 0: the singleton's term would be 0/0 (NaN) if kept, or a 0 that pulls the mean to 3/4
    # of the three anchors' (the hand value above); left out, the mean is the three anchors'.
    three = math.log(2 + math.exp(-2)) + 2 / 3
    with_singleton = float(supcon_loss(z.detach(), torch.tensor([1.0, 1.0, 1.0, 0.0]), temperature=0.5))
    assert with_singleton == pytest.approx(three, rel=1e-6) and with_singleton != pytest.approx(0.75 * three, rel=1e-3)
    # Every label distinct: no anchor has a positive; the loss is 0 and still back-propagates (zero gradient).
    loss = supcon_loss(z, torch.tensor([0.0, 1.0, 2.0, 3.0]))
    loss.backward()
    assert float(loss.detach()) == 0.0 and torch.equal(z.grad, torch.zeros_like(z))


def _panel_and_folds() -> tuple[WindowPanel, pl.DataFrame]:
    """12 instruments x 150 days; hits_upper loads on the day's first feature; two walk-forward folds."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(INSTRUMENTS, DAYS, FEATURES))
    hits = (x[:, :, 0] + rng.normal(size=(INSTRUMENTS, DAYS)) > 0).astype(np.float64)
    frame = pl.DataFrame({c.DATE: pl.Series(DATES * INSTRUMENTS, dtype=pl.Date),
                          c.TICKER: np.repeat([f"T{i:02d}" for i in range(INSTRUMENTS)], DAYS),
                          **{f"f{k}": x[:, :, k].ravel() for k in range(FEATURES)}, HITS_UPPER: hits.ravel()})
    panel = build_window_panel(frame, [f"f{k}" for k in range(FEATURES)], [HITS_UPPER], SEQ_LEN)

    def segment(fold: int, role: str, first: int, last: int) -> dict[str, object]:
        return {cv.SCHEME: cv.WALK_FORWARD, cv.HORIZON_DAYS: 21, cv.FOLD_ID: fold, cv.ROLE: role, cv.START: DATES[first],
                cv.END: DATES[last], cv.N_DATES: last - first + 1, cv.TEST_GROUP: None, cv.PATH_ID: None}

    rows = [segment(0, cv.TRAIN, 0, 79), segment(0, cv.TEST, FOLD0_TEST_START, 109),
            segment(1, cv.TRAIN, 0, 109), segment(1, cv.TEST, 130, 139)]
    return panel, pl.DataFrame(rows, schema=cv.FOLD_SCHEMA)


@pytest.fixture(scope="module")
def runs() -> dict[str, object]:
    panel, folds = _panel_and_folds()
    cpu = choose_device(allow_cuda=False)
    # Every feature on and after fold 0's first test day replaced: fold 0's encoder must not notice.
    perturbed = panel.values.clone()
    perturbed[:, FOLD0_TEST_START:] = 100.0
    changed = dataclasses.replace(panel, values=perturbed)
    out: dict[str, object] = {"panel": panel, "folds": folds}
    for name, source in (("first", panel), ("repeat", panel), ("perturbed", changed)):
        out[name] = pretrain_supcon_encoders(source, folds, CONFIG, TRAINING, cpu)
    out["probe"] = fit_linear_probes(panel, folds, CONFIG, TRAINING, out["first"].states, cpu)
    out["probe_repeat"] = fit_linear_probes(panel, folds, CONFIG, TRAINING, out["repeat"].states, cpu)
    return out


def test_pretraining_and_probe_are_bit_identical_when_repeated(runs) -> None:
    first, repeat = runs["first"], runs["repeat"]
    assert sorted(first.states) == [0, 1] and first.curves["fold_id"].unique().sort().to_list() == [0, 1]
    assert_frame_equal(first.curves, repeat.curves)
    assert all(torch.equal(first.states[f][k], repeat.states[f][k]) for f in first.states for k in first.states[f])
    assert_frame_equal(runs["probe"], runs["probe_repeat"])
    assert (runs["first"].curves["val_loss"] > 0).all()


def test_no_test_fold_window_is_seen_in_pretraining(runs) -> None:
    first, perturbed = runs["first"], runs["perturbed"]
    assert all(torch.equal(first.states[0][k], perturbed.states[0][k]) for k in first.states[0])
    # Fold 1 trains on days up to 109, which the perturbation reaches: its weights must move (the test can fail).
    assert not all(torch.equal(first.states[1][k], perturbed.states[1][k]) for k in first.states[1])


def test_probe_predicts_each_test_window_once(runs) -> None:
    probe = runs["probe"]
    assert probe.group_by(cv.FOLD_ID).len().sort(cv.FOLD_ID)["len"].to_list() == [10 * INSTRUMENTS, 10 * INSTRUMENTS]
    assert probe[PROBABILITY].is_between(0, 1).all() and probe[PROBABILITY].std() > 0
    # The probe reads the frozen encoder: a fold-0 test day is after every fold-0 training window's last day.
    assert probe.filter(pl.col(cv.FOLD_ID) == 0)[c.DATE].min() == DATES[FOLD0_TEST_START]


def _predictions(folds: int, rows: int, offset: float, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    outcome = rng.integers(0, 2, folds * rows)
    signal = np.clip(0.5 + offset * (outcome - 0.5) + 0.05 * rng.normal(size=folds * rows), 0.01, 0.99)
    return pl.DataFrame({c.DATE: [DATES[k % DAYS] for k in range(folds * rows)], c.TICKER: [f"T{k // DAYS}" for k in range(folds * rows)],
                         cv.FOLD_ID: np.repeat(np.arange(folds), rows), "p": signal, HITS_UPPER: outcome.astype(np.int8)})


def test_comparison_says_better_only_when_the_paired_interval_excludes_zero() -> None:
    sharp, blunt = _predictions(4, 200, 0.6, 1), _predictions(4, 200, 0.1, 1)
    probe = sharp.rename({"p": PROBABILITY})
    result = compare_with_plain(probe, blunt.rename({"p": TBM_PROBABILITY}))
    assert result.summary["same_rows"] and result.summary["folds"] == 4
    assert result.summary["log_loss_verdict"] == "better" and result.summary["log_loss_difference_ci_high"] < 0
    assert result.by_fold["log_loss_difference"].to_list() == pytest.approx(
        (result.by_fold["probe_log_loss"] - result.by_fold["plain_log_loss"]).to_list())
    reverse = compare_with_plain(blunt.rename({"p": PROBABILITY}), sharp.rename({"p": TBM_PROBABILITY}))
    assert reverse.summary["log_loss_verdict"] == "worse" and reverse.summary["auc_verdict"] == "worse"
    # The same model on both sides: every difference 0, the interval [0, 0] holds 0.
    same = compare_with_plain(probe, sharp.rename({"p": TBM_PROBABILITY}))
    assert same.summary["log_loss_verdict"] == "indistinguishable" and same.summary["log_loss_difference"] == 0.0
    # Rows the plain classifier lacks: compared on the intersection, and said so.
    partial = compare_with_plain(probe, blunt.rename({"p": TBM_PROBABILITY}).filter(pl.col(cv.FOLD_ID) != 3))
    assert not partial.summary["same_rows"] and partial.summary["shared_rows"] == 600
    assert partial.summary["folds"] == 3
    one_fold = compare_with_plain(probe.filter(pl.col(cv.FOLD_ID) == 0), blunt.rename({"p": TBM_PROBABILITY}))
    assert one_fold.summary["log_loss_verdict"] == "undefined (fewer than two folds)"
