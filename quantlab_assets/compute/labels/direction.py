"""Three-class direction labels: up (+1), flat (0), down (-1).

A flat class keeps moves too small to trade on (below the cost of a round trip) from being forced
into "up" or "down", which a next-candle direction label does (seed 002: a binary up/down target
was indistinguishable from noise).
"""

from __future__ import annotations

import numpy as np


def direction(forward_return: np.ndarray, flat_threshold: float) -> np.ndarray:
    """+1 / 0 / -1 per value (0 where |forward_return| <= flat_threshold); NaN stays NaN."""
    with np.errstate(invalid="ignore"):
        return np.where(np.abs(forward_return) <= flat_threshold, 0.0, np.sign(forward_return))
