"""Position caps shared by the QP and the RL policy's action mapping: put a weight vector exactly on the budget
with no entry above its cap."""

from __future__ import annotations

import numpy as np


def cap_and_fill(weights: np.ndarray, caps: np.ndarray | float) -> np.ndarray:
    """Entries at or above their cap are set to it, the other non-zero entries scaled to fill the rest of the
    budget (1); repeated until none exceeds its cap. Zero entries stay zero, so a zeroed position is never
    revived, and the free entries only grow (each scale factor is >= 1 when the input sums to at most 1).

    weights: (n,) non-negative; caps: a scalar or (n,) (np.inf for an uncapped entry such as cash). Needs
    enough capacity: the caps of the non-zero entries must sum to at least 1, else the budget is not reached.
    """
    caps = np.broadcast_to(np.asarray(caps, dtype=float), weights.shape)
    capped = weights >= caps
    while True:
        free = ~capped & (weights > 0)
        scale = (1.0 - caps[capped].sum()) / weights[free].sum() if free.any() else 0.0
        scaled = np.where(capped, caps, weights * scale)
        if not (scaled[free] > caps[free]).any():
            return scaled
        capped |= scaled > caps
