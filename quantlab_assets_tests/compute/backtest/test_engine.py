"""The engine against a hand-computed case, a per-day loop, the cost model and the look-ahead guard."""

import datetime as dt

import numpy as np
import polars as pl
import pytest

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.backtest.engine import (
    RETURN,
    SIGNAL_DATE,
    WEIGHT,
    BacktestParams,
    CostParams,
    LookAheadError,
    cumulative_product_over_rows,
    rebalance_dates,
    returns_from_bars,
    run_backtest,
    simulate,
)


def loop_reference(returns: np.ndarray, targets: np.ndarray, execution_bars: np.ndarray, cost_rate: float,
                   borrow_rates: np.ndarray | None = None):
    """The execution model written as the obvious day-by-day loop (an independent restatement)."""
    n_days, n_assets = returns.shape
    weights = np.zeros(n_assets)
    by_bar = dict(zip(execution_bars.tolist(), targets))
    net, turnover, held = np.zeros(n_days), np.zeros(n_days), np.zeros((n_days, n_assets))
    for t in range(n_days):
        gross = float(weights @ returns[t])
        borrow = 0.0 if borrow_rates is None else borrow_rates[t] * float(-weights[weights < 0].sum())
        cash = 1.0 - weights.sum()
        weights = weights * (1.0 + returns[t]) / (weights @ (1.0 + returns[t]) + cash)
        cost = 0.0
        if t in by_bar:
            turnover[t] = np.abs(by_bar[t] - weights).sum()
            cost = cost_rate * turnover[t]
            weights = by_bar[t].copy()
        net[t] = (1.0 + gross - borrow) * (1.0 - cost) - 1.0
        held[t] = weights
    return net, turnover, held


def test_hand_computed_two_assets() -> None:
    # Day 0: buy 50/50 at the close (turnover 1, cost 20 bp). Day 1: A +10 %, B -10 % -> gross 0 and
    # weights drift to 0.55/0.45. Day 2: A 0 %, B +10 % -> gross 0.45 * 0.1 = 4.5 %; rebalance to 50/50
    # from drifted 0.55/1.045, 0.495/1.045: turnover 2 * |0.5 - 0.55/1.045|.
    returns = np.array([[0.0, 0.0], [0.10, -0.10], [0.0, 0.10]])
    targets = np.array([[0.5, 0.5], [0.5, 0.5]])
    out = simulate(returns, targets, np.array([0, 2]), cost_rate=0.002)
    drifted_a = 0.55 / 1.045
    np.testing.assert_allclose(out.gross_return, [0.0, 0.0, 0.045], atol=1e-15)
    np.testing.assert_allclose(out.turnover, [1.0, 0.0, 2 * abs(0.5 - drifted_a)], atol=1e-15)
    np.testing.assert_allclose(out.net_return, [-0.002, 0.0, 1.045 * (1 - 0.002 * 2 * abs(0.5 - drifted_a)) - 1], atol=1e-15)
    np.testing.assert_allclose(out.weights, [[0.5, 0.5], [0.55, 0.45], [0.5, 0.5]], atol=1e-15)


@pytest.mark.parametrize("every", [pytest.param(1, id="daily"), pytest.param(5, id="weekly"), pytest.param(21, id="monthly")])
def test_agrees_with_a_per_day_loop(every: int) -> None:
    rng = np.random.default_rng(7)
    n_days, n_assets = 250, 12
    returns = rng.normal(0.0003, 0.02, (n_days, n_assets))
    bars = np.arange(3, n_days, every)
    raw = rng.random((bars.size, n_assets)) * (rng.random((bars.size, n_assets)) < 0.6)
    targets = raw / raw.sum(axis=1, keepdims=True) * rng.uniform(0.7, 1.0, (bars.size, 1))  # some cash
    out = simulate(returns, targets, bars, cost_rate=0.002)
    net, turnover, held = loop_reference(returns, targets, bars, cost_rate=0.002)
    np.testing.assert_allclose(out.net_return, net, rtol=0, atol=1e-13)
    np.testing.assert_allclose(out.turnover, turnover, rtol=0, atol=1e-13)
    np.testing.assert_allclose(out.weights, held, rtol=0, atol=1e-13)


