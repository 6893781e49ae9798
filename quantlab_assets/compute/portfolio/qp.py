"""The mean-variance QP with explicit trading costs (seeds 003/004), solved per rebalance date.

Over a holding period of H days (`holding_days`), with a the expected daily return (decimal) that the
stacked alpha implies (`alpha_to_daily_return`: bp over the alpha's horizon -> daily decimal):

    maximise  s * H * a'w  -  gamma * H * w' S w  -  cost * |w - w_prev|_1
    s.t.      w >= 0, sum(w) = 1, w <= max_position, sector sums <= their caps

- s (`alpha_scale`) says how far the alpha is trusted as a return forecast: 1 takes it at face value,
  0.5 believes half of it (a shrunk, over-confident forecast).
- S is the Ledoit-Wolf shrunk covariance of the trailing `window` daily returns up to the decision date,
  so H * S is the covariance of the holding period's return and gamma (`risk_aversion`) is unit-free.
- cost is the backtest's cost per unit of traded notional (commission + slippage + half-spread, 20 bp
  by default), read from the engine's `CostParams`, and |w - w_prev|_1 is exactly the turnover the
  engine charges it on. w_prev is the previous target drifted by the returns since it was set (what the
  book holds when the new target is traded), or nothing on the first decision.
Every term is a return over the holding period, in the same units: moving a weight d from one name to
another pays 2 * cost * d once and earns s * H * d * (their alpha difference), less the change in risk,
so a trade happens only when the alpha it captures over the holding period beats its cost. With s = 1
and H = 21 this is the daily objective with a penalty of cost / 21 per unit of turnover, times 21.

Solver: CLARABEL on a working set of names, warm-started from the previous date's solution and checked
against the whole problem's optimality conditions (QpOptimiser), so each date costs a small QP instead
of one over every name; the covariance is computed without scikit-learn's O(N^2 T) extra product.

Minimum position: positions under `min_position` (2 %) are zeroed by re-solving the same QP with their
upper bound set to 0, so the caps and full investment still hold exactly (a plain "zero and renormalise"
would push names above the 20 % cap); repeated until no position is below the minimum. At least
ceil(1 / max_position) names (the largest) stay allowed, so a diffuse optimum (every name under 2 %)
becomes the best book of the largest names rather than an empty one. A date with fewer eligible names
than 1 / max_position, or where the solver does not reach a solved status, is reported as infeasible with
its reason (no weights for that date: the book drifts). Dates before any name has `min_observations` days
of returns are "warm-up", not decisions.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import clarabel
import numpy as np
import polars as pl
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.backtest.engine import BPS, RETURN, SIGNAL_DATE, WEIGHT, CostParams, wide_panel
from quantlab_assets.compute.params import described, described_factory
from quantlab_assets.compute.portfolio.constraints import cap_and_fill
from quantlab_assets.compute.portfolio.rules import WEIGHT_COLUMNS, rebalance_dates

WARM_UP = "warm-up"
# Numerical dust below this is a zero weight (the solver's weights are exact to about 1e-9).
WEIGHT_EPS = 1e-6


@dataclass(frozen=True)
class QpParams:
    risk_aversion: float = described(
        5.0, "gamma in s*H*a'w - gamma*H*w'Sw - cost*|w - w_prev|: the penalty on the holding period's variance "
             "(unit-free; the usual range is 1-10).")
    alpha_scale: float = described(
        1.0, "s: the share of the stacked alpha (bp over its horizon) taken as an expected return; 1 trusts it "
             "at face value, below 1 shrinks an over-confident forecast so fewer trades pay their cost.")
    holding_days: int = described(
        21, "H: days a position is expected to be held. The daily alpha and variance are multiplied by it, so "
            "that a trade's alpha over the holding period is weighed against its one-off cost (21: the "
            "stacked alpha's horizon).")
    costs: CostParams = described_factory(
        CostParams, "Cost per unit of traded notional charged in the objective: the backtest's cost model.")
    max_position: float = described(0.20, "Largest weight of one name.")
    min_position: float = described(0.02, "Smallest weight of a held name: smaller positions are zeroed by re-solving.")
    # sector -> largest total weight; None: no sector caps.
    sector_caps: tuple[tuple[str, float], ...] | None = None
    window: int = described(252, "Trailing days of returns in the covariance.")
    min_observations: int = described(63, "Days of returns a name needs in the window to be eligible.")
    every: int = described(5, "Decide every `every`-th date of the alpha.")
    max_passes: int = described(10, "Most re-solves that zero positions under min_position.")
    working_set: int = described(
        40, "Names with the highest alpha in each date's first working set (with the previous holdings and "
            "solution), and the most names added per round when the optimality check fails.")
    max_rounds: int = described(20, "Most working-set rounds per solve before a date is reported infeasible.")
    tolerance: float = described(
        1e-9, "A name left out of the working set may have a reduced cost down to -tolerance (decimal return "
              "per unit weight over the holding period).")

    @property
    def turnover_cost(self) -> float:
        """Cost of one unit of |w - w_prev|_1 in the objective (decimal return)."""
        return self.costs.rate

    def describe(self) -> str:
        """The objective and constraints in words, with the values used (for metadata and the report)."""
        return (f"alpha x {self.alpha_scale:g} over a {self.holding_days}-day holding period, risk aversion "
                f"{self.risk_aversion:g}, {self.turnover_cost / BPS:g} bp per unit of turnover ({self.costs.describe()}); "
                f"weights {self.min_position:.0%} to {self.max_position:.0%}, fully invested, decided every "
                f"{self.every} dates on a {self.window}-day Ledoit-Wolf covariance")


@dataclass(frozen=True)
class QpSolution:
    weights: np.ndarray  # (N,), zeros when infeasible
    status: str  # "optimal" or "infeasible: <reason>"
    objective: float | None  # expected return over the holding period, less risk and cost
    passes: int
    seconds: float
    rounds: int = 0  # working-set solves over all passes


def shrunk_covariance(window_returns: np.ndarray) -> np.ndarray:
    """Ledoit-Wolf covariance of (days, N) returns, missing values as 0; equal to scikit-learn's
    `LedoitWolf().fit(x).covariance_` (tested) in O(N^2 T) with one matrix product: scikit-learn also
    forms (x^2)'(x^2), whose sum of entries is the sum over days of (sum_i x_ti^2)^2, O(N T)."""
    x = np.nan_to_num(window_returns)
    days, n = x.shape
    if n == 1:
        return np.atleast_2d(x.var())
    x = x - x.mean(axis=0)
    empirical = x.T @ x / days
    squares = x * x
    mu = squares.sum() / days / n
    delta_sum = float(np.einsum("ij,ij->", empirical, empirical))
    beta_sum = float((squares.sum(axis=1) ** 2).sum())
    beta = (beta_sum / days - delta_sum) / (n * days)
    delta = (delta_sum - n * mu * mu) / n  # sum of squares of (empirical - mu I), per name
    beta = min(beta, delta)
    shrinkage = 0.0 if beta == 0 else beta / delta
    shrunk = (1.0 - shrinkage) * empirical
    shrunk.flat[:: n + 1] += shrinkage * mu
    return shrunk


