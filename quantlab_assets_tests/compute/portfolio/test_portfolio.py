"""Portfolio construction on synthetic alpha: the QP's constraints and reports, and the rule-based strategies."""

import datetime as dt

import numpy as np
import polars as pl
import pytest

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.backtest.engine import RETURN, SIGNAL_DATE, WEIGHT, CostParams, run_backtest
from quantlab_assets.compute.portfolio.qp import WARM_UP, QpOptimiser, QpParams, qp_weights, shrunk_covariance
from quantlab_assets.compute.portfolio.names import STRATEGY_NAMES
from quantlab_assets.compute.portfolio.rules import PROFILES, buy_and_hold, equal_weight, threshold_profile, top_n_equal
from quantlab_assets.compute.portfolio.strategies import StrategyParams, build_target_weights
from quantlab_assets.compute.schemas.base import schema_failures
from quantlab_assets.compute.schemas.portfolio import TargetWeightsSchema

NO_COSTS = CostParams(0.0, 0.0, 0.0)


def _grid(n_days: int, n_assets: int) -> pl.DataFrame:
    dates = pl.Series(c.DATE, [dt.date(2023, 1, 2) + dt.timedelta(days=i) for i in range(n_days)], dtype=pl.Date)
    return pl.DataFrame({c.DATE: dates.gather(np.repeat(np.arange(n_days), n_assets)),
                         c.TICKER: [f"S{i:02d}" for i in range(n_assets)] * n_days})


@pytest.fixture
def market() -> tuple[pl.DataFrame, pl.DataFrame]:
    """Returns of 30 names over 160 days and an alpha (daily decimal) that is informative but noisy."""
    rng = np.random.default_rng(9)
    grid = _grid(160, 30)
    signal = rng.normal(0, 5e-4, grid.height)
    returns = grid.with_columns(pl.Series(RETURN, rng.normal(0, 0.015, grid.height) + signal))
    expected = grid.with_columns(pl.Series("expected", signal + rng.normal(0, 5e-4, grid.height)))
    return returns, expected


def _covariance(n: int, seed: int = 0) -> np.ndarray:
    return shrunk_covariance(np.random.default_rng(seed).normal(0, 0.01, (252, n)))


