"""The QP's objective against hand-computed two-asset cases, its working-set solver against the full
cvxpy + CLARABEL problem, warm against cold starts, and the fast Ledoit-Wolf against scikit-learn."""

import cvxpy as cp
import numpy as np
import polars as pl
import pytest
from sklearn.covariance import LedoitWolf

from quantlab_assets.compute.backtest.engine import CostParams
from quantlab_assets.compute.portfolio.qp import QpOptimiser, QpParams, alpha_to_daily_return, shrunk_covariance

HORIZON = 21
# Two names, no risk term, no cap, no minimum: only alpha and cost decide.
ALPHA_VS_COST = QpParams(risk_aversion=0.0, max_position=1.0, min_position=0.0)
BOTH = np.ones(2, dtype=bool)


def _daily(alpha_bp: list[float]) -> np.ndarray:
    """Alphas in bp over the horizon as the QP's daily decimal returns (the strategies' conversion)."""
    return pl.select(alpha_to_daily_return(pl.lit(pl.Series(alpha_bp)), HORIZON)).to_series().to_numpy()


def _switch(alpha_bp: list[float], params: QpParams) -> np.ndarray:
    """Weights from a book fully in the first name."""
    return QpOptimiser(2, params).solve(_daily(alpha_bp), np.eye(2) * 1e-4, np.array([1.0, 0.0]), BOTH).weights


@pytest.mark.parametrize(("alpha_bp", "expected"), [
    ([0.0, 30.0], [1.0, 0.0]),  # 30 bp over the holding period < 40 bp round trip (sell 20 bp + buy 20 bp): stay
    ([0.0, 50.0], [0.0, 1.0]),  # 50 bp > 40 bp: move everything
    ([10.0, 45.0], [1.0, 0.0]),  # only the difference counts: 35 bp < 40 bp
])
def test_a_switch_happens_only_when_the_alpha_over_the_holding_period_pays_the_round_trip(alpha_bp, expected) -> None:
    np.testing.assert_allclose(_switch(alpha_bp, ALPHA_VS_COST), expected, atol=1e-7)


def test_alpha_scale_discounts_the_alpha_before_it_meets_the_cost() -> None:
    # 60 bp moves at face value; half of it (30 bp) does not pay 40 bp.
    np.testing.assert_allclose(_switch([0.0, 60.0], ALPHA_VS_COST), [0.0, 1.0], atol=1e-7)
    halved = QpParams(risk_aversion=0.0, max_position=1.0, min_position=0.0, alpha_scale=0.5)
    np.testing.assert_allclose(_switch([0.0, 60.0], halved), [1.0, 0.0], atol=1e-7)


def test_the_cost_is_the_backtests_cost_model() -> None:
    # Doubling the engine's costs doubles the threshold: 50 bp no longer pays 80 bp.
    doubled = QpParams(risk_aversion=0.0, max_position=1.0, min_position=0.0, costs=CostParams().scaled(2.0))
    assert doubled.turnover_cost == pytest.approx(0.004) and "40 bp per unit of turnover" in doubled.describe()
    np.testing.assert_allclose(_switch([0.0, 50.0], doubled), [1.0, 0.0], atol=1e-7)


def test_with_risk_a_trade_stops_where_the_marginal_alpha_no_longer_pays_the_marginal_cost() -> None:
    # Two uncorrelated names (daily variances v1, v2), w in the first, 1 - w in the second. Per unit moved into
    # the first: H*s*(a1 - a2) - 2*gamma*H*(v1*w - v2*(1 - w)) of objective against 2*cost paid, so the
    # optimum without cost is w = (s*(a1 - a2) / (2*gamma) + v2) / (v1 + v2); buying stops where the marginal
    # gain falls to 2*cost/H per day (a1 - a2 reduced by it), selling where it rises to it.
    gamma, v1, v2, cost = 5.0, 4e-4, 1e-4, CostParams().rate
    a1, a2 = _daily([100.0, 0.0])
    params = QpParams(risk_aversion=gamma, max_position=1.0, min_position=0.0)
    optimiser = QpOptimiser(2, params)
    covariance = np.diag([v1, v2])
    free_weight = ((a1 - a2) / (2 * gamma) + v2) / (v1 + v2)
    free = QpOptimiser(2, QpParams(risk_aversion=gamma, max_position=1.0, min_position=0.0,
                                   costs=CostParams(0.0, 0.0, 0.0))).solve(np.array([a1, a2]), covariance, np.zeros(2), BOTH)
    assert free.weights[0] == pytest.approx(free_weight, abs=1e-7)
    # From below the trade stops early, from above too: in between is a band where no trade pays.
    buy_to = ((a1 - a2 - 2 * cost / HORIZON) / (2 * gamma) + v2) / (v1 + v2)
    sell_to = ((a1 - a2 + 2 * cost / HORIZON) / (2 * gamma) + v2) / (v1 + v2)
    assert buy_to < free_weight < 0.3 < sell_to < 0.5
    for start, end in [(0.0, buy_to), (0.5, sell_to), (0.3, 0.3)]:
        solution = optimiser.solve(np.array([a1, a2]), covariance, np.array([start, 1 - start]), BOTH)
        assert solution.weights[0] == pytest.approx(end, abs=1e-7)