class QpOptimiser:
    """The QP for a fixed list of assets (and their sectors), solved per date on a working set of names.

    The optimum holds a few dozen names out of hundreds, so each date is solved on a small working set
    (the previous date's holdings and solution, the names with the highest alpha) with CLARABEL, and the
    result is checked against the full problem's optimality conditions with the solution's duals: a name
    left out is correctly at zero when its reduced cost g_i + cost + nu + lambda_sector(i) >= 0 (g the
    gradient of the minimised objective, nu the budget's and lambda the sector caps' duals). Names that
    fail the check join the working set and it is solved again, so the answer is the full problem's
    optimum (tested against the full cvxpy + CLARABEL solve). The first working set also holds the previous
    date's solution (warm start; `cold_start` forgets it), though the small working set, not the warm start,
    is what makes a date fast (benchmarks/README.md, `qp_per_date.py`).

    Restricted variables x = [w, u, v] with w - u + v = w_prev, so |w - w_prev|_1 = sum(u + v) at the
    optimum (a positive cost never pays for u and v both non-zero)."""

    def __init__(self, n_assets: int, params: QpParams = QpParams(), sectors: list[str] | None = None) -> None:
        self.params = params
        self.n_assets = n_assets
        members, caps = [], []
        if params.sector_caps and sectors is not None:
            for sector, cap in params.sector_caps:
                in_sector = np.array([s == sector for s in sectors], dtype=bool)
                if in_sector.any():
                    members.append(in_sector)
                    caps.append(cap)
        self.sector_members = np.array(members, dtype=bool).reshape(len(members), n_assets)
        self.sector_caps = np.array(caps, dtype=float)
        self.settings = clarabel.DefaultSettings()
        self.settings.verbose = False
        self.settings.presolve_enable = False  # duals are read row by row: keep every row
        # Tighter than the defaults (1e-8): the optimum is flat along some directions, and the weights should
        # not move by more than ~1e-6 between equivalent solves (warm and cold start, this and a full solve).
        self.settings.tol_gap_abs = self.settings.tol_gap_rel = self.settings.tol_feas = 1e-11
        # Where the iterations stall short of that, a solution within 1e-9 is accepted ("almost solved").
        self.settings.reduced_tol_gap_abs = self.settings.reduced_tol_gap_rel = self.settings.reduced_tol_feas = 1e-9
        self.previous_solution = np.zeros(n_assets, dtype=bool)

    def cold_start(self) -> None:
        """Forget the previous date's solution: the next working set is built from the alpha alone."""
        self.previous_solution[:] = False

    def objective(self, weights: np.ndarray, expected: np.ndarray, covariance: np.ndarray, previous: np.ndarray) -> float:
        """s*H*a'w - gamma*H*w'Sw - cost*|w - w_prev|_1: the holding period's expected return less risk and cost."""
        p = self.params
        return float(p.alpha_scale * p.holding_days * expected @ weights
                     - p.risk_aversion * p.holding_days * weights @ covariance @ weights
                     - p.turnover_cost * np.abs(weights - previous).sum())

    def _solve_working_set(self, names: np.ndarray, linear: np.ndarray, hessian: np.ndarray, previous: np.ndarray,
                           upper: np.ndarray) -> tuple[np.ndarray, float, np.ndarray] | str:
        """(weights of `names`, budget dual, sector duals) of the QP restricted to `names`, or the solver's status."""
        k, cost = names.size, self.params.turnover_cost
        identity = sp.identity(k, format="csc")
        none = sp.csc_matrix((k, k))
        sectors = self.sector_members[:, names].astype(float)
        constraints = sp.vstack([
            sp.hstack([identity, -identity, identity]),  # zero cone: w - u + v = w_prev
            sp.csc_matrix(np.concatenate([np.ones(k), np.zeros(2 * k)])[None, :]),  # zero cone: sum(w) = 1
            -sp.identity(3 * k, format="csc"),  # w, u, v >= 0
            sp.hstack([identity, none, none]),  # w <= upper
            sp.hstack([sp.csc_matrix(sectors), sp.csc_matrix((sectors.shape[0], 2 * k))]),  # sector sums <= caps
        ], format="csc")
        bounds = np.concatenate([previous[names], [1.0], np.zeros(3 * k), upper[names], self.sector_caps])
        cones = [clarabel.ZeroConeT(k + 1), clarabel.NonnegativeConeT(4 * k + self.sector_caps.size)]
        # The objective's terms are O(1e-3) (returns): scaled to O(1) so the solver's absolute tolerances
        # are relative to them; the duals scale with it and are scaled back.
        scale = max(float(np.abs(linear[names]).max()), cost, float(hessian[names, names].max()), 1e-12)
        quadratic = sp.block_diag([sp.triu(hessian[np.ix_(names, names)] / scale), sp.csc_matrix((2 * k, 2 * k))],
                                  format="csc")
        solution = clarabel.DefaultSolver(quadratic, np.concatenate([linear[names], np.full(2 * k, cost)]) / scale,
                                          constraints, bounds, cones, self.settings).solve()
        if solution.status not in (clarabel.SolverStatus.Solved, clarabel.SolverStatus.AlmostSolved):
            return str(solution.status)
        duals = np.asarray(solution.z) * scale
        return np.asarray(solution.x)[:k], float(duals[k]), duals[duals.size - self.sector_caps.size:]

    def _optimum(self, linear: np.ndarray, hessian: np.ndarray, previous: np.ndarray,
                 upper: np.ndarray) -> tuple[np.ndarray, int] | str:
        """Weights of the full problem (and the rounds it took), or the solver's status."""
        p, cost = self.params, self.params.turnover_cost
        allowed = upper > 0
        ranked = np.flatnonzero(allowed)[np.argsort(linear[allowed], kind="stable")]
        working = (previous > 0) | (self.previous_solution & allowed)
        working[ranked[: p.working_set]] = True
        for rounds in range(1, p.max_rounds + 1):
            names = np.flatnonzero(working)
            solved = self._solve_working_set(names, linear, hessian, previous, upper)
            if isinstance(solved, str):
                outside = ranked[~working[ranked]]
                if outside.size == 0:  # the whole problem has no solution
                    return solved
                # A working set can be infeasible where the whole problem is not (sector caps): widen it.
                working[outside[: p.working_set]] = True
                continue
            weights_in, budget_dual, sector_duals = solved
            gradient = hessian[:, names] @ weights_in + linear
            reduced = gradient + cost + budget_dual + sector_duals @ self.sector_members
            wrong = allowed & ~working & (reduced < -p.tolerance)
            if not wrong.any():
                weights = np.zeros(self.n_assets)
                weights[names] = weights_in
                return weights, rounds
            # The most violated first, at most a working set's worth per round.
            worst = np.flatnonzero(wrong)[np.argsort(reduced[wrong], kind="stable")][: p.working_set]
            working[worst] = True
        return f"optimality not reached on a working set after {p.max_rounds} rounds"

    def solve(self, expected: np.ndarray, covariance: np.ndarray, previous: np.ndarray, eligible: np.ndarray) -> QpSolution:
        start = time.perf_counter()
        p, n = self.params, self.n_assets
        if eligible.sum() * p.max_position < 1 - 1e-12:
            return QpSolution(np.zeros(n), f"infeasible: {int(eligible.sum())} eligible names cannot hold "
                              f"100 % at <= {p.max_position:.0%} each", None, 0, time.perf_counter() - start)
        alpha = np.where(eligible, np.nan_to_num(expected), 0.0)
        # Minimised: w'Pw/2 + q'w + cost*|w - w_prev|_1 with P = 2*gamma*H*S, q = -s*H*a.
        hessian = 2.0 * p.risk_aversion * p.holding_days * covariance
        linear = -p.alpha_scale * p.holding_days * alpha
        allowed = eligible.copy()
        rounds = 0
        for passes in range(1, p.max_passes + 1):
            found = self._optimum(linear, hessian, previous, np.where(allowed, p.max_position, 0.0))
            if isinstance(found, str):
                self.cold_start()
                return QpSolution(np.zeros(n), f"infeasible: solver status {found}", None, passes,
                                  time.perf_counter() - start, rounds)
            raw, used = found
            rounds += used
            weights = np.where(raw > WEIGHT_EPS, raw, 0.0)
            small = (weights > 0) & (weights < p.min_position - WEIGHT_EPS)
            if not small.any():
                weights = cap_and_fill(weights, p.max_position)
                self.previous_solution = weights > 0
                return QpSolution(weights, "optimal", self.objective(weights, alpha, covariance, previous), passes,
                                  time.perf_counter() - start, rounds)
            # Never allow fewer names than full investment under the cap needs: the largest ones stay.
            keep = max(int((weights >= p.min_position - WEIGHT_EPS).sum()), math.ceil(1 / p.max_position - 1e-9))
            allowed &= False
            allowed[np.argsort(-weights, kind="stable")[:keep]] = True
            allowed &= eligible
        self.cold_start()
        return QpSolution(np.zeros(n), f"infeasible: positions under {p.min_position:.0%} remain after "
                          f"{p.max_passes} passes", None, p.max_passes, time.perf_counter() - start, rounds)


