"""Regime detection (seed 003, Phase 6): market state, a filtered Gaussian HMM refitted on an expanding
window, KMeans / Gaussian-mixture / HDBSCAN clusters, interpretable labels, and their validation on
known crises. Every output at date t reads market state up to t and models fitted before t."""

from quantlab_assets.compute.regimes.clusters import ClusterParams, ClusterResult, fit_regime_clusters
from quantlab_assets.compute.regimes.forward_filter import ForwardPass, forward_filter
from quantlab_assets.compute.regimes.hmm import HmmParams, HmmResult, filtered_regimes, parameters_frame, refilter
from quantlab_assets.compute.regimes.labels import LABEL_THRESHOLDS, LabelThresholds, label_dates, label_states, state_statistics
from quantlab_assets.compute.regimes.market_state import compute_market_state
from quantlab_assets.compute.regimes.validation import KNOWN_EPISODES, Episode, EpisodeReport, evaluate_episodes

__all__ = [
    "KNOWN_EPISODES", "LABEL_THRESHOLDS", "ClusterParams", "ClusterResult", "Episode", "EpisodeReport", "ForwardPass",
    "HmmParams", "HmmResult", "LabelThresholds", "compute_market_state", "evaluate_episodes", "filtered_regimes",
    "fit_regime_clusters", "forward_filter", "label_dates", "label_states", "parameters_frame", "refilter",
    "state_statistics",
]
