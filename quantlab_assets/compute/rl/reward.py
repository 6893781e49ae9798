"""Seed 003's composite reward: differential Sharpe ratio minus drawdown, cost and excess-turnover penalties.

    reward_t = D_t - lambda_dd * drawdown_t - lambda_cost * cost_t - lambda_turnover * max(0, turnover_t - 0.1)

D_t is Moody & Saffell's (2001) differential Sharpe ratio, the first-order effect of return R_t on an
exponentially weighted Sharpe ratio with decay eta:

    D_t = (B_{t-1} dA_t - 0.5 A_{t-1} dB_t) / (B_{t-1} - A_{t-1}^2)^(3/2),  dA_t = R_t - A_{t-1}, dB_t = R_t^2 - B_{t-1}
    A_t = A_{t-1} + eta dA_t,  B_t = B_{t-1} + eta dB_t

with A_0 = B_0 = 0. The seed's sketch plugged the already-updated A_t, B_t into D_t; the paper's
definition uses the previous moments, as here. While the variance estimate is degenerate
((B - A^2)^(3/2) <= 1e-10, e.g. the first step) D_t is 0, as in the seed.
"""

from __future__ import annotations

from dataclasses import dataclass

DEGENERATE_DENOMINATOR = 1e-10


@dataclass(frozen=True)
class RewardParams:
    eta: float = 0.01
    lambda_dd: float = 0.5
    lambda_cost: float = 1.0
    lambda_turnover: float = 0.1
    # Daily turnover (fraction of the book) that is free of the turnover penalty.
    turnover_allowance: float = 0.1


class DifferentialSharpeReward:
    """Stateful per episode: `reset()` at the episode start, `step()` once per bar."""

    def __init__(self, params: RewardParams = RewardParams()) -> None:
        self.params = params
        self.reset()

    def reset(self) -> None:
        self.a = 0.0  # EMA of returns
        self.b = 0.0  # EMA of squared returns

    def differential_sharpe(self, portfolio_return: float) -> float:
        """D_t for this return; updates the moments."""
        delta_a = portfolio_return - self.a
        delta_b = portfolio_return**2 - self.b
        denominator = (self.b - self.a**2) ** 1.5 if self.b > self.a**2 else 0.0
        value = (self.b * delta_a - 0.5 * self.a * delta_b) / denominator if denominator > DEGENERATE_DENOMINATOR else 0.0
        self.a += self.params.eta * delta_a
        self.b += self.params.eta * delta_b
        return value

    def step(self, portfolio_return: float, cost: float, turnover: float, drawdown: float) -> float:
        """drawdown: 1 - equity / running peak (>= 0); cost and turnover as fractions of the book."""
        p = self.params
        return (self.differential_sharpe(portfolio_return) - p.lambda_dd * max(0.0, drawdown) - p.lambda_cost * cost
                - p.lambda_turnover * max(0.0, turnover - p.turnover_allowance))
