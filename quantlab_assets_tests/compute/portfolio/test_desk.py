"""The desk's plain logic on hand-computed cases: today's targets from the strategy builder, drifted holdings,
orders and their costs, the track record's arithmetic, and the ledger's immutability and hash chain."""

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.backtest.engine import BacktestParams, CostParams
from quantlab_assets.compute.backtest.metrics import periods_per_year, sharpe_ratio
from quantlab_assets.compute.backtest.report import LIVE_SECTION_ID, live_track_record_section
from quantlab_assets.compute.portfolio import desk
from quantlab_assets.compute.portfolio.ledger import DecisionLedger, LedgerOrderError, verify_ledger
from quantlab_assets.compute.portfolio.names import EQUAL, RECKLESS, TOP_N
from quantlab_assets.compute.portfolio.strategies import StrategyParams

D0, D1, D2, D3 = (dt.date(2024, 3, 4) + dt.timedelta(days=n) for n in range(4))


def _returns(rows: dict[str, list[float]], dates: list[dt.date]) -> pl.DataFrame:
    return pl.DataFrame([{c.DATE: d, c.TICKER: t, "return": r} for t, values in rows.items()
                         for d, r in zip(dates, values, strict=True)])


def _targets(day: dt.date, strategy: str, weights: dict[str, float]) -> pl.DataFrame:
    return pl.DataFrame({c.DATE: [day] * len(weights), desk.STRATEGY: [strategy] * len(weights),
                         c.TICKER: list(weights), "weight": list(weights.values()), "signal_date": [day] * len(weights)})


def test_live_targets_use_the_builder_on_the_decision_date_only() -> None:
    tickers = ["A", "B", "C", "D"]
    alpha = pl.DataFrame({c.DATE: [D2] * 4, c.TICKER: tickers, "alpha_21d": [5.0, 30.0, -10.0, 20.0],
                          "alpha_combined": [0.0] * 4, "alpha_63d": [0.0] * 4, "var_21d": [1.0] * 4, "var_63d": [1.0] * 4})
    returns = _returns({t: [0.01, 0.0, 0.02, 0.5] for t in tickers}, [D0, D1, D2, D3])
    # The classifier's probabilities end before the decision date (out of fold): the profile is not decided.
    barrier = pl.DataFrame({c.DATE: [D0] * 4, c.TICKER: tickers, "barrier_probability": [0.9] * 4})
    targets = desk.live_targets([TOP_N, EQUAL, RECKLESS], alpha, returns, barrier=barrier,
                                params=StrategyParams(top_n=2, max_position=0.5))
    assert targets.as_of == D2
    weights = {(s, t): w for s, t, w in targets.weights.select(desk.STRATEGY, c.TICKER, "weight").iter_rows()}
    assert weights == {(TOP_N, "B"): 0.5, (TOP_N, "D"): 0.5, **{(EQUAL, t): 0.25 for t in tickers}}
    assert targets.weights[c.DATE].unique().to_list() == [D2]
    assert set(targets.undecided) == {RECKLESS} and f"no target on {D2}" in targets.undecided[RECKLESS]


def test_live_targets_keep_each_strategy_s_schedule_over_the_recorded_alphas() -> None:
    tickers = ["A", "B", "C"]
    alpha = {day: pl.DataFrame({c.DATE: [day] * 3, c.TICKER: tickers, "alpha_21d": values,
                                "alpha_combined": [0.0] * 3, "alpha_63d": [0.0] * 3, "var_21d": [1.0] * 3, "var_63d": [1.0] * 3})
             for day, values in ((D1, [1.0, 2.0, 3.0]), (D2, [3.0, 2.0, 1.0]))}
    returns = _returns({t: [0.01, 0.0, 0.02, 0.0] for t in tickers}, [D0, D1, D2, D3])
    params = StrategyParams(top_n=1, top_n_every=1, max_position=1.0)
    targets = desk.live_targets([TOP_N, EQUAL], alpha[D2], returns, past_alpha=alpha[D1], params=params)
    # Top-1 rebalances every date: today's best name; equal weight's next rebalance is 21 dates after D1.
    assert targets.weights.select(desk.STRATEGY, c.TICKER, "weight").rows() == [(TOP_N, "A", 1.0)]
    assert targets.undecided == {EQUAL: f"no target on {D2}, holds its last decision: not a rebalance date of its schedule"}