def test_hand_computed_dollar_neutral_book_with_borrow_fee() -> None:
    # Day 0: long A 0.5, short B -0.5 (cash 1 + 0.5 of short proceeds - 0.5 paid for A = 1): turnover 1 on both
    # legs. Day 1: A +10 %, B +20 %: A is worth 0.55, the short owes 0.60, cash 1: value 0.95, gross -5 %, the
    # borrow fee on the 0.5 short held overnight 0.5 x 0.01. Day 2: A -10 %, B -10 %: A 0.495, short -0.54, cash
    # 1 -> 0.955; gross 0.955 / 0.95 - 1; fee on the short weight 0.6 / 0.95 held over day 2; rebalance to +-0.5.
    returns = np.array([[0.0, 0.0], [0.10, 0.20], [-0.10, -0.10]])
    targets = np.array([[0.5, -0.5], [0.5, -0.5]])
    rates = np.array([0.0, 0.01, 0.01])
    out = simulate(returns, targets, np.array([0, 2]), cost_rate=0.002, borrow_rates=rates)
    short_day_2 = 0.6 / 0.95
    np.testing.assert_allclose(out.gross_return, [0.0, -0.05, 0.955 / 0.95 - 1], atol=1e-15)
    np.testing.assert_allclose(out.borrow_cost, [0.0, 0.5 * 0.01, short_day_2 * 0.01], atol=1e-15)
    drifted = np.array([0.495, -0.54]) / 0.955
    np.testing.assert_allclose(out.turnover, [1.0, 0.0, np.abs(targets[1] - drifted).sum()], atol=1e-15)
    np.testing.assert_allclose(out.weights, [[0.5, -0.5], [0.55 / 0.95, -0.6 / 0.95], [0.5, -0.5]], atol=1e-15)
    np.testing.assert_allclose(out.net_return, [
        -0.002, -0.05 - 0.005, (0.955 / 0.95 - short_day_2 * 0.01) * (1 - 0.002 * out.turnover[2]) - 1], atol=1e-15)


def test_a_neutral_book_earns_nothing_when_both_legs_move_alike() -> None:
    returns = np.tile(np.random.default_rng(1).normal(0, 0.02, (30, 1)), (1, 2))
    out = simulate(returns, np.array([[0.5, -0.5]]), np.array([0]), cost_rate=0.0)
    np.testing.assert_allclose(out.gross_return, 0.0, atol=1e-15)


def test_long_short_agrees_with_a_per_day_loop_costs_and_fee_included() -> None:
    rng = np.random.default_rng(11)
    n_days, n_assets = 200, 8
    returns = rng.normal(0.0003, 0.02, (n_days, n_assets))
    bars = np.arange(2, n_days, 7)
    raw = rng.normal(size=(bars.size, n_assets))
    targets = raw - raw.mean(axis=1, keepdims=True)
    targets /= np.abs(targets).sum(axis=1, keepdims=True) / 2.0  # dollar neutral, gross 2
    rates = np.full(n_days, 50e-4 / 365.25)
    out = simulate(returns, targets, bars, cost_rate=0.002, borrow_rates=rates)
    net, turnover, held = loop_reference(returns, targets, bars, cost_rate=0.002, borrow_rates=rates)
    np.testing.assert_allclose(out.net_return, net, rtol=0, atol=1e-13)
    np.testing.assert_allclose(out.turnover, turnover, rtol=0, atol=1e-13)
    np.testing.assert_allclose(out.weights, held, rtol=0, atol=1e-13)


def test_the_borrow_fee_accrues_by_calendar_days_on_short_notional_only() -> None:
    # Friday 2024-01-05 to Monday 2024-01-08: three days of fee; a long-only book pays none.
    dates = [dt.date(2024, 1, 3), dt.date(2024, 1, 4), dt.date(2024, 1, 5), dt.date(2024, 1, 8)]
    returns = pl.DataFrame({c.DATE: dates * 2, c.TICKER: ["A"] * 4 + ["B"] * 4, RETURN: [0.0] * 8})
    short = pl.DataFrame({c.DATE: [dates[0]] * 2, c.TICKER: ["A", "B"], WEIGHT: [0.5, -0.5]})
    params = BacktestParams(costs=CostParams(0, 0, 0), delay=0, borrow_fee_bps=100.0)
    daily = run_backtest(returns, short, params).daily
    np.testing.assert_allclose(daily["borrow_cost"], [0.0, 0.5 * 0.01 / 365.25, 0.5 * 0.01 / 365.25, 0.5 * 0.01 * 3 / 365.25],
                               rtol=1e-12)
    assert daily["invested"].to_list() == [0.0] * 4 and daily["gross_exposure"].to_list() == [1.0] * 4
    long_only = short.with_columns(pl.lit(0.5).alias(WEIGHT))
    assert (run_backtest(returns, long_only, params).daily["borrow_cost"] == 0).all()


