"""Regime clusters (seed 003, Phase 6.1): KMeans, Gaussian mixture and HDBSCAN on the market state.

Each method is fitted once, on the rows up to the universe's `train_end`, and applied to every later
date. The input is the HMM's features (same transformation: log volatility), standardised with the
training span's mean and standard deviation; inputs wider than `max_dims` columns (embeddings, when
they exist) are first reduced by a PCA fitted on the training span.

- KMeans and the Gaussian mixture assign a new date with their own `predict` (each row on its own, so
  a date reads only its own market state); the mixture also gives the winning component's probability.
- HDBSCAN has no `predict`. A new date joins the cluster of its nearest clustered training date if it
  lies within that date's core distance (the distance to its `min_samples`-th nearest training date,
  HDBSCAN's own density scale), and is noise (-1) otherwise. Only training dates are consulted.

Cluster numbers are ordered by the mean market volatility of their training members (0 the calmest),
so they do not depend on a library's arbitrary numbering.

On daily market state HDBSCAN finds little structure: the rows form one continuous density (measured
on sp500_sample 1991-2004: one cluster of 3,444 days, one of 57 and 12 noise days); with the default
min_samples (= min_cluster_size) every training day is noise. `min_samples` is therefore 5.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl
from threadpoolctl import threadpool_limits

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.params import described
from quantlab_assets.compute.regimes.hmm import DEFAULT_FEATURES, FIT_END, VOL_FEATURE

KMEANS = "kmeans_cluster"
GMM = "gmm_cluster"
GMM_PROBABILITY = "gmm_probability"
HDBSCAN_CLUSTER = "hdbscan_cluster"
NOISE = -1


@dataclass(frozen=True)
class ClusterParams:
    """Seed 003: KMeans / GaussianMixture with 5 clusters, HDBSCAN with min_cluster_size 50, PCA to <= 20 dims."""

    features: tuple[str, ...] = DEFAULT_FEATURES
    log_features: tuple[str, ...] = (VOL_FEATURE,)
    n_clusters: int = described(5, "Clusters of KMeans and the Gaussian mixture (seed 003: 5).")
    min_cluster_size: int = described(50, "HDBSCAN's minimum cluster size (seed 003: 50).")
    min_samples: int = described(5, "HDBSCAN's min_samples: the neighbours that make a point a core point.")
    max_dims: int = described(20, "PCA keeps at most this many dimensions before clustering.")
    seed: int = described(7, "Random seed of KMeans and the Gaussian mixture.")

    def __post_init__(self) -> None:
        if VOL_FEATURE not in self.features:
            raise ValueError(f"clusters are ordered by {VOL_FEATURE!r}: it must be a feature")


@dataclass(frozen=True)
class ClusterResult:
    """assignments: date, fit_end, kmeans/gmm/hdbscan clusters (dates > train_end); figures for metadata."""

    assignments: pl.DataFrame
    fit_rows: int
    dims: int
    explained_variance: float | None
    training_cluster_sizes: dict[str, dict[int, int]]


def _transformed(state: pl.DataFrame, params: ClusterParams) -> pl.DataFrame:
    exprs = [
        (pl.when(pl.col(name) > 0).then(pl.col(name).log()) if name in params.log_features else pl.col(name)).alias(name)
        for name in params.features
    ]
    frame = state.select(c.DATE, *exprs).drop_nulls()
    return frame.filter(pl.all_horizontal(pl.col(params.features).is_finite())).sort(c.DATE)


def _ordered_by(values: np.ndarray, labels: np.ndarray, n_labels: int) -> np.ndarray:
    """remap[label] = rank of the label's mean value (labels without members last); noise stays -1."""
    means = np.array([values[labels == k].mean() if (labels == k).any() else np.inf for k in range(n_labels)])
    remap = np.empty(n_labels, dtype=np.int64)
    remap[np.argsort(means, kind="stable")] = np.arange(n_labels)
    return remap


def _relabel(labels: np.ndarray, remap: np.ndarray) -> np.ndarray:
    return np.where(labels == NOISE, NOISE, remap[np.maximum(labels, 0)])


def hdbscan_assign(train: np.ndarray, train_labels: np.ndarray, new: np.ndarray, min_samples: int) -> np.ndarray:
    """Out-of-sample HDBSCAN labels (see the module docstring); train rows and labels from the fit."""
    # Imported here: sklearn takes about 0.3 s to import, and every run process loads this module.
    from sklearn.neighbors import NearestNeighbors

    clustered = train_labels != NOISE
    if not clustered.any() or len(new) == 0:
        return np.full(len(new), NOISE, dtype=np.int64)
    # Core distance as HDBSCAN defines it: the distance to the min_samples-th neighbour, the point itself included.
    neighbours = min(min_samples, len(train))
    core = NearestNeighbors(n_neighbors=neighbours).fit(train).kneighbors(train)[0][:, -1]
    distance, nearest = NearestNeighbors(n_neighbors=1).fit(train[clustered]).kneighbors(new)
    nearest = nearest[:, 0]
    within = distance[:, 0] <= core[clustered][nearest]
    return np.where(within, train_labels[clustered][nearest], NOISE).astype(np.int64)


