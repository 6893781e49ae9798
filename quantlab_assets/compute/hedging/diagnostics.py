"""The representation diagnostic of the study, shared by training (logged at every evaluation, on
`high` only) and evaluation (every environment).

MSI (Mutual Stability Index) of environment e: the learned representation z (extractor output, one
vector per path and step) on the first msi_paths paths of e is compared with z on the pooled training
environments (low + medium), unit by unit: D_e = mean over units k of W1(z_k | e, z_k | train) /
std(z_k | train), with W1 the 1-D Wasserstein-1 distance computed from msi_quantiles quantiles; units
constant on the training data are left out. MSI_e = 1 / (1 + D_e): 1 for a representation distributed
as in training, towards 0 as it drifts. Undefined (null) when every unit is constant.
"""

from __future__ import annotations

import numpy as np
import torch

from quantlab_assets.compute.hedging.config import HedgingConfig
from quantlab_assets.compute.hedging.policy import EnvironmentTensors, HedgePolicy, rollout


def msi(representation: np.ndarray, reference: np.ndarray, n_quantiles: int) -> float | None:
    """MSI of `representation` (rows, units) against `reference` (rows, units); see the module docstring."""
    levels = np.linspace(0.0, 1.0, n_quantiles + 2)[1:-1]
    distance = np.abs(np.quantile(representation, levels, axis=0) - np.quantile(reference, levels, axis=0)).mean(axis=0)
    spread = reference.std(axis=0)
    varying = spread > 1e-12
    if not varying.any():
        return None
    return float(1.0 / (1.0 + (distance[varying] / spread[varying]).mean()))


def representation_sample(policy: HedgePolicy, env: EnvironmentTensors, config: HedgingConfig) -> np.ndarray:
    head = env.rows(torch.arange(min(config.msi_paths, env.spot.shape[0]), device=env.spot.device))
    kept = rollout(policy, head, config, keep_representation=True).representation
    return kept.reshape(-1, kept.shape[-1]).double().cpu().numpy()