def test_holdings_drift_from_the_trade_of_the_last_decision() -> None:
    # Decided at D0, traded at the close of D1 (delay 1): D1's +50 % is before the trade and earns nothing.
    returns = _returns({"X": [0.0, 0.5, 0.10, 0.0], "Y": [0.0, 0.0, -0.20, 0.0]}, [D0, D1, D2, D3])
    held = desk.drifted_holdings(_targets(D0, EQUAL, {"X": 0.5, "Y": 0.25}), returns, D3, delay=1)
    # Values 0.55 and 0.20 with 0.25 cash: the portfolio is worth 1.0 again.
    assert dict(held.select(c.TICKER, "weight").iter_rows()) == pytest.approx({"X": 0.55, "Y": 0.20})


def test_orders_trade_from_holdings_to_targets_at_the_backtest_cost_rate() -> None:
    holdings = pl.DataFrame({desk.STRATEGY: [EQUAL, EQUAL, TOP_N], c.TICKER: ["X", "Z", "X"], "weight": [0.6, 0.2, 1.0]})
    book = desk.orders(_targets(D1, EQUAL, {"X": 0.5, "Y": 0.5}), holdings, CostParams(10, 5, 5))
    assert book[c.TICKER].to_list() == ["X", "Y", "Z"]
    assert book.select(desk.CURRENT_WEIGHT, desk.TARGET_WEIGHT, desk.TRADE, desk.COST).rows() == [
        pytest.approx(row) for row in [(0.6, 0.5, -0.1, 0.1 * 0.002), (0.0, 0.5, 0.5, 0.5 * 0.002),
                                       (0.2, 0.0, -0.2, 0.2 * 0.002)]]
    assert book[desk.STRATEGY].unique().to_list() == [EQUAL]  # top_n was not decided today: no order
    assert book[c.DATE].unique().to_list() == [D1]


def test_track_record_scores_the_days_after_the_trade_with_the_engine_s_costs() -> None:
    returns = _returns({"X": [0.0, 0.05, 0.10, -0.10]}, [D0, D1, D2, D3])
    record = desk.track_record(_targets(D0, EQUAL, {"X": 1.0}), returns, BacktestParams())
    # Traded at the close of D1 (20 bp of cost, none of D1's return), then D2's and D3's returns.
    assert record.daily[c.DATE].to_list() == [D1, D2, D3]
    assert record.daily["net_return"].to_list() == pytest.approx([-0.002, 0.10, -0.10])
    row = record.summary.row(0, named=True)
    assert row["scored_days"] == 3 and row["last_scored"] == D3 and row["decisions"] == 1
    assert row["cumulative_return"] == pytest.approx(0.998 * 1.10 * 0.90 - 1)
    assert row["hit_rate"] == pytest.approx(1 / 3) and row["total_cost"] == pytest.approx(0.002)
    assert row["sharpe"] is None  # fewer than MIN_SCORED_DAYS_FOR_SHARPE days

    # One more bar adds one scored day and changes none before it.
    later = pl.concat([returns, _returns({"X": [0.03]}, [D3 + dt.timedelta(days=1)])])
    grown = desk.track_record(_targets(D0, EQUAL, {"X": 1.0}), later).daily
    assert grown.height == 4 and grown.head(3).equals(record.daily)