def fit_regime_clusters(state: pl.DataFrame, train_end: dt.date, params: ClusterParams = ClusterParams()) -> ClusterResult:
    """Fit the three methods on rows <= train_end and assign every later row (module docstring)."""
    # Imported here: sklearn takes about 0.3 s to import, and every run process loads this module.
    from sklearn.cluster import HDBSCAN, KMeans
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture

    rows = _transformed(state, params)
    is_train = (rows.get_column(c.DATE) <= train_end).to_numpy()
    values = rows.select(params.features).to_numpy()
    train, new = values[is_train], values[~is_train]
    schema = {c.DATE: pl.Date, FIT_END: pl.Date, KMEANS: pl.Int64, GMM: pl.Int64, GMM_PROBABILITY: pl.Float64,
              HDBSCAN_CLUSTER: pl.Int64}
    if len(train) < max(params.n_clusters, params.min_cluster_size) * 2:
        raise ValueError(
            f"regime clusters need at least {max(params.n_clusters, params.min_cluster_size) * 2} complete "
            f"market-state rows up to train_end {train_end}, found {len(train)}"
        )
    center, scale = train.mean(axis=0), train.std(axis=0, ddof=1)
    scale = np.where(scale > 0, scale, 1.0)
    train_z, new_z = (train - center) / scale, (new - center) / scale
    explained = None
    if train_z.shape[1] > params.max_dims:
        pca = PCA(n_components=params.max_dims, random_state=params.seed).fit(train_z)
        train_z, new_z = pca.transform(train_z), pca.transform(new_z) if len(new_z) else new_z[:, : params.max_dims]
        explained = float(pca.explained_variance_ratio_.sum())
    vol = train[:, params.features.index(VOL_FEATURE)]
    with threadpool_limits(limits=1):  # small problems: BLAS threads only contend
        kmeans = KMeans(n_clusters=params.n_clusters, n_init=10, random_state=params.seed).fit(train_z)
        gmm = GaussianMixture(n_components=params.n_clusters, covariance_type="full", random_state=params.seed).fit(train_z)
        hdbscan = HDBSCAN(min_cluster_size=params.min_cluster_size, min_samples=params.min_samples, copy=True).fit(train_z)
    kmeans_remap = _ordered_by(vol, kmeans.labels_, params.n_clusters)
    gmm_remap = _ordered_by(vol, gmm.predict(train_z), params.n_clusters)
    n_hdbscan = int(hdbscan.labels_.max()) + 1
    hdbscan_remap = _ordered_by(vol, hdbscan.labels_, max(n_hdbscan, 1))
    train_hdbscan = _relabel(hdbscan.labels_, hdbscan_remap)
    sizes = {
        KMEANS: _sizes(kmeans_remap[kmeans.labels_]),
        GMM: _sizes(gmm_remap[gmm.predict(train_z)]),
        HDBSCAN_CLUSTER: _sizes(train_hdbscan),
    }
    if len(new_z):
        gmm_probabilities = gmm.predict_proba(new_z)
        gmm_new = gmm_remap[gmm_probabilities.argmax(axis=1)]
        gmm_best = gmm_probabilities.max(axis=1)
        kmeans_new = kmeans_remap[kmeans.predict(new_z)]
        hdbscan_new = hdbscan_assign(train_z, train_hdbscan, new_z, params.min_samples)
    else:
        gmm_new = kmeans_new = hdbscan_new = np.empty(0, dtype=np.int64)
        gmm_best = np.empty(0)
    fit_end = rows.get_column(c.DATE).filter(pl.Series(is_train)).max()
    assignments = pl.DataFrame(
        {
            c.DATE: rows.get_column(c.DATE).filter(pl.Series(~is_train)),
            FIT_END: pl.Series([fit_end] * len(new_z), dtype=pl.Date),
            KMEANS: kmeans_new.astype(np.int64),
            GMM: gmm_new.astype(np.int64),
            GMM_PROBABILITY: gmm_best,
            HDBSCAN_CLUSTER: hdbscan_new.astype(np.int64),
        },
        schema=schema,
    )
    return ClusterResult(assignments, len(train), int(train_z.shape[1]), explained, sizes)


def _sizes(labels: np.ndarray) -> dict[int, int]:
    values, counts = np.unique(labels, return_counts=True)
    return {int(v): int(n) for v, n in zip(values, counts, strict=True)}
