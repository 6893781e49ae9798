"""The masked encoder: loss on masked patches only, mask ratio, determinism, training span only, and the
embeddings (shape, keys, schema, checks) on a small seeded panel with a tiny config (CPU)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import polars as pl
import pytest
import torch

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.schemas import EmbeddingsSchema
from quantlab_assets.compute.torch_runtime.device import choose_device
from quantlab_assets.compute.torch_runtime.embeddings import (
    build_feature_panel,
    collapse_problems,
    cut_dates,
    embed_panel,
    embedding_columns,
    lookahead_problems,
    nonfinite_problems,
)
from quantlab_assets.compute.torch_runtime.masked_encoder import (
    MaskedEncoderConfig,
    MaskedTimeSeriesEncoder,
    masked_mse,
    patchify,
    random_patch_mask,
)
from quantlab_assets.compute.torch_runtime.oof_engine import TrainingConfig
from quantlab_assets.compute.torch_runtime.pretraining import pretrain_masked_encoder, training_span_starts

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FEATURES = ["f0", "f1", "f2"]
SEQ_LEN = 20  # 4 patches of 5 days: one masked (25 %)
TRAIN_END = dt.date(2021, 6, 30)
CONFIG = MaskedEncoderConfig(n_features=len(FEATURES), d_model=8, n_heads=2, n_layers=1, dim_ff=16, dropout=0.0,
                             seq_len=SEQ_LEN)
TRAINING = TrainingConfig(batch_size=32, max_epochs=2, patience=2, warmup_steps=4, seed=7)
CPU = choose_device(allow_cuda=False)


def _frame(rng_seed: int = 0, days: int = 160, tickers: int = 6) -> pl.DataFrame:
    calendar = pl.date_range(dt.date(2021, 1, 1), dt.date(2022, 12, 31), "1d", eager=True)
    dates = calendar.filter(calendar.dt.weekday() <= 5)[:days]
    rng = np.random.default_rng(rng_seed)
    frame = pl.DataFrame({
        c.DATE: pl.concat([dates] * tickers),
        c.TICKER: np.repeat([f"T{i}" for i in range(tickers)], days),
        **{name: rng.standard_normal(days * tickers).cumsum() / 10 for name in FEATURES},
    })
    # A hole: T0 has no f1 on its 50th day, so its windows over that day are incomplete.
    return frame.with_columns(pl.when((pl.col(c.TICKER) == "T0") & (pl.col(c.DATE) == dates[49]))
                              .then(None).otherwise(pl.col("f1")).alias("f1"))


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    return _frame()


def _pretrain(frame: pl.DataFrame, train_end: dt.date = TRAIN_END):
    panel = build_feature_panel(frame, FEATURES, SEQ_LEN)
    return pretrain_masked_encoder(panel, training_span_starts(panel, train_end), CONFIG, TRAINING, CPU)


@pytest.fixture(scope="module")
def trained(frame: pl.DataFrame):
    return _pretrain(frame)


@pytest.fixture(scope="module")
def model(trained) -> MaskedTimeSeriesEncoder:
    encoder = MaskedTimeSeriesEncoder(CONFIG)
    encoder.load_state_dict(trained.state)
    return encoder


def test_the_loss_counts_the_masked_patches_only() -> None:
    patches = torch.tensor([[[1.0, 3.0], [100.0, -100.0], [2.0, 0.0]]])  # (1 window, 3 patches, 2 values)
    mask = torch.tensor([[True, False, True]])
    # Masked patch 0: (1 + 9) / 2 = 5; masked patch 2: (4 + 0) / 2 = 2; the unmasked patch's error is ignored.
    assert float(masked_mse(torch.zeros_like(patches), patches, mask)) == pytest.approx(3.5)
    changed = torch.zeros_like(patches)
    changed[0, 1] = 1e6
    assert float(masked_mse(changed, patches, mask)) == pytest.approx(3.5)
    # Through the network: the gradient of the loss never reaches a visible patch's reconstruction.
    encoder = MaskedTimeSeriesEncoder(CONFIG)
    windows = torch.randn(4, SEQ_LEN, len(FEATURES))
    mask = random_patch_mask(4, CONFIG.n_patches, CONFIG.n_masked, torch.Generator().manual_seed(0))
    outputs = encoder(windows, mask)
    outputs["reconstruction"].retain_grad()
    outputs["loss"].backward()
    assert (outputs["reconstruction"].grad.abs().sum(dim=2)[~mask] == 0).all()
    assert (outputs["reconstruction"].grad.abs().sum(dim=2)[mask] > 0).all()


@pytest.mark.parametrize("seq_len, ratio", [(63, 0.15), (63, 0.2), (63, 0.3), (20, 0.2), (40, 0.15), (250, 0.29)])
def test_the_mask_covers_15_to_30_percent_of_the_patches(seq_len: int, ratio: float) -> None:
    config = dataclasses.replace(CONFIG, seq_len=seq_len, mask_ratio=ratio)
    assert 0.15 <= config.realised_mask_ratio <= 0.30
    mask = random_patch_mask(64, config.n_patches, config.n_masked, torch.Generator().manual_seed(1))
    assert (mask.sum(dim=1) == config.n_masked).all() and mask.any(dim=0).all()  # every position gets masked


@pytest.mark.parametrize("seq_len, ratio", [(63, 0.1), (63, 0.35), (10, 0.2), (15, 0.2)])
def test_a_mask_ratio_outside_the_range_is_refused(seq_len: int, ratio: float) -> None:
    with pytest.raises(ValueError, match="mask_ratio|no whole number"):
        _ = dataclasses.replace(CONFIG, seq_len=seq_len, mask_ratio=ratio).n_masked


def test_patches_keep_the_newest_days() -> None:
    windows = torch.arange(2 * 63 * 3, dtype=torch.float32).reshape(2, 63, 3)
    patches = patchify(windows, 5)
    assert patches.shape == (2, 12, 15)
    assert torch.equal(patches[:, -1], windows[:, 58:63].reshape(2, 15))
    assert torch.equal(patches[:, 0], windows[:, 3:8].reshape(2, 15))


def test_pretraining_is_deterministic_on_the_cpu(frame: pl.DataFrame, trained) -> None:
    again = _pretrain(frame)
    assert again.state.keys() == trained.state.keys()
    assert all(torch.equal(again.state[k], trained.state[k]) for k in trained.state)
    assert again.curve.equals(trained.curve) and trained.curve.height == TRAINING.max_epochs


def test_pretraining_sees_no_row_after_the_training_span(frame: pl.DataFrame, trained) -> None:
    # Every feature value after train_end replaced: the trained weights do not change by a bit.
    after = pl.col(c.DATE) > TRAIN_END
    noisy = frame.with_columns(pl.when(after).then(pl.col(n) * -7.0 + 3.0).otherwise(pl.col(n)).alias(n) for n in FEATURES)
    other = _pretrain(noisy)
    assert all(torch.equal(other.state[k], trained.state[k]) for k in trained.state)
    assert trained.last_window_end <= TRAIN_END and trained.first_window_end >= frame[c.DATE].min()
    panel = build_feature_panel(frame, FEATURES, SEQ_LEN)
    assert trained.fit_windows + trained.validation_windows < training_span_starts(panel, TRAIN_END).shape[0]
    # ... while a later train_end does see those rows.
    later = _pretrain(noisy, dt.date(2021, 8, 31))
    assert not all(torch.equal(later.state[k], trained.state[k]) for k in trained.state)


def test_embeddings_cover_every_complete_window_with_its_last_day(frame: pl.DataFrame, model) -> None:
    panel = build_feature_panel(frame, FEATURES, SEQ_LEN)
    embeddings = embed_panel(model, panel, 64, CPU.device)
    assert embeddings.columns == [c.DATE, c.TICKER, *embedding_columns(CONFIG.d_model)]
    assert embeddings.height == panel.starts.shape[0] == 6 * (160 - SEQ_LEN + 1) - SEQ_LEN
    EmbeddingsSchema.validate(embeddings)
    dates = frame[c.DATE].unique().sort()
    assert embeddings[c.DATE].min() == dates[SEQ_LEN - 1]
    # T0's windows over its hole (day 50) are absent, and nothing else is.
    t0 = embeddings.filter(pl.col(c.TICKER) == "T0")[c.DATE]
    assert not t0.is_between(dates[49], dates[49 + SEQ_LEN - 1]).any() and t0.len() == 160 - SEQ_LEN + 1 - SEQ_LEN
    assert nonfinite_problems(embeddings) == [] and collapse_problems(embeddings, 1e-6) == []
    # Batch size changes nothing beyond rounding.
    other = embed_panel(model, panel, 7, CPU.device)
    assert np.allclose(other.select(embedding_columns(8)).to_numpy(), embeddings.select(embedding_columns(8)).to_numpy(),
                       atol=1e-6)


def test_the_embedding_checks_fail_on_leaks_collapse_and_nan(frame: pl.DataFrame, model) -> None:
    embeddings = embed_panel(model, build_feature_panel(frame, FEATURES, SEQ_LEN), 64, CPU.device)
    cuts = cut_dates(embeddings, 2)
    assert lookahead_problems(model, frame, FEATURES, embeddings, cuts, 64, CPU.device, 1e-5) == []
    # Embeddings of a window that ends one day later (it reads the day after its date) are caught.
    shifted = embeddings.with_columns(pl.col(embedding_columns(8)).shift(-1).over(c.TICKER)).drop_nulls()
    problems = lookahead_problems(model, frame, FEATURES, shifted, cuts, 64, CPU.device, 1e-5)
    assert len(problems) == 2 and "differ" in problems[0]
    constant = embeddings.with_columns(pl.lit(0.5, dtype=pl.Float32).alias("emb_3"))
    assert collapse_problems(constant, 1e-6) == ["emb_3: std 0 at most 1e-06"]
    one_vector = embeddings.with_columns(pl.lit(1.0, dtype=pl.Float32).alias(n) for n in embedding_columns(8))
    assert collapse_problems(one_vector, 1e-6)[-1] == f"all {embeddings.height} rows are one vector"
    broken = embeddings.with_columns(pl.when(pl.int_range(pl.len()) == 3).then(float("nan")).otherwise(pl.col("emb_0"))
                                     .cast(pl.Float32).alias("emb_0"))
    assert nonfinite_problems(broken) == ["emb_0: 1 non-finite values"]
