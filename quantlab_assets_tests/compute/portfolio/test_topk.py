"""Top-k with dropout and hysteresis: the sells and buys of each rebalance on small ranked sequences."""

import datetime as dt

import numpy as np
import polars as pl
import pytest

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.backtest.engine import SIGNAL_DATE, WEIGHT
from quantlab_assets.compute.portfolio.rules import topk_dropout, topk_step


def test_dropout_sells_at_most_n_drop_of_the_worst_ranked_and_buys_the_best_not_held() -> None:
    held = topk_step([], list("ABCDE"), k=3, n_drop=1, buffer=0)
    assert held == ["A", "B", "C"]
    # D E A B C: B (rank 4) and C (5) fall out of the top 3; only the worst, C, is sold; D is bought.
    held = topk_step(held, list("DEABC"), k=3, n_drop=1, buffer=0)
    assert held == ["D", "A", "B"]
    # E D C B A: B (rank 4) and A (rank 5) out of the top 3; the worst, A, is sold, E bought; B stays (one drop).
    held = topk_step(held, list("EDCBA"), k=3, n_drop=1, buffer=0)
    assert held == ["E", "D", "B"]
    # With two drops a rebalance the book would be the top 3 again.
    assert topk_step(["D", "A", "B"], list("EDCBA"), k=3, n_drop=2, buffer=0) == ["E", "D", "C"]


def test_names_in_the_top_k_are_never_sold() -> None:
    assert topk_step(["A", "B", "C"], list("CBAXYZ"), k=3, n_drop=3, buffer=0) == ["C", "B", "A"]


def test_hysteresis_exits_only_below_rank_k_plus_buffer() -> None:
    # k = 2, buffer 1: B at rank 3 stays; at rank 4 it is sold and the best name not held, C, bought.
    assert topk_step(["A", "B"], list("CABD"), k=2, n_drop=2, buffer=1) == ["A", "B"]
    assert topk_step(["A", "B"], list("CDAB"), k=2, n_drop=2, buffer=1) == ["C", "A"]


def test_a_held_name_that_left_the_tradable_members_is_sold_beyond_the_dropout_limit() -> None:
    # B is not ranked (not a member any more): sold, though n_drop = 0 forbids selling for rank.
    assert topk_step(["A", "B", "C"], list("ACXY"), k=3, n_drop=0, buffer=0) == ["A", "C", "X"]


def test_the_book_rebalances_every_n_dates_equal_weighted() -> None:
    dates = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(7)]
    tickers = list("ABCDE")
    grid = pl.DataFrame({c.DATE: pl.Series(dates, dtype=pl.Date).gather(np.repeat(np.arange(7), 5)), c.TICKER: tickers * 7})
    # Scores make the ranking ABCDE on days 0-2, EDCBA from day 3 on.
    score = [5 - i for i in range(5)] * 3 + [i for i in range(5)] * 4
    weights = topk_dropout(grid.with_columns(pl.Series("s", score, dtype=pl.Float64)), "s", k=2, n_drop=1, every=3,
                           max_position=0.4)
    assert weights.columns == [c.DATE, c.TICKER, WEIGHT, SIGNAL_DATE]
    by_date = {d: sorted(t) for d, t in weights.group_by(c.DATE).agg(pl.col(c.TICKER)).iter_rows()}
    # Decisions on days 0, 3, 6: {A, B}; day 3 drops A (the worse of the two out of the top 2) for E; day 6 drops B for D.
    assert by_date == {dates[0]: ["A", "B"], dates[3]: ["B", "E"], dates[6]: ["D", "E"]}
    assert weights[WEIGHT].to_list() == pytest.approx([0.4] * 6)  # 1/2 capped at 0.4: the rest is cash