def _reference(expected, covariance, previous, params: QpParams, sectors: list[str] | None = None) -> np.ndarray:
    """The full problem over every name, written directly in cvxpy and solved by CLARABEL to tight tolerances."""
    n = expected.size
    w = cp.Variable(n, nonneg=True)
    objective = (params.alpha_scale * params.holding_days * expected @ w
                 - params.risk_aversion * params.holding_days * cp.quad_form(w, cp.psd_wrap(covariance))
                 - params.turnover_cost * cp.norm1(w - previous))
    constraints = [cp.sum(w) == 1, w <= params.max_position]
    for sector, cap in params.sector_caps or ():
        constraints.append(np.array([s == sector for s in sectors], dtype=float) @ w <= cap)
    cp.Problem(cp.Maximize(objective), constraints).solve(solver="CLARABEL", tol_gap_abs=1e-12, tol_gap_rel=1e-12,
                                                          tol_feas=1e-12)
    return w.value


def _dates(n: int, n_dates: int, seed: int = 4):
    """(expected daily return, covariance) per date: a one-factor market and persistent AR(1) alphas."""
    rng = np.random.default_rng(seed)
    market = rng.normal(0, 0.01, (252 + n_dates, 1))
    returns = market * rng.uniform(0.5, 1.5, n) + rng.normal(0, 0.018, (252 + n_dates, n))
    alpha = rng.normal(0, 5e-4, n)
    for k in range(n_dates):
        alpha = 0.9 * alpha + np.sqrt(1 - 0.9 ** 2) * rng.normal(0, 5e-4, n)
        yield alpha, shrunk_covariance(returns[k:k + 252])


# A small working set and tight sector caps, so that the optimality check has names to add and a working
# set can be infeasible where the whole problem is not.
SECTORS = ["Tech"] * 40 + ["Energy"] * 40 + ["Health"] * 40
SEED_PROBLEM = QpParams(min_position=0.0, working_set=6, sector_caps=(("Tech", 0.3), ("Energy", 0.5)))


def test_working_set_solutions_equal_the_full_problems_optimum_and_hold_every_constraint() -> None:
    optimiser = QpOptimiser(120, SEED_PROBLEM, SECTORS)
    previous, rounds = np.zeros(120), []
    for expected, covariance in _dates(120, 6):
        solution = optimiser.solve(expected, covariance, previous, np.ones(120, dtype=bool))
        reference = _reference(expected, covariance, previous, SEED_PROBLEM, SECTORS)
        assert solution.status == "optimal"
        np.testing.assert_allclose(solution.weights, reference, atol=1e-6)
        assert solution.objective == pytest.approx(optimiser.objective(reference, expected, covariance, previous), abs=1e-10)
        w = solution.weights
        assert w.min() >= 0 and w.max() <= 0.2 + 1e-9 and w.sum() == pytest.approx(1.0, abs=1e-12)
        assert w[:40].sum() <= 0.3 + 1e-9 and w[40:80].sum() <= 0.5 + 1e-9
        rounds.append(solution.rounds)
        previous = w
    assert max(rounds) > 1  # the check did add names: the equality above is not the first working set's luck


def test_a_warm_start_gives_the_cold_starts_solution() -> None:
    params = QpParams(sector_caps=(("Tech", 0.3),))
    warm, cold = QpOptimiser(120, params, SECTORS), QpOptimiser(120, params, SECTORS)
    previous = np.zeros(120)
    for expected, covariance in _dates(120, 8, seed=7):
        cold.cold_start()
        from_scratch = cold.solve(expected, covariance, previous, np.ones(120, dtype=bool))
        warmed = warm.solve(expected, covariance, previous, np.ones(120, dtype=bool))
        assert warmed.status == from_scratch.status == "optimal"
        np.testing.assert_allclose(warmed.weights, from_scratch.weights, atol=1e-7)
        previous = warmed.weights


def test_shrunk_covariance_equals_scikit_learns_ledoit_wolf() -> None:
    returns = np.random.default_rng(2).normal(0, 0.02, (252, 80))
    returns[:30, 3] = np.nan  # missing values count as 0, as before
    expected = LedoitWolf().fit(np.nan_to_num(returns)).covariance_
    np.testing.assert_allclose(shrunk_covariance(returns), expected, rtol=1e-12, atol=1e-18)
    wide = np.random.default_rng(3).normal(0, 0.02, (40, 100))  # fewer days than names: strong shrinkage
    np.testing.assert_allclose(shrunk_covariance(wide), LedoitWolf().fit(wide).covariance_, rtol=1e-12, atol=1e-18)
