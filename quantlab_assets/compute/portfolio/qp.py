"""Seed 004's mean-variance QP with a turnover penalty, solved per rebalance date with cvxpy.

    maximise  a'w - gamma * w' S w - kappa * |w - w_prev|_1
    s.t.      w >= 0, sum(w) = 1, w <= max_position, sector sums <= their caps

S is the Ledoit-Wolf shrunk covariance (scikit-learn) of the trailing `window` daily returns up to
the decision date; a is the expected daily return (decimal); w_prev the previous target drifted by
the returns since it was set. The problem is compiled once per universe with cvxpy Parameters (a,
w_prev, the Cholesky factor of S, per-asset upper bounds) and re-solved for each date (DPP).

Minimum position: positions under `min_position` (2 %) are zeroed by re-solving the same QP with
their upper bound set to 0, so the caps and full investment still hold exactly (a plain "zero and
renormalise" would push names above the 20 % cap); repeated until no position is below the minimum.
At least ceil(1 / max_position) names (the largest) stay allowed, so a diffuse optimum (every name
under 2 %) becomes the best book of the largest names rather than an empty one.
A date with fewer eligible names than 1 / max_position, or where the solver does not reach an optimal
status, is reported as infeasible with its reason (no weights for that date: the book drifts). Dates
before any name has `min_observations` days of returns are "warm-up", not decisions.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import cvxpy as cp
import numpy as np
import polars as pl
from sklearn.covariance import LedoitWolf

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.backtest.engine import RETURN, SIGNAL_DATE, WEIGHT, wide_panel
from quantlab_assets.compute.portfolio.constraints import cap_and_fill
from quantlab_assets.compute.portfolio.rules import WEIGHT_COLUMNS, rebalance_dates

WARM_UP = "warm-up"
# Numerical dust below this is a zero weight (solver tolerance is about 1e-8).
WEIGHT_EPS = 1e-6


@dataclass(frozen=True)
class QpParams:
    # Mid-range of the usual 1-10; with daily returns and daily alpha both terms are O(1e-4).
    risk_aversion: float = 5.0
    # The 20 bp round-trip cost amortised over a 21-day holding horizon, per unit of turnover per day.
    turnover_penalty: float = 0.002 / 21
    max_position: float = 0.20
    min_position: float = 0.02
    # sector -> largest total weight; None: no sector caps.
    sector_caps: tuple[tuple[str, float], ...] | None = None
    window: int = 252
    min_observations: int = 63
    every: int = 5
    solver: str = "CLARABEL"
    max_passes: int = 10


@dataclass(frozen=True)
class QpSolution:
    weights: np.ndarray  # (N,), zeros when infeasible
    status: str  # "optimal" or "infeasible: <reason>"
    objective: float | None
    passes: int
    seconds: float


def shrunk_covariance(window_returns: np.ndarray) -> np.ndarray:
    """Ledoit-Wolf covariance of (days, N) returns, missing values as 0."""
    return LedoitWolf().fit(np.nan_to_num(window_returns)).covariance_


class QpOptimiser:
    """One compiled QP for a fixed list of assets (and their sectors)."""

    def __init__(self, n_assets: int, params: QpParams = QpParams(), sectors: list[str] | None = None) -> None:
        self.params = params
        self.n_assets = n_assets
        self.expected = cp.Parameter(n_assets)
        self.previous = cp.Parameter(n_assets, nonneg=True)
        self.factor = cp.Parameter((n_assets, n_assets))  # upper-triangular U with S = U'U
        self.upper = cp.Parameter(n_assets, nonneg=True)
        self.w = cp.Variable(n_assets, nonneg=True)
        constraints = [cp.sum(self.w) == 1, self.w <= self.upper]
        if params.sector_caps and sectors is not None:
            for sector, cap in params.sector_caps:
                members = np.array([s == sector for s in sectors], dtype=float)
                if members.any():
                    constraints.append(members @ self.w <= cap)
        objective = (
            self.expected @ self.w
            - params.risk_aversion * cp.sum_squares(self.factor @ self.w)
            - params.turnover_penalty * cp.norm1(self.w - self.previous)
        )
        self.problem = cp.Problem(cp.Maximize(objective), constraints)

    def solve(self, expected: np.ndarray, covariance: np.ndarray, previous: np.ndarray, eligible: np.ndarray) -> QpSolution:
        start = time.perf_counter()
        p = self.params
        if eligible.sum() * p.max_position < 1 - 1e-12:
            return QpSolution(np.zeros(self.n_assets), f"infeasible: {int(eligible.sum())} eligible names cannot hold "
                              f"100 % at <= {p.max_position:.0%} each", None, 0, time.perf_counter() - start)
        self.expected.value = np.where(eligible, expected, 0.0)
        self.previous.value = previous
        self.factor.value = np.linalg.cholesky(covariance + 1e-12 * np.eye(self.n_assets)).T
        allowed = eligible.copy()
        for passes in range(1, p.max_passes + 1):
            self.upper.value = np.where(allowed, p.max_position, 0.0)
            try:
                self.problem.solve(solver=p.solver)
            except cp.SolverError as error:
                return QpSolution(np.zeros(self.n_assets), f"infeasible: solver error {error}", None, passes,
                                  time.perf_counter() - start)
            if self.problem.status != cp.OPTIMAL:
                return QpSolution(np.zeros(self.n_assets), f"infeasible: solver status {self.problem.status}", None,
                                  passes, time.perf_counter() - start)
            weights = np.where(self.w.value > WEIGHT_EPS, self.w.value, 0.0)
            small = (weights > 0) & (weights < p.min_position - WEIGHT_EPS)
            if not small.any():
                return QpSolution(cap_and_fill(weights, p.max_position), "optimal", float(self.problem.value), passes,
                                  time.perf_counter() - start)
            # Never allow fewer names than full investment under the cap needs: the largest ones stay.
            keep = max(int((weights >= p.min_position - WEIGHT_EPS).sum()), math.ceil(1 / p.max_position - 1e-9))
            allowed &= False
            allowed[np.argsort(-weights, kind="stable")[:keep]] = True
            allowed &= eligible
        return QpSolution(np.zeros(self.n_assets), f"infeasible: positions under {p.min_position:.0%} remain after "
                          f"{p.max_passes} passes", None, p.max_passes, time.perf_counter() - start)


def qp_weights(
    expected: pl.DataFrame,
    returns: pl.DataFrame,
    params: QpParams = QpParams(),
    sectors: dict[str, str] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Target weights per rebalance date and a diagnostics row per date (status, objective, passes, seconds).

    expected: date, ticker, expected (daily decimal return forecast made with data up to `date`).
    returns: date, ticker, return (the covariance uses the `window` days up to and including `date`).
    """
    tickers = sorted(expected[c.TICKER].unique().to_list())
    all_dates = returns[c.DATE].unique().sort()
    panel = wide_panel(returns.filter(pl.col(c.TICKER).is_in(tickers)), all_dates, tickers, RETURN)
    observed = wide_panel(returns.filter(pl.col(c.TICKER).is_in(tickers)).with_columns(pl.lit(1.0).alias("_seen")),
                     all_dates, tickers, "_seen")
    dates = rebalance_dates(expected[c.DATE], params.every)
    forecasts = wide_panel(expected.rename({"expected": "_expected"}).with_columns(pl.col("_expected").fill_nan(None)),
                      dates, tickers, "_expected")
    present = wide_panel(expected.filter(pl.col("expected").is_finite()).with_columns(pl.lit(1.0).alias("_has")),
                    dates, tickers, "_has") > 0
    optimiser = QpOptimiser(len(tickers), params, [sectors.get(t, "") for t in tickers] if sectors else None)
    bar = np.searchsorted(all_dates.to_numpy(), dates.to_numpy())
    growth = np.cumprod(1.0 + panel, axis=0)
    last_weights, last_bar = np.zeros(len(tickers)), None
    rows, diagnostics = [], []
    for k, t in enumerate(bar):  # sequential by nature: each date starts from the previous solution
        lo = max(0, t + 1 - params.window)
        enough = observed[lo:t + 1].sum(axis=0) >= params.min_observations
        eligible = present[k] & enough
        if not enough.any():
            diagnostics.append({c.DATE: dates[k], "status": WARM_UP, "objective": None, "passes": 0, "seconds": 0.0,
                                "n_positions": 0, "eligible": 0})
            continue
        previous = last_weights
        if last_bar is not None:
            drifted = last_weights * growth[t] / growth[last_bar]
            previous = drifted / drifted.sum()
        solution = optimiser.solve(forecasts[k], shrunk_covariance(panel[lo:t + 1]), previous, eligible)
        diagnostics.append({c.DATE: dates[k], "status": solution.status, "objective": solution.objective,
                            "passes": solution.passes, "seconds": solution.seconds,
                            "n_positions": int((solution.weights > 0).sum()), "eligible": int(eligible.sum())})
        if solution.status != "optimal":
            continue
        held = np.flatnonzero(solution.weights)
        rows.append(pl.DataFrame({c.DATE: [dates[k]] * held.size, c.TICKER: [tickers[i] for i in held],
                                  WEIGHT: solution.weights[held]}))
        last_weights, last_bar = solution.weights, t
    weights = (
        pl.concat(rows).with_columns(pl.col(c.DATE).alias(SIGNAL_DATE)).select(WEIGHT_COLUMNS)
        if rows else pl.DataFrame(schema={c.DATE: pl.Date, c.TICKER: pl.String, WEIGHT: pl.Float64, SIGNAL_DATE: pl.Date})
    )
    return weights, pl.DataFrame(diagnostics, schema_overrides={"objective": pl.Float64})


def alpha_to_daily_return(alpha_bp: pl.Expr, horizon_days: int) -> pl.Expr:
    """A forecast in basis points over `horizon_days` as a daily decimal return (the QP's units)."""
    return alpha_bp * 1e-4 / horizon_days

