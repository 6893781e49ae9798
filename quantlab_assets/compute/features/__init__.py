"""Features: the research feature set of the lab, computed from cleaned bars in one lazy polars query.

registry.py holds the feature registry; price/technical/microstructure/cross_asset/regime.py register
the features of each family; compute.py builds and runs the query; lookahead.py checks it reads no
future data; preprocessing.py holds the normalised variants. ffd.py (fractional differencing) is a
separate module with its own entry points.
"""

from quantlab_assets.compute.features.benchmark import benchmark_returns
from quantlab_assets.compute.features.compute import (
    FEATURE_LOOKBACK_DAYS,
    FeatureDiagnostics,
    FeatureParams,
    FeatureResult,
    compute_features,
    feature_lookback_days,
)
from quantlab_assets.compute.features.lookahead import sampled_lookahead_violations
from quantlab_assets.compute.features.preprocessing import complete_rows
from quantlab_assets.compute.features.registry import REGISTRY, FeatureRegistry, FeatureSpec, feature

__all__ = [
    "FEATURE_LOOKBACK_DAYS",
    "REGISTRY",
    "FeatureDiagnostics",
    "FeatureParams",
    "FeatureRegistry",
    "FeatureResult",
    "FeatureSpec",
    "benchmark_returns",
    "complete_rows",
    "compute_features",
    "feature",
    "feature_lookback_days",
    "sampled_lookahead_violations",
]
