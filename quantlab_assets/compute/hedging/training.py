"""Training of one policy: ERM, head-only IRMv1, or V-REx, on the training environments only, with the
checkpoint chosen on the validation environment (`high`).

Objective per minibatch (batch_paths paths of each training environment e, R_e its CVaR):
- erm:      mean_e R_e, extractor and head from a fresh seeded initialisation;
- irm_head: mean_e R_e + lambda sum_e IRMv1_e, starting from the ERM policy of the same seed with the
            extractor frozen (no gradient, not in the optimiser): only the head moves;
- vrex:     mean_e R_e + beta Var_e(R_e), the whole network from the fresh initialisation ERM used.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass

import numpy as np
import polars as pl
import torch

from quantlab_assets.compute.hedging.config import ERM, HOLDOUT, IRM_HEAD, TRAIN, VALIDATION, VREX, HedgingConfig
from quantlab_assets.compute.hedging.environments import EnvironmentPaths
from quantlab_assets.compute.hedging.diagnostics import msi, representation_sample
from quantlab_assets.compute.hedging.policy import (
    EnvironmentTensors,
    HedgePolicy,
    cpu_threads,
    load_policy,
    new_policy,
    rollout,
    state_bytes,
)
from quantlab_assets.compute.hedging.risk import cvar, irmv1_penalty, vrex_penalty
from quantlab_assets.compute.torch_runtime.device import seed_everything


class HeldOutEnvironmentError(ValueError):
    """Training or model selection was handed an environment it must never see."""


@dataclass(frozen=True)
class TrainedPolicy:
    state: bytes  # torch.save of the selected checkpoint's state_dict
    best_iteration: int
    validation_cvar: float
    # At every evaluation: objective, penalty, minibatch risk per training environment and their IG / WG,
    # CVaR on `high` and the MSI of `high` against training (the early diagnostics of seed 000).
    history: pl.DataFrame
    seen: dict[str, str]  # environment -> fingerprint of every data set that reached training or selection
    erm_state_sha: str | None  # irm_head: the ERM checkpoint it started from


def sha(state: bytes) -> str:
    return hashlib.sha256(state).hexdigest()[:16]


def _guard(train: dict[str, EnvironmentPaths], validation: EnvironmentPaths) -> None:
    if sorted(train) != sorted(TRAIN) or any(paths.name != name for name, paths in train.items()):
        raise HeldOutEnvironmentError(f"training takes exactly {TRAIN}, got {sorted(train)}")
    if validation.name != VALIDATION:
        raise HeldOutEnvironmentError(f"model selection uses {VALIDATION!r} only, got {validation.name!r}")
    assert not set(train) & set(HOLDOUT)


def _objective(policy: HedgePolicy, batches: list[EnvironmentTensors], config: HedgingConfig, method: str,
               strength: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(objective, per-environment risks, penalty) of one minibatch."""
    if method == IRM_HEAD:
        scale = torch.ones((), device=batches[0].spot.device, requires_grad=True)
        risks = torch.stack([cvar(-rollout(policy, b, config, scale).pnl, config.alpha) for b in batches])
        penalty = torch.stack([irmv1_penalty(r, scale) for r in risks]).sum()
    else:
        risks = torch.stack([cvar(-rollout(policy, b, config).pnl, config.alpha) for b in batches])
        penalty = vrex_penalty(risks) if method == VREX else torch.zeros((), device=risks.device)
    return risks.mean() + strength * penalty, risks, penalty


def train_policy(config: HedgingConfig, method: str, strength: float, seed: int, train: dict[str, EnvironmentPaths],
                 validation: EnvironmentPaths, device: torch.device, erm_state: bytes | None = None) -> TrainedPolicy:
    _guard(train, validation)
    with cpu_threads(device):
        return _train(config, method, strength, seed, train, validation, device, erm_state)


def _train(config: HedgingConfig, method: str, strength: float, seed: int, train: dict[str, EnvironmentPaths],
           validation: EnvironmentPaths, device: torch.device, erm_state: bytes | None) -> TrainedPolicy:
    seed_everything(seed)
    if method == IRM_HEAD:
        if erm_state is None:
            raise ValueError("irm_head starts from the ERM policy of the same seed: erm_state is required")
        policy = load_policy(config, erm_state, device)
        policy.extractor.requires_grad_(False)
        parameters = list(policy.head.parameters())
        iterations = config.head_iterations
    elif method in (ERM, VREX):
        policy = new_policy(config).to(device)
        parameters = list(policy.parameters())
        iterations = config.iterations
    else:
        raise ValueError(f"unknown method {method!r}")
    optimiser = torch.optim.Adam(parameters, lr=config.learning_rate)
    environments = [EnvironmentTensors.of(train[name], device) for name in TRAIN]
    held = EnvironmentTensors.of(validation, device)
    # Batches drawn on a CPU generator: the same seed gives the same batches on any device.
    generator = torch.Generator().manual_seed(seed)

    def validate() -> tuple[float, float | None]:
        """CVaR on `high`, and the MSI of `high` against the training environments (representation drift)."""
        with torch.no_grad():
            reference = np.concatenate([representation_sample(policy, env, config) for env in environments])
            return (float(cvar(-rollout(policy, held, config).pnl, config.alpha)),
                    msi(representation_sample(policy, held, config), reference, config.msi_quantiles))

    best_cvar, msi_high = validate()
    best_iteration, best_state = 0, copy.deepcopy(policy.state_dict())
    rows = [{"iteration": 0, "objective": None, "penalty": None, **{f"risk_{n}": None for n in TRAIN},
             "ig_train": None, "wg_train": None, "validation_cvar": best_cvar, "msi_high": msi_high}]
    for iteration in range(1, iterations + 1):
        batches = [env.rows(torch.randint(env.spot.shape[0], (config.batch_paths,), generator=generator).to(device))
                   for env in environments]
        objective, risks, penalty = _objective(policy, batches, config, method, strength)
        optimiser.zero_grad(set_to_none=True)
        objective.backward()
        optimiser.step()
        if iteration % config.eval_every == 0 or iteration == iterations:
            score, msi_high = validate()
            rows.append({"iteration": iteration, "objective": objective.item(), "penalty": penalty.item(),
                         **{f"risk_{n}": r.item() for n, r in zip(TRAIN, risks, strict=True)},
                         "ig_train": (risks.max() - risks.min()).item(), "wg_train": risks.max().item(),
                         "validation_cvar": score, "msi_high": msi_high})
            if score < best_cvar:
                best_cvar, best_iteration, best_state = score, iteration, copy.deepcopy(policy.state_dict())
    policy.load_state_dict(best_state)
    return TrainedPolicy(
        state=state_bytes(policy), best_iteration=best_iteration, validation_cvar=best_cvar,
        history=pl.DataFrame(rows, schema={"iteration": pl.Int64, "objective": pl.Float64, "penalty": pl.Float64,
                                           **{f"risk_{n}": pl.Float64 for n in TRAIN}, "ig_train": pl.Float64,
                                           "wg_train": pl.Float64, "validation_cvar": pl.Float64, "msi_high": pl.Float64}),
        seen={name: paths.fingerprint() for name, paths in {**train, VALIDATION: validation}.items()},
        erm_state_sha=sha(erm_state) if erm_state is not None else None,
    )