def qp_weights(
    expected: pl.DataFrame,
    returns: pl.DataFrame,
    params: QpParams = QpParams(),
    sectors: dict[str, str] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Target weights per rebalance date and a diagnostics row per date (status, objective, passes, seconds of
    the solve, seconds of the covariance, working-set rounds, positions, eligible names).

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
    # Matrices of at most a few hundred names: BLAS threads only contend (measured: a 100-name covariance
    # 0.2 ms on one thread, 18 ms on two while the machine is loaded).
    with threadpool_limits(limits=1):
        for k, t in enumerate(bar):  # sequential by nature: each date starts from the previous solution
            lo = max(0, t + 1 - params.window)
            enough = observed[lo:t + 1].sum(axis=0) >= params.min_observations
            eligible = present[k] & enough
            if not enough.any():
                diagnostics.append({c.DATE: dates[k], "status": WARM_UP, "objective": None, "passes": 0, "seconds": 0.0,
                                    "covariance_seconds": 0.0, "rounds": 0, "n_positions": 0, "eligible": 0})
                continue
            previous = last_weights
            if last_bar is not None:
                drifted = last_weights * growth[t] / growth[last_bar]
                previous = drifted / drifted.sum()
            started = time.perf_counter()
            covariance = shrunk_covariance(panel[lo:t + 1])
            covariance_seconds = time.perf_counter() - started
            solution = optimiser.solve(forecasts[k], covariance, previous, eligible)
            diagnostics.append({c.DATE: dates[k], "status": solution.status, "objective": solution.objective,
                                "passes": solution.passes, "seconds": solution.seconds,
                                "covariance_seconds": covariance_seconds, "rounds": solution.rounds,
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

