"""Simulated environments: seeded, martingale, shocks only where specified, exact storage round trip."""

import dataclasses

import numpy as np
import pytest

from quantlab_assets.compute.hedging.config import SMOKE, EnvironmentSpec
from quantlab_assets.compute.hedging.environments import (
    black_scholes_call,
    environment_frame,
    paths_from_frame,
    simulate_environment,
)

CONFIG = dataclasses.replace(SMOKE, n_paths=4000)


def test_the_same_seed_gives_the_same_paths_and_another_seed_other_paths() -> None:
    first, again = simulate_environment(CONFIG, "crisis"), simulate_environment(CONFIG, "crisis")
    assert first.fingerprint() == again.fingerprint()
    np.testing.assert_array_equal(first.spot, again.spot)
    other = simulate_environment(dataclasses.replace(CONFIG, data_seed=CONFIG.data_seed + 1), "crisis")
    assert other.fingerprint() != first.fingerprint()


@pytest.mark.parametrize("name", ["low", "medium", "high", "crisis", "stress_jumps"])
def test_spot_is_a_martingale_with_the_environments_volatility(name: str) -> None:
    paths = simulate_environment(CONFIG, name)
    terminal = paths.spot[:, -1]
    assert abs(terminal.mean() / CONFIG.spot - 1) < 4 * terminal.std() / CONFIG.spot / np.sqrt(terminal.size)
    spec = CONFIG.environment(name)
    diffusion = np.diff(np.log(paths.spot), axis=1).std() * np.sqrt(CONFIG.days_per_year)
    total = np.sqrt(spec.sigma**2 + spec.jump_intensity * (spec.jump_mean**2 + spec.jump_std**2))
    assert diffusion == pytest.approx(total, rel=0.05)


def test_jumps_and_squeezes_appear_only_where_the_environment_has_them() -> None:
    calm, crisis = simulate_environment(CONFIG, "medium"), simulate_environment(CONFIG, "crisis")
    assert np.all(calm.cost_rate == CONFIG.cost_rate)
    squeezed = crisis.cost_rate > CONFIG.cost_rate
    assert 0.4 < squeezed.any(axis=1).mean() < 0.6  # squeeze_probability 0.5
    assert set(np.unique(squeezed.sum(axis=1))) == {0, CONFIG.squeeze_length}
    np.testing.assert_allclose(crisis.cost_rate[squeezed], CONFIG.cost_rate * CONFIG.squeeze_cost_multiplier)
    # Downward jumps fatten the left tail of daily returns far beyond the calm regime's.
    assert np.diff(np.log(crisis.spot), axis=1).min() < 3 * np.diff(np.log(calm.spot), axis=1).min()


def test_stored_frame_round_trips_exactly() -> None:
    paths = simulate_environment(CONFIG, "stress_squeeze")
    back = paths_from_frame(environment_frame(paths).sample(fraction=1.0, shuffle=True, seed=1))
    assert back.fingerprint() == paths.fingerprint() and back.premium == paths.premium


def test_premium_is_black_scholes_at_the_diffusion_vol() -> None:
    # At the money, zero rates: C ~ 0.4 S sigma sqrt(T) for small sigma sqrt(T).
    years = CONFIG.maturity_years
    assert black_scholes_call(100.0, 100.0, years, 0.2) == pytest.approx(0.3989 * 100 * 0.2 * np.sqrt(years), rel=0.01)
    assert simulate_environment(CONFIG, "crisis").premium == black_scholes_call(100.0, 100.0, years, CONFIG.crisis.sigma)
    assert EnvironmentSpec(sigma=0.1).jump_intensity == 0.0