def test_track_record_reports_a_sharpe_and_its_interval_once_enough_days_are_scored() -> None:
    days = [D0 + dt.timedelta(days=n) for n in range(40)]
    values = list(np.random.default_rng(0).normal(0.001, 0.01, len(days)))
    row = desk.track_record(_targets(D0, EQUAL, {"X": 1.0}), _returns({"X": values}, days)).summary.row(0, named=True)
    net = np.array([(1 + 0.0) * (1 - 0.002) - 1, *values[2:]])
    assert row["scored_days"] == 39
    expected = sharpe_ratio(net) * math.sqrt(periods_per_year(days[1:]))
    assert row["sharpe"] == pytest.approx(expected)
    assert row["sharpe_ci_low"] < row["sharpe"] < row["sharpe_ci_high"]


def test_the_ledger_keeps_the_first_record_of_a_date_and_refuses_the_past(tmp_path: Path) -> None:
    ledger = DecisionLedger(tmp_path / "ledger")
    first = ledger.append(D1, {"targets": [{"ticker": "X", "weight": 1.0}]})
    stored = first.path.read_bytes()
    again = ledger.append(D1, {"targets": [{"ticker": "Y", "weight": 1.0}]})
    assert first.written and not again.written
    assert first.path.read_bytes() == stored and again.record == json.loads(stored)
    second = ledger.append(D2, {"targets": []})
    assert second.record["previous_hash"] == first.record["record_hash"]
    with pytest.raises(LedgerOrderError, match="older than the newest record"):
        ledger.append(D0, {"targets": []})
    assert verify_ledger(ledger.records()) == []


def test_the_hash_chain_names_an_edited_or_removed_past_record(tmp_path: Path) -> None:
    ledger = DecisionLedger(tmp_path / "ledger")
    for day in (D0, D1, D2):
        ledger.append(day, {"targets": [{"ticker": "X", "weight": 0.5}]})
    edited = json.loads(ledger.path(D1).read_text())
    edited["targets"][0]["weight"] = 0.9
    ledger.path(D1).write_text(json.dumps(edited))
    assert verify_ledger(ledger.records()) == [f"{D1}: content does not match its record_hash (edited after it was stored)"]
    ledger.path(D1).unlink()
    (problem,) = verify_ledger(ledger.records())
    assert problem.startswith(f"{D2}: previous_hash")


def test_the_report_shows_the_live_record_beside_the_backtest() -> None:
    returns = _returns({"X": [0.0, 0.05, 0.10, -0.10]}, [D0, D1, D2, D3])
    summary = desk.summarise(desk.track_record(_targets(D0, EQUAL, {"X": 1.0}), returns).daily)
    backtest = pl.DataFrame({"strategy": [EQUAL], "sharpe": [0.812], "sharpe_ci_low": [0.1], "sharpe_ci_high": [1.5]})
    html = live_track_record_section(summary, backtest)
    assert f'id="{LIVE_SECTION_ID}"' in html and "Equal weight" in html
    cumulative = f"{(0.998 * 1.10 * 0.90 - 1) * 100:.2f} %"
    assert cumulative in html and "0.812" in html and "33.33 %" in html  # live return, backtest Sharpe, hit rate
    assert "No decision recorded yet" in live_track_record_section(None, backtest)


def test_decided_targets_budget_each_strategy_on_its_own() -> None:
    from quantlab_assets.compute.schemas.base import schema_failures
    from quantlab_assets.compute.schemas.desk import DecidedTargetsSchema

    two = pl.concat([_targets(D1, EQUAL, {"X": 0.9}), _targets(D1, TOP_N, {"X": 0.6, "Y": 0.3})])
    assert schema_failures(DecidedTargetsSchema, two, asset="target_portfolio", partition=None) is None
    levered = pl.concat([_targets(D1, EQUAL, {"X": 0.9}), _targets(D1, TOP_N, {"X": 0.8, "Y": 0.3})])
    assert "at most 1" in schema_failures(DecidedTargetsSchema, levered, asset="target_portfolio", partition=None)
