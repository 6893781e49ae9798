"""Observations use data up to t only; spans do not overlap; embeddings enter optionally, PCA fitted on training rows."""

import datetime as dt

import numpy as np
import polars as pl
import pytest

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.rl.panel import PanelParams, build_panel, lookahead_problems, split_spans
from quantlab_assets_tests.compute.rl.conftest import VALIDATION_END, SmallMarket


def _embeddings(market: SmallMarket, dims: int = 6) -> pl.DataFrame:
    rows = market.alpha.select(c.DATE, c.TICKER)
    values = np.random.default_rng(5).normal(size=(rows.height, dims))
    return rows.with_columns(pl.Series(f"emb_{i}", values[:, i]) for i in range(dims))


def test_spans_are_ordered_and_split_at_the_universes_validation_end(market: SmallMarket) -> None:
    (t0, t1), (v0, v1), (s0, s1) = market.spans["train"], market.spans["validation"], market.spans["test"]
    assert t0 == 0 and v0 == t1 + 1 and s0 == v1 + 1 and s1 == market.dates.len() - 1
    assert market.dates[v1] <= VALIDATION_END < market.dates[s0] and v1 - v0 + 1 == 126
    with pytest.raises(ValueError, match="too short"):
        split_spans(market.dates, dt.date(2019, 12, 30), 126)


def test_the_panel_holds_forecasts_eligibility_and_regimes(market: SmallMarket) -> None:
    panel = market.panel()
    a01 = panel.tickers.index("A01")
    listed = panel.dates < dt.date(2017, 6, 1)
    assert not panel.eligible[listed.to_numpy(), a01].any() and panel.eligible[~listed.to_numpy(), a01].mean() > 0.95
    # One-hot regimes; z-scored forecasts (mean ~0 per date over eligible names).
    np.testing.assert_array_equal(panel.market_features.sum(axis=1), 1.0)
    assert abs(panel.asset_features[..., 0][panel.eligible].mean()) < 0.05
    assert market.panel(use_regime=False).market_features.shape == (panel.dates.len(), 0)


def test_observations_up_to_a_date_ignore_everything_after_it(market: SmallMarket) -> None:
    fit_end = market.dates[market.spans["train"][1]]
    cuts = [market.dates[market.spans["validation"][0] + 10], market.dates[market.spans["test"][0] + 50]]
    embeddings = _embeddings(market)
    params = PanelParams(embedding_components=3)
    assert lookahead_problems(market.returns, market.alpha, market.regimes, market.dates, fit_end, params, cuts, embeddings) == []
    # The check can fail: an embedding projection fitted on rows after the cut (fit_end at the end) leaks into them.
    leaky_fit_end = market.dates[-1]
    assert len(lookahead_problems(market.returns, market.alpha, market.regimes, market.dates, leaky_fit_end, params, cuts,
                                  embeddings)) == 2


def test_embeddings_are_pca_reduced_with_the_projection_fitted_on_training_rows(market: SmallMarket) -> None:
    fit_end = market.dates[market.spans["train"][1]]
    embeddings = _embeddings(market)
    panel = build_panel(market.returns, market.alpha, market.regimes, market.dates, fit_end, PanelParams(embedding_components=3),
                        embeddings)
    assert panel.asset_feature_names == ["alpha_combined", "emb_pc0", "emb_pc1", "emb_pc2"]
    train = slice(0, market.spans["train"][1] + 1)
    # Standardised by the training rows: unit std there (over the rows that have an embedding).
    values = panel.asset_features[train][..., 1][panel.eligible[train]]
    assert values.std() == pytest.approx(1.0, abs=0.05)
    # Changing embeddings after the training span moves nothing before it (projection fitted on the training span).
    shifted = embeddings.with_columns(pl.when(pl.col(c.DATE) > fit_end).then(pl.col("emb_0") * 50).otherwise(pl.col("emb_0")).alias("emb_0"))
    moved = build_panel(market.returns, market.alpha, market.regimes, market.dates, fit_end, PanelParams(embedding_components=3), shifted)
    np.testing.assert_array_equal(moved.asset_features[train], panel.asset_features[train])
    raw = build_panel(market.returns, market.alpha, market.regimes, market.dates, fit_end, PanelParams(embedding_components=None), embeddings)
    assert raw.asset_features.shape[-1] == 1 + 6
