"""A seeded market state with known regimes: a calm, a nervous and a crisis regime switching as a Markov chain."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.regimes.hmm import DEFAULT_FEATURES

# Per regime: mean of (market_return_21d, market_vol_21d, average_correlation_21d, breadth_ma_21d, vol_ratio).
REGIME_MEANS = np.array([
    [0.015, 0.10, 0.20, 0.53, 0.90],
    [0.000, 0.18, 0.30, 0.50, 1.05],
    [-0.08, 0.45, 0.65, 0.42, 1.60],
])
REGIME_SPREAD = np.array([0.02, 0.015, 0.05, 0.02, 0.08])
STAY = np.array([0.99, 0.97, 0.95])


def regime_switching_state(n_days: int, seed: int, start: dt.date = dt.date(2000, 1, 3)) -> tuple[pl.DataFrame, np.ndarray]:
    """(market state frame with DEFAULT_FEATURES on weekdays from `start`, true regime per row)."""
    rng = np.random.default_rng(seed)
    regimes = np.empty(n_days, dtype=np.int64)
    regimes[0] = 0
    switches = rng.uniform(size=n_days)
    jumps = rng.integers(1, 3, size=n_days)
    for t in range(1, n_days):  # a Markov chain is sequential; test data only
        regimes[t] = regimes[t - 1] if switches[t] < STAY[regimes[t - 1]] else (regimes[t - 1] + jumps[t]) % 3
    values = REGIME_MEANS[regimes] + REGIME_SPREAD * rng.standard_normal((n_days, len(DEFAULT_FEATURES)))
    values[:, 1] = np.abs(values[:, 1]) + 0.01
    dates = pl.date_range(start, start + dt.timedelta(days=2 * n_days), eager=True)
    dates = dates.filter(dates.dt.weekday() <= 5).head(n_days)
    frame = pl.DataFrame({name: values[:, k] for k, name in enumerate(DEFAULT_FEATURES)}).with_columns(dates.alias(c.DATE))
    return frame.select(c.DATE, *DEFAULT_FEATURES), regimes