def test_qp_solution_respects_every_constraint(market: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    returns, expected = market
    weights, diagnostics = qp_weights(expected, returns, QpParams(every=10, min_observations=20))
    assert set(diagnostics["status"]) == {"optimal", WARM_UP} and diagnostics["status"][-1] == "optimal"
    by_date = weights.group_by(c.DATE).agg(pl.col(WEIGHT).sum().alias("total"), pl.col(WEIGHT).min().alias("smallest"),
                                           pl.col(WEIGHT).max().alias("largest"))
    assert np.allclose(by_date["total"], 1.0, atol=1e-9)
    assert (by_date["largest"] <= 0.20 + 1e-12).all()
    assert (by_date["smallest"] >= 0.02 - 1e-6).all()
    assert (weights[SIGNAL_DATE] == weights[c.DATE]).all()


def test_without_risk_or_turnover_terms_the_qp_fills_the_top_five_at_the_cap() -> None:
    expected = np.linspace(1e-3, 1e-4, 12)
    optimiser = QpOptimiser(12, QpParams(risk_aversion=0.0, costs=NO_COSTS))
    solution = optimiser.solve(expected, _covariance(12), np.zeros(12), np.ones(12, dtype=bool))
    assert solution.status == "optimal"
    np.testing.assert_allclose(solution.weights, [0.2] * 5 + [0.0] * 7, atol=1e-6)


def test_small_positions_are_zeroed_by_re_solving_under_the_caps() -> None:
    # High risk aversion spreads the book thin: without the minimum, many positions fall under 2 %.
    optimiser = QpOptimiser(60, QpParams(risk_aversion=1e4, costs=NO_COSTS))
    solution = optimiser.solve(np.random.default_rng(1).normal(0, 1e-4, 60), _covariance(60), np.zeros(60),
                               np.ones(60, dtype=bool))
    held = solution.weights[solution.weights > 0]
    assert solution.status == "optimal" and solution.passes > 1
    assert held.min() >= 0.02 - 1e-6 and held.max() <= 0.2 + 1e-7 and held.sum() == pytest.approx(1.0)


def test_sector_caps_bind() -> None:
    sectors = ["Tech"] * 6 + ["Energy"] * 6
    expected = np.array([1e-3] * 6 + [1e-4] * 6)
    optimiser = QpOptimiser(12, QpParams(risk_aversion=0.0, costs=NO_COSTS, sector_caps=(("Tech", 0.3),)), sectors)
    solution = optimiser.solve(expected, _covariance(12), np.zeros(12), np.ones(12, dtype=bool))
    assert solution.weights[:6].sum() == pytest.approx(0.3, abs=1e-6)


def test_infeasibility_is_reported_with_its_reason() -> None:
    optimiser = QpOptimiser(8, QpParams())
    too_few = optimiser.solve(np.ones(8) * 1e-4, _covariance(8), np.zeros(8), np.array([True] * 3 + [False] * 5))
    assert too_few.status.startswith("infeasible: 3 eligible names") and not too_few.weights.any()
    capped = QpOptimiser(10, QpParams(sector_caps=(("Tech", 0.1),)), ["Tech"] * 10)
    blocked = capped.solve(np.ones(10) * 1e-4, _covariance(10), np.zeros(10), np.ones(10, dtype=bool))
    assert blocked.status.startswith("infeasible: solver status")


def test_turnover_penalty_lowers_turnover(market: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    returns, expected = market
    params = {"every": 5, "min_observations": 20}
    free, _ = qp_weights(expected, returns, QpParams(costs=NO_COSTS, **params))
    sticky, _ = qp_weights(expected, returns, QpParams(costs=CostParams().scaled(5.0), **params))
    free_turnover = run_backtest(returns, free).daily["turnover"].sum()
    sticky_turnover = run_backtest(returns, sticky).daily["turnover"].sum()
    assert sticky_turnover < 0.7 * free_turnover


def test_top_n_equal_picks_the_highest_scores_deterministically() -> None:
    alpha = _grid(2, 7).with_columns(pl.Series("score", [7, 6, 5, 4, 3, 2, 1, 1, 1, 1, 1, 1, 9, None], dtype=pl.Float64))
    weights = top_n_equal(alpha, "score", n=5)
    day0, day1 = weights.partition_by(c.DATE, maintain_order=True)
    assert day0[c.TICKER].to_list() == ["S00", "S01", "S02", "S03", "S04"] and (day0[WEIGHT] == 0.2).all()
    assert day1[c.TICKER].to_list() == ["S00", "S01", "S02", "S03", "S05"]  # 9 first, ties by ticker, null never
    three = top_n_equal(alpha.filter(pl.col(c.TICKER).is_in(["S00", "S01", "S02"])), "score", n=5)
    assert (three[WEIGHT] == 0.2).all()  # 1/3 capped at 20 %: the rest is cash


def test_equal_weight_and_buy_and_hold() -> None:
    universe = _grid(30, 4).filter(~((pl.col(c.TICKER) == "S03") & (pl.col(c.DATE) < dt.date(2023, 1, 10))))
    monthly = equal_weight(universe, every=21)
    assert monthly[c.DATE].unique().len() == 2
    assert monthly.group_by(c.DATE).agg(pl.col(WEIGHT).sum())[WEIGHT].to_list() == pytest.approx([1.0, 1.0])
    held = buy_and_hold(universe)
    assert held[c.DATE].unique().to_list() == [dt.date(2023, 1, 2)] and held[WEIGHT].to_list() == pytest.approx([1 / 3] * 3)


def test_threshold_profiles_follow_seed_002() -> None:
    signals = _grid(2, 4).with_columns(
        pl.Series("probability", [0.96, 0.80, 0.76, 0.5, 0.97, 0.2, 0.3, 0.1]),
        pl.Series("auditor_probability", [0.9, 0.3, 0.7, 0.9, 0.9, 0.9, 0.9, 0.9]),
        pl.Series("regime", ["Low-Vol Bull"] * 4 + ["Crisis"] * 4),
    )
    held = {name: threshold_profile(signals, profile).filter(pl.col(WEIGHT) > 0) for name, profile in PROFILES.items()}
    assert held["sniper"][c.TICKER].to_list() == ["S00"]  # day 1 is a Crisis: blocked
    assert held["audited"][c.TICKER].to_list() == ["S00", "S02"]
    assert held["reckless"][c.TICKER].to_list() == ["S00", "S01", "S02", "S00"]
    sniper = threshold_profile(signals, PROFILES["sniper"])
    assert sniper.filter(pl.col(c.DATE) == dt.date(2023, 1, 3))[WEIGHT].to_list() == [0.0]  # a decision to hold cash


def _stacked_alpha(grid: pl.DataFrame, seed: int = 5) -> pl.DataFrame:
    """A frame with stacked_alpha's schema (date, ticker, alpha_21d, alpha_63d, alpha_combined, var_21d, var_63d)."""
    rng = np.random.default_rng(seed)
    alpha = rng.normal(0, 40, (grid.height, 2))
    return grid.with_columns(pl.Series("alpha_21d", alpha[:, 0]), pl.Series("alpha_63d", alpha[:, 1]),
                             pl.Series("alpha_combined", alpha.mean(axis=1)), pl.lit(900.0).alias("var_21d"),
                             pl.lit(2500.0).alias("var_63d"))


@pytest.mark.parametrize("strategy", STRATEGY_NAMES)
def test_every_strategy_builds_valid_weights_from_stacked_alpha(strategy: str, market) -> None:
    returns, _ = market
    alpha = _stacked_alpha(returns.filter(pl.col(c.DATE) >= dt.date(2023, 4, 1)).select(c.DATE, c.TICKER))
    rng = np.random.default_rng(1)
    meta = alpha.select(c.DATE, c.TICKER, pl.col("alpha_combined").sign().cast(pl.Int8).alias("side"),
                        pl.Series("meta_probability", rng.random(alpha.height)))
    barrier = returns.select(c.DATE, c.TICKER, pl.Series("barrier_probability", 0.5 + 0.5 * rng.random(returns.height)))
    built = build_target_weights(strategy, alpha, returns, meta=meta, barrier=barrier,
                                 params=StrategyParams(qp=QpParams(min_observations=20)))
    weights = built.weights
    assert schema_failures(TargetWeightsSchema, weights, asset="target_weights", partition=strategy) is None
    assert weights[c.DATE].min() >= alpha[c.DATE].min()
    run_backtest(returns, weights)  # the engine accepts them (signal dates, calendar)


def test_threshold_profiles_read_the_barrier_classifier_on_the_alpha_span_and_audit_longs_only() -> None:
    grid = _grid(3, 2)  # 3 dates x 2 tickers
    dates = grid[c.DATE].unique().sort()
    alpha = _stacked_alpha(grid.filter(pl.col(c.DATE) >= dates[1])).with_columns(
        pl.Series("alpha_combined", [10.0, -10.0, 10.0, 10.0]))
    # Every barrier probability clears 0.75; the first date lies before the alpha's span.
    barrier = grid.with_columns(pl.lit(0.8).alias("barrier_probability"))
    meta = alpha.select(c.DATE, c.TICKER, pl.col("alpha_combined").sign().cast(pl.Int8).alias("side"),
                        pl.Series("meta_probability", [0.9, 0.9, 0.4, 0.6]))
    returns = grid.with_columns(pl.lit(0.0).alias(RETURN))
    reckless = build_target_weights("reckless", alpha, returns, meta=meta, barrier=barrier).weights
    assert reckless[c.DATE].min() == dates[1] and (reckless[WEIGHT] > 0).sum() == 4
    audited = build_target_weights("audited", alpha, returns, meta=meta, barrier=barrier).weights
    # S01 on day 2: the auditor's 0.9 is for a short trade, no opinion on a long; S00 on day 3: 0.4 < 0.5.
    held = audited.filter(pl.col(WEIGHT) > 0).select(c.DATE, c.TICKER).rows()
    assert held == [(dates[1], grid[c.TICKER][0]), (dates[2], grid[c.TICKER][1])]
    assert "regime filter not applied" in build_target_weights("sniper", alpha, returns, barrier=barrier).notes[0]
    with pytest.raises(ValueError, match="triple-barrier"):
        build_target_weights("sniper", alpha, returns)
    with pytest.raises(ValueError, match="unknown strategy"):
        build_target_weights("martingale", alpha, returns)

def test_the_books_rank_the_configured_alpha_column() -> None:
    # The 21-day alpha ranks S02 and S03 highest, the combined alpha S00 and S01.
    grid = _grid(3, 4)
    alpha = grid.with_columns(pl.Series("alpha_21d", [1.0, 2.0, 3.0, 4.0] * 3),
                              pl.Series("alpha_combined", [4.0, 3.0, 2.0, 1.0] * 3))
    returns = grid.with_columns(pl.lit(0.0).alias(RETURN))

    def held(params: StrategyParams) -> set[str]:
        weights = build_target_weights("top_n_equal", alpha, returns, params=params).weights
        return set(weights.filter(pl.col(c.DATE) == weights[c.DATE].min())[c.TICKER])

    assert StrategyParams().alpha == "alpha_21d"
    assert held(StrategyParams(top_n=2, max_position=0.5)) == {"S02", "S03"}
    assert held(StrategyParams(alpha="alpha_combined", top_n=2, max_position=0.5)) == {"S00", "S01"}
    with pytest.raises(ValueError, match="alpha must be one of"):
        StrategyParams(alpha="alpha_63d")
