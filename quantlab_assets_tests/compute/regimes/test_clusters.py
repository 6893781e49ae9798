"""Regime clusters: fitted on the training span only, applied forward, HDBSCAN's out-of-sample rule, PCA when wide."""

import datetime as dt

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.regimes.clusters import NOISE, ClusterParams, fit_regime_clusters, hdbscan_assign
from quantlab_assets_tests.compute.regimes.helpers import regime_switching_state

TRAIN_END = dt.date(2002, 12, 31)
PARAMS = ClusterParams(n_clusters=3, min_cluster_size=30)


@pytest.fixture(scope="module")
def planted() -> tuple[pl.DataFrame, np.ndarray]:
    return regime_switching_state(1200, seed=2)


def test_clusters_recover_planted_regimes_after_train_end(planted) -> None:
    state, regimes = planted
    result = fit_regime_clusters(state, TRAIN_END, PARAMS)
    assigned = result.assignments
    assert assigned[c.DATE].min() > TRAIN_END and (assigned["fit_end"] <= TRAIN_END).all()
    truth = regimes[(state[c.DATE] > TRAIN_END).to_numpy()]
    # Clusters are numbered by mean volatility, as the planted regimes are (calm 0, nervous 1, crisis 2).
    # The training span holds 646 calm, 58 nervous and 78 crisis days: the mixture finds all three,
    # KMeans (spherical, equal-size bias) splits the calm days in two, HDBSCAN merges calm and nervous.
    assert (assigned["gmm_cluster"].to_numpy() == truth).mean() > 0.95
    crisis = truth == 2
    assert (assigned["kmeans_cluster"].to_numpy()[crisis] == 2).all()
    hdbscan = assigned["hdbscan_cluster"].to_numpy()
    assert (hdbscan[crisis] == hdbscan.max()).mean() > 0.9 and (hdbscan[~crisis] != hdbscan.max()).all()
    assert assigned["gmm_probability"].is_between(0, 1).all()
    assert result.dims == 5 and result.explained_variance is None


def test_the_future_does_not_move_the_fit(planted) -> None:
    state, _ = planted
    cut = dt.date(2003, 6, 30)
    base = fit_regime_clusters(state, TRAIN_END, PARAMS).assignments
    future_rewritten = state.with_columns(
        pl.when(pl.col(c.DATE) > cut).then(pl.col("market_vol_21d") * 3).otherwise(pl.col("market_vol_21d")).alias("market_vol_21d")
    )
    again = fit_regime_clusters(future_rewritten, TRAIN_END, PARAMS).assignments
    assert_frame_equal(again.filter(pl.col(c.DATE) <= cut), base.filter(pl.col(c.DATE) <= cut))


def test_hdbscan_assigns_within_core_distance_else_noise() -> None:
    train = np.array([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [5.0, 5.0], [5.1, 5.0], [5.0, 5.1], [20.0, 20.0]])
    labels = np.array([0, 0, 0, 1, 1, 1, NOISE])
    new = np.array([[0.05, 0.05], [5.05, 5.02], [2.5, 2.5], [20.0, 20.0]])
    # Core distance with min_samples 3: the third-nearest training point (itself included), 0.1 or ~0.141.
    assert hdbscan_assign(train, labels, new, min_samples=3).tolist() == [0, 1, NOISE, NOISE]


def test_wide_inputs_are_reduced_by_pca_fitted_on_the_training_span(planted) -> None:
    state, _ = planted
    rng = np.random.default_rng(0)
    extra = {f"embedding_{k:02d}": rng.normal(size=state.height) for k in range(20)}
    wide = state.with_columns(**extra)
    params = ClusterParams(features=(*PARAMS.features, *extra), n_clusters=3, min_cluster_size=30)
    result = fit_regime_clusters(wide, TRAIN_END, params)
    assert result.dims == 20 and 0 < result.explained_variance < 1
    assert result.assignments.height == (state[c.DATE] > TRAIN_END).sum()


def test_too_little_training_data_raises(planted) -> None:
    state, _ = planted
    with pytest.raises(ValueError, match="at least"):
        fit_regime_clusters(state, dt.date(2000, 2, 1), PARAMS)
