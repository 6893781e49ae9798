"""Simulated environments: spot paths and per-step cost rates, vectorised over paths and steps.

Spot follows a martingale (zero drift; the hedger's P&L has no risk premium to earn) geometric Brownian
motion with compound-Poisson jumps: per step N ~ Poisson(intensity dt) jumps with log sizes
N(jump_mean, jump_std), the jump compensator keeping E[S_{t+1} | S_t] = S_t. A squeeze path has one
window of `squeeze_length` steps, starting uniformly, in which the cost rate is multiplied.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.special import ndtr

from quantlab_assets.compute.hedging.config import ENVIRONMENTS, HedgingConfig

PATH, STEP, SPOT, COST_RATE = "path", "step", "spot", "cost_rate"


@dataclass(frozen=True)
class EnvironmentPaths:
    """spot: (n_paths, n_steps + 1); cost_rate: (n_paths, n_steps + 1), the rate of a trade at step t
    (t = n_steps is the liquidation); premium: the call's price charged at t = 0."""

    name: str
    spot: np.ndarray
    cost_rate: np.ndarray
    premium: float

    @property
    def n_paths(self) -> int:
        return int(self.spot.shape[0])

    def fingerprint(self) -> str:
        """SHA-256 (16 hex) of the name and the exact bytes of the paths: which data a policy saw."""
        digest = hashlib.sha256(self.name.encode())
        digest.update(np.ascontiguousarray(self.spot).tobytes())
        digest.update(np.ascontiguousarray(self.cost_rate).tobytes())
        return digest.hexdigest()[:16]


def black_scholes_call(spot: float, strike: float, years: float, sigma: float) -> float:
    """Black-Scholes price of a call at zero rates."""
    d1 = (np.log(spot / strike) + 0.5 * sigma**2 * years) / (sigma * np.sqrt(years))
    return float(spot * ndtr(d1) - strike * ndtr(d1 - sigma * np.sqrt(years)))


def simulate_environment(config: HedgingConfig, name: str) -> EnvironmentPaths:
    """The seeded paths of one environment; each environment has its own stream, so adding one
    environment never changes another."""
    spec = config.environment(name)
    rng = np.random.default_rng([config.data_seed, ENVIRONMENTS.index(name)])
    n, steps = config.n_paths, config.n_steps
    dt = 1.0 / config.days_per_year
    shocks = rng.standard_normal((n, steps))
    counts = rng.poisson(spec.jump_intensity * dt, size=(n, steps))
    jump_noise = rng.standard_normal((n, steps))
    # The sum of N iid normal log jumps is normal with N x mean and N x variance.
    jumps = counts * spec.jump_mean + np.sqrt(counts) * spec.jump_std * jump_noise
    compensator = spec.jump_intensity * dt * (np.exp(spec.jump_mean + 0.5 * spec.jump_std**2) - 1.0)
    log_steps = -0.5 * spec.sigma**2 * dt + spec.sigma * np.sqrt(dt) * shocks + jumps - compensator
    spot = config.spot * np.exp(np.concatenate([np.zeros((n, 1)), np.cumsum(log_steps, axis=1)], axis=1))

    squeezed = rng.random(n) < spec.squeeze_probability
    start = rng.integers(0, steps + 1 - config.squeeze_length, size=n)
    t = np.arange(steps + 1)
    window = squeezed[:, None] & (t >= start[:, None]) & (t < (start + config.squeeze_length)[:, None])
    cost_rate = config.cost_rate * np.where(window, config.squeeze_cost_multiplier, 1.0)
    premium = black_scholes_call(config.spot, config.strike, config.maturity_years, spec.sigma)
    return EnvironmentPaths(name, spot, cost_rate, premium)


def environment_frame(paths: EnvironmentPaths) -> pl.DataFrame:
    """Long frame (path, step, spot, cost_rate), sorted by path then step; the premium is a column too,
    so a stored partition is self-contained."""
    n, width = paths.spot.shape
    return pl.DataFrame({
        "environment": pl.Series([paths.name] * (n * width), dtype=pl.String),
        PATH: np.repeat(np.arange(n, dtype=np.int32), width),
        STEP: np.tile(np.arange(width, dtype=np.int32), n),
        SPOT: paths.spot.ravel(),
        COST_RATE: paths.cost_rate.ravel(),
        "premium": np.full(n * width, paths.premium),
    })


def paths_from_frame(frame: pl.DataFrame) -> EnvironmentPaths:
    """Inverse of environment_frame (exact: the floats round-trip through Parquet unchanged)."""
    frame = frame.sort(PATH, STEP)
    n = frame[PATH].n_unique()
    width = frame.height // n
    names = frame["environment"].unique()
    if names.len() != 1 or n * width != frame.height:
        raise ValueError(f"environment frame is not one rectangular environment ({names.to_list()}, {frame.height} rows)")
    return EnvironmentPaths(
        names[0], frame[SPOT].to_numpy().reshape(n, width), frame[COST_RATE].to_numpy().reshape(n, width),
        float(frame["premium"][0]),
    )
