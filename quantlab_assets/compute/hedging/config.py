"""The one configuration of the hedging study (seed 000), its environments and its methods.

Contract: the hedger is short one European call (strike K, maturity n_steps trading days) on an
underlying starting at S0, sold at the Black-Scholes price of the environment's diffusion volatility
(jumps are not priced in: the crisis hurts). It trades the underlying at the close of every day
t = 0 .. n_steps-1 and liquidates at maturity; every trade pays `cost_rate` x |traded shares| x spot,
the rate multiplied by `squeeze_cost_multiplier` inside liquidity-squeeze windows.
Terminal hedged P&L = premium - (S_T - K)^+ + sum_t delta_t (S_{t+1} - S_t) - costs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Final

from quantlab_assets.compute.models.tracking import config_hash

TRAIN: Final = ("low", "medium")
VALIDATION: Final = "high"
# Never seen by training or model selection; evaluated only.
HOLDOUT: Final = ("crisis", "stress_jumps", "stress_squeeze")
ENVIRONMENTS: Final = (*TRAIN, VALIDATION, *HOLDOUT)

ERM: Final = "erm"
IRM_HEAD: Final = "irm_head"
VREX: Final = "vrex"
METHODS: Final = (ERM, IRM_HEAD, VREX)


@dataclass(frozen=True)
class EnvironmentSpec:
    """One market regime: diffusion vol, compound-Poisson jumps (log sizes N(mean, std)), liquidity squeezes."""

    sigma: float
    jump_intensity: float = 0.0  # expected jumps per year
    jump_mean: float = 0.0
    jump_std: float = 0.0
    squeeze_probability: float = 0.0  # share of paths that live through one squeeze window


@dataclass(frozen=True)
class HedgingConfig:
    # Contract and market (see the module docstring).
    spot: float = 100.0
    strike: float = 100.0
    n_steps: int = 30  # daily rebalancing over about six trading weeks
    days_per_year: int = 252
    cost_rate: float = 0.001  # 10 bp of traded notional, the lab's backtest cost order
    squeeze_cost_multiplier: float = 10.0
    squeeze_length: int = 5  # trading days a squeeze lasts
    # Realised-vol feature: RiskMetrics' daily EWMA decay, started at a neutral prior vol.
    ewma_decay: float = 0.94
    prior_vol: float = 0.2
    # Regimes: low / medium / high vol for training and validation; the crisis adds frequent
    # downward jumps and squeezes; the stress variants isolate each of the two shocks at medium vol.
    low: EnvironmentSpec = EnvironmentSpec(sigma=0.10)
    medium: EnvironmentSpec = EnvironmentSpec(sigma=0.20)
    high: EnvironmentSpec = EnvironmentSpec(sigma=0.35)
    crisis: EnvironmentSpec = EnvironmentSpec(sigma=0.45, jump_intensity=25.0, jump_mean=-0.04, jump_std=0.06,
                                              squeeze_probability=0.5)
    stress_jumps: EnvironmentSpec = EnvironmentSpec(sigma=0.20, jump_intensity=25.0, jump_mean=-0.04, jump_std=0.06)
    stress_squeeze: EnvironmentSpec = EnvironmentSpec(sigma=0.20, squeeze_probability=1.0)
    n_paths: int = 20_000
    data_seed: int = 2024  # environments are one fixed data set; policy seeds vary initialisation and batches
    # Policy: features (log-moneyness, time left, previous delta, realised vol) -> extractor -> head.
    hidden: int = 32
    representation: int = 16
    # Risk: CVaR at this level of the loss -P&L, in the Rockafellar-Uryasev form.
    alpha: float = 0.95
    # Training (Adam, minibatches of paths per environment); model selection on `high` every eval_every.
    learning_rate: float = 5e-3
    batch_paths: int = 2048
    iterations: int = 400
    head_iterations: int = 200  # irm_head fine-tunes only the head, starting from the ERM policy
    eval_every: int = 25
    irm_lambdas: tuple[float, ...] = (1e-2, 1e-1, 1.0)
    vrex_betas: tuple[float, ...] = (1.0, 5.0, 10.0)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    # Evaluation: paths per environment used for the MSI's representation quantiles; CI level across seeds.
    msi_paths: int = 1000
    msi_quantiles: int = 99
    confidence: float = 0.95
    # Success criterion of seed 000.
    min_cvar_improvement: float = 0.10
    max_turnover_increase: float = 0.20

    def environment(self, name: str) -> EnvironmentSpec:
        if name not in ENVIRONMENTS:
            raise KeyError(f"unknown environment {name!r}: expected one of {ENVIRONMENTS}")
        return getattr(self, name)

    @property
    def maturity_years(self) -> float:
        return self.n_steps / self.days_per_year

    def strengths(self, method: str) -> tuple[float, ...]:
        return {ERM: (0.0,), IRM_HEAD: self.irm_lambdas, VREX: self.vrex_betas}[method]

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def hash(self) -> str:
        return config_hash(self.as_dict())


# The seed asks for seed 0 in smoke checks; tiny networks and few paths so every method trains in a
# second on a CPU. A second seed lets the across-seed interval exist (it is wide, so inconclusive).
SMOKE = HedgingConfig(n_paths=256, hidden=8, representation=4, batch_paths=128, iterations=16, head_iterations=8,
                      eval_every=8, seeds=(0, 1), msi_paths=64, msi_quantiles=19)
PRESETS: Final = {"study": HedgingConfig(), "smoke": SMOKE}


def preset(name: str, **overrides: Any) -> HedgingConfig:
    if name not in PRESETS:
        raise KeyError(f"unknown hedging preset {name!r}: expected one of {sorted(PRESETS)}")
    return dataclasses.replace(PRESETS[name], **overrides)


def policy_key(method: str, strength: float, seed: int) -> str:
    """Partition key of one trained policy: 'erm_0_seed0', 'irm_head_0.1_seed0', 'vrex_5_seed3'."""
    return f"{method}_{strength:g}_seed{seed}"


def parse_policy_key(key: str) -> tuple[str, float, int]:
    head, seed = key.rsplit("_seed", 1)
    method, strength = head.rsplit("_", 1)
    if method not in METHODS:
        raise ValueError(f"policy key {key!r}: unknown method {method!r}")
    return method, float(strength), int(seed)


def policy_keys(config: HedgingConfig) -> list[str]:
    return [policy_key(m, s, seed) for seed in config.seeds for m in METHODS for s in config.strengths(m)]
