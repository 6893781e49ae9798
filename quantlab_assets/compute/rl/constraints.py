"""Seed 003's WeightConstraints: a policy's raw action (N assets + cash) -> valid portfolio weights.

long-only, sum 1 (cash last), no asset above max_weight, assets under min_weight zeroed, cash never zeroed
nor capped (all cash is a legitimate risk-off book). The seed clips and renormalises, which can push a
name back above the cap; here the renormalisation is the QP's cap-and-fill (compute/portfolio/constraints),
so the cap holds exactly. Ineligible assets (no forecast or no bar on the date) get weight 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantlab_assets.compute.portfolio.constraints import cap_and_fill


@dataclass(frozen=True)
class WeightConstraints:
    max_weight: float = 0.20
    min_weight: float = 0.02
    # Logits = action_scale x action: with actions in [-1, 1] (SB3's squashed / clipped range) a softmax of the
    # raw action could not concentrate (its largest ratio between two entries would be e^2); e^10 can.
    action_scale: float = 5.0

    def normalize(self, action: np.ndarray, eligible: np.ndarray) -> np.ndarray:
        """action: (N + 1,) in [-1, 1], cash last; eligible: (N,) bool. Returns (N + 1,) weights summing to 1."""
        logits = self.action_scale * np.clip(np.asarray(action, dtype=float), -1.0, 1.0)
        logits[:-1] = np.where(eligible, logits[:-1], -np.inf)
        weights = np.exp(logits - logits.max())
        weights /= weights.sum()
        weights[:-1] = np.where(weights[:-1] < self.min_weight, 0.0, weights[:-1])
        caps = np.append(np.full(weights.size - 1, self.max_weight), np.inf)
        return cap_and_fill(weights, caps)

    def violations(self, weights: np.ndarray, tol: float = 1e-9) -> list[str]:
        """What is wrong with a (..., N + 1) weight array (cash last); empty when valid."""
        assets = weights[..., :-1]
        problems = []
        if (weights < -tol).any():
            problems.append(f"negative weights (min {weights.min():.3g})")
        if (np.abs(weights.sum(axis=-1) - 1.0) > tol).any():
            problems.append("weights do not sum to 1")
        if (assets > self.max_weight + tol).any():
            problems.append(f"an asset above {self.max_weight:.0%} (max {assets.max():.4f})")
        if ((assets > tol) & (assets < self.min_weight - tol)).any():
            problems.append(f"an asset position under {self.min_weight:.0%}")
        return problems
