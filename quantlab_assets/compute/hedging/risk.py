"""CVaR of the hedging loss in the Rockafellar-Uryasev form, and the two invariance penalties.

CVaR_a(L) = min_q q + E[(L - q)^+] / (1 - a). On n equally weighted losses the minimiser is the
ceil(n a)-th smallest loss, so `cvar` evaluates the objective there: exactly the empirical CVaR (the mean
of the worst n (1 - a) losses when that is a whole number), differentiable in the losses. With q held at
its minimiser the gradient is CVaR's own (envelope theorem), which the IRMv1 gradient relies on.
"""

from __future__ import annotations

import math

import torch


def var_index(n: int, alpha: float) -> int:
    """0-based rank of the Rockafellar-Uryasev minimiser q among n sorted losses."""
    # The tolerance absorbs the float error of n * alpha (20 * 0.95 must give rank 19, not 20).
    return max(0, math.ceil(n * alpha - 1e-9) - 1)


def cvar(losses: torch.Tensor, alpha: float) -> torch.Tensor:
    """CVaR at level alpha of a 1-D tensor of losses (loss = -P&L; larger is worse)."""
    if losses.ndim != 1 or losses.numel() == 0:
        raise ValueError(f"cvar needs a non-empty 1-D tensor of losses, got shape {tuple(losses.shape)}")
    q = torch.kthvalue(losses.detach().cpu(), var_index(losses.numel(), alpha) + 1).values.to(losses.device)
    return q + torch.relu(losses - q).mean() / (1.0 - alpha)


def irmv1_penalty(risk: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """IRMv1 (Arjovsky et al. 2019): the squared gradient of one environment's risk with respect to a
    dummy scalar multiplier `scale` = 1.0 on the head's output; zero when the head is optimal for that
    environment as it stands. Kept in the graph, so the penalty itself trains the head."""
    (gradient,) = torch.autograd.grad(risk, scale, create_graph=True)
    return gradient.pow(2).sum()


def vrex_penalty(risks: torch.Tensor) -> torch.Tensor:
    """V-REx (Krueger et al. 2021): the variance (population, 1/E) of the per-environment risks."""
    return risks.var(unbiased=False)