def _panel(n_days: int = 60, n_assets: int = 6, seed: int = 3) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Long returns and a daily alpha whose top-2 names are held, alpha dated with the information it uses."""
    rng = np.random.default_rng(seed)
    dates = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(n_days)]
    tickers = [f"T{i}" for i in range(n_assets)]
    grid = pl.DataFrame({c.DATE: pl.Series(dates, dtype=pl.Date).gather(np.repeat(np.arange(n_days), n_assets)),
                         c.TICKER: tickers * n_days})
    returns = grid.with_columns(pl.Series(RETURN, rng.normal(0, 0.02, n_days * n_assets)))
    alpha = grid.with_columns(pl.Series("alpha", rng.normal(0, 1, n_days * n_assets)))
    return returns, alpha


def _top2(alpha: pl.DataFrame) -> pl.DataFrame:
    return alpha.with_columns(
        pl.when(pl.col("alpha").rank("ordinal", descending=True).over(c.DATE) <= 2).then(0.5).otherwise(0.0).alias(WEIGHT),
        pl.col(c.DATE).alias(SIGNAL_DATE),
    )


def test_doubling_every_cost_doubles_the_cost_line_exactly() -> None:
    returns, alpha = _panel()
    weights = _top2(alpha)
    base = run_backtest(returns, weights, BacktestParams(costs=CostParams(10, 5, 5)))
    doubled = run_backtest(returns, weights, BacktestParams(costs=CostParams(20, 10, 10)))
    assert base.daily["cost"].sum() > 0
    assert (doubled.daily["cost"] == 2 * base.daily["cost"]).all()
    assert (doubled.daily["turnover"] == base.daily["turnover"]).all()


def test_yesterdays_alpha_changes_results_and_tomorrows_is_refused() -> None:
    returns, alpha = _panel()
    today = run_backtest(returns, _top2(alpha))
    # Yesterday's alpha used today: legitimate (signal date before the decision date) but different.
    lagged = _top2(alpha).with_columns(pl.col(c.DATE) + dt.timedelta(days=1)).filter(pl.col(c.DATE) <= alpha[c.DATE].max())
    assert run_backtest(returns, lagged).daily["net_return"].to_list() != today.daily["net_return"].to_list()
    # Tomorrow's alpha used today: refused.
    leaked = _top2(alpha).with_columns(pl.col(c.DATE) - dt.timedelta(days=1)).filter(pl.col(c.DATE) >= alpha[c.DATE].min())
    with pytest.raises(LookAheadError, match="signal dated after"):
        run_backtest(returns, leaked)


def test_trading_before_the_decision_is_refused() -> None:
    returns, alpha = _panel()
    run_backtest(returns, _top2(alpha), BacktestParams(delay=0))  # trade at the decision's close: allowed
    with pytest.raises(LookAheadError, match="decided on or after"):
        run_backtest(returns, _top2(alpha), BacktestParams(delay=-1))


def test_one_bar_delay_earns_from_the_second_day_after_the_decision() -> None:
    returns, alpha = _panel(n_days=10)
    first = alpha[c.DATE].min()
    weights = _top2(alpha).filter(pl.col(c.DATE) == first)
    daily = run_backtest(returns, weights, BacktestParams(costs=CostParams(0, 0, 0))).daily
    assert daily["gross_return"].head(2).to_list() == [0.0, 0.0]
    assert daily["turnover"].to_list()[1] == pytest.approx(1.0)
    assert daily["gross_return"][2] != 0.0


def test_rebalance_dates_are_the_first_decision_of_each_week_or_month() -> None:
    # Thu 2024-01-04 ... Wed 2024-02-07, trading days only (no weekends).
    dates = pl.Series([dt.date(2024, 1, 4) + dt.timedelta(days=i) for i in range(35)]).filter(
        pl.Series([dt.date(2024, 1, 4) + dt.timedelta(days=i) for i in range(35)]).dt.weekday() <= 5)
    assert rebalance_dates(dates, "daily").to_list() == dates.to_list()
    assert rebalance_dates(dates, "weekly").to_list() == [dt.date(2024, 1, 4), dt.date(2024, 1, 8), dt.date(2024, 1, 15),
                                                          dt.date(2024, 1, 22), dt.date(2024, 1, 29), dt.date(2024, 2, 5)]
    assert rebalance_dates(dates, "monthly").to_list() == [dt.date(2024, 1, 4), dt.date(2024, 2, 1)]
    with pytest.raises(ValueError, match="rebalance must be one of"):
        BacktestParams(rebalance="yearly")  # type: ignore[arg-type]


def _alternating_decisions() -> tuple[pl.DataFrame, pl.DataFrame]:
    """Thu 4 Jan to Wed 10 Jan 2024; all in A on Thu, Tue, Wed and all in B on Fri, Mon."""
    dates = [dt.date(2024, 1, d) for d in (4, 5, 8, 9, 10)]
    returns = pl.DataFrame({c.DATE: dates * 2, c.TICKER: ["A"] * 5 + ["B"] * 5,
                            RETURN: [0.0, 0.10, 0.02, -0.05, 0.03] + [0.0, 0.01, -0.04, 0.06, 0.02]})
    in_a = [1.0, 0.0, 0.0, 1.0, 1.0]
    weights = pl.DataFrame({c.DATE: dates * 2, c.TICKER: ["A"] * 5 + ["B"] * 5,
                            WEIGHT: in_a + [1.0 - w for w in in_a]})
    return returns, weights


@pytest.mark.parametrize(("rebalance", "gross", "turnover"), [
    # Trades at the close after each decision: A on Fri, B on Mon (A's +2 % missed), B on Tue (no trade), A on Wed.
    ("daily", [0.0, 0.0, 0.02, 0.06, 0.02], [0.0, 1.0, 2.0, 0.0, 2.0]),
    # Thursday's A traded Fri, Monday's B (the week's first decision) traded Tue; Fri/Tue/Wed decisions ignored.
    ("weekly", [0.0, 0.0, 0.02, -0.05, 0.02], [0.0, 1.0, 0.0, 2.0, 0.0]),
    # Only Thursday's A (January's first decision) is traded; A is held to the end.
    ("monthly", [0.0, 0.0, 0.02, -0.05, 0.03], [0.0, 1.0, 0.0, 0.0, 0.0]),
])
def test_rebalancing_frequency_holds_the_previous_weights_hand_computed(
        rebalance: str, gross: list[float], turnover: list[float]) -> None:
    returns, weights = _alternating_decisions()
    params = BacktestParams(costs=CostParams(10, 0, 0), rebalance=rebalance)  # type: ignore[arg-type]
    daily = run_backtest(returns, weights, params).daily
    np.testing.assert_allclose(daily["gross_return"].to_numpy(), gross, atol=1e-15)
    np.testing.assert_allclose(daily["turnover"].to_numpy(), turnover, atol=1e-15)
    np.testing.assert_allclose(daily["net_return"].to_numpy(),
                               [(1 + g) * (1 - 0.001 * t) - 1 for g, t in zip(gross, turnover)], atol=1e-15)


def test_daily_rebalancing_is_the_default() -> None:
    returns, alpha = _panel()
    default = run_backtest(returns, _top2(alpha)).daily
    assert default.equals(run_backtest(returns, _top2(alpha), BacktestParams(rebalance="daily")).daily)
    assert np.flatnonzero(default["turnover"].to_numpy()).size > 50


def test_returns_come_from_the_cleaned_log_return() -> None:
    bars = pl.DataFrame({c.DATE: [dt.date(2024, 1, d) for d in (1, 2, 3)], c.TICKER: ["A"] * 3,
                         c.CLOSE: [10.0, 100.0, 10.0], c.LOG_RETURN: [None, 0.2, -0.2]})  # not the close ratio
    assert returns_from_bars(bars)[RETURN].to_list() == pytest.approx([None, np.exp(0.2) - 1, np.exp(-0.2) - 1])


@pytest.mark.parametrize("n_rows", [0, 1, 2, 3, 7, 8, 9, 64, 1000, 1001])
def test_row_scan_is_the_cumulative_product_up_to_rounding(n_rows: int) -> None:
    panel = 1.0 + np.random.default_rng(n_rows).normal(0.0, 0.02, (n_rows, 5))
    expected = np.cumprod(panel, axis=0)
    np.testing.assert_allclose(cumulative_product_over_rows(panel.copy()), expected, rtol=1e-13, atol=0)
