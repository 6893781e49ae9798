"""Point-in-time membership and the tradable set, rule by rule on hand-built frames.

Universe parsing (YAML keys, membership file, bad input), the data step (bars after a delisting
quarantined, is_member, the delisting return), and every cross-sectional consumer: feature ranks and the
equal-weight proxy, labels, the strategies and the backtest engine.
"""

from __future__ import annotations

import datetime as dt
import math
import textwrap
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.backtest.engine import RETURN, run_backtest
from quantlab_assets.compute.data.membership import (
    AFTER_DELISTING,
    MembershipError,
    mark_members,
    spells_without_bars,
    split_after_delisting,
)
from quantlab_assets.compute.data.raw import as_raw_frame
from quantlab_assets.compute.features.benchmark import BENCHMARK_RETURN, benchmark_returns
from quantlab_assets.compute.labels.compute import compute_labels
from quantlab_assets.compute.portfolio.names import BUY_AND_HOLD, EQUAL, TOP_N
from quantlab_assets.compute.portfolio.strategies import StrategyParams, build_target_weights
from quantlab_assets.compute.schemas.base import validate
from quantlab_assets.compute.schemas.data import QuarantinedBarsSchema, UniverseSchema
from quantlab_assets.compute.universe import UniverseConfigError, load_universe_spec, universe_frame
from quantlab_assets_tests.compute.builders import weekdays
from quantlab_assets_tests.compute.features.panels import bars_frame, features
from quantlab_assets_tests.compute.labels.helpers import bars_from_grid

DAY = dt.date(2024, 1, 1)  # a Monday


def _yaml(tmp_path: Path, body: str, membership: str | None = None) -> Path:
    if membership is not None:
        (tmp_path / "members.csv").write_text(textwrap.dedent(membership).lstrip())
    path = tmp_path / "u.yaml"
    path.write_text(textwrap.dedent(body).lstrip())
    return path


UNIVERSE_YAML = """
    name: u
    source: csv
    csv: {paths: [p.csv]}
    instruments:
      - {ticker: AAA, name: A, sector: S, industry: I}
      - {ticker: BBB, name: B, sector: S, industry: I, listed: 2024-01-03, delisted: 2024-01-10, delisting_return: -0.3}
      - {ticker: IDX, name: Index, sector: Index, industry: Index, tradable: false}
"""


def _universe(**spells: dict) -> pl.DataFrame:
    """A universe table of tradable instruments with the given spells, plus the non-tradable IDX."""
    rows = [
        {c.TICKER: ticker, c.NAME: ticker, c.SECTOR: "S", c.INDUSTRY: "I", c.TRADABLE: True,
         c.LISTED: spell.get("listed"), c.DELISTED: spell.get("delisted"), c.DELISTING_RETURN: spell.get("ret")}
        for ticker, spell in spells.items()
    ]
    rows.append({c.TICKER: "IDX", c.NAME: "IDX", c.SECTOR: "Index", c.INDUSTRY: "Index", c.TRADABLE: False,
                 c.LISTED: None, c.DELISTED: None, c.DELISTING_RETURN: None})
    return pl.DataFrame(rows, schema={c.TICKER: pl.String, c.NAME: pl.String, c.SECTOR: pl.String, c.INDUSTRY: pl.String,
                                      c.TRADABLE: pl.Boolean, c.LISTED: pl.Date, c.DELISTED: pl.Date,
                                      c.DELISTING_RETURN: pl.Float64})


# --- the universe: YAML keys and the membership file --------------------------------------------------


def test_yaml_spells_and_tradable_flags_reach_the_universe_table(tmp_path: Path) -> None:
    frame = universe_frame(load_universe_spec(_yaml(tmp_path, UNIVERSE_YAML)))
    validate(UniverseSchema, frame, asset="universe", partition="u")
    rows = {row[c.TICKER]: row for row in frame.iter_rows(named=True)}
    assert [rows[t][c.TRADABLE] for t in ("AAA", "BBB", "IDX")] == [True, True, False]
    assert (rows["BBB"][c.LISTED], rows["BBB"][c.DELISTED], rows["BBB"][c.DELISTING_RETURN]) == (
        dt.date(2024, 1, 3), dt.date(2024, 1, 10), -0.3)
    assert rows["AAA"][c.LISTED] is None and rows["AAA"][c.DELISTED] is None


def test_a_membership_file_gives_the_spells(tmp_path: Path) -> None:
    body = UNIVERSE_YAML.replace(", listed: 2024-01-03, delisted: 2024-01-10, delisting_return: -0.3", "")
    path = _yaml(tmp_path, body + "    membership: members.csv\n",
                 "ticker,listed,delisted,delisting_return\nBBB,2024-01-03,2024-01-10,-0.3\nAAA,,2024-01-05,\n")
    frame = universe_frame(load_universe_spec(path))
    assert frame.filter(pl.col(c.TICKER) == "BBB").select(c.LISTED, c.DELISTED, c.DELISTING_RETURN).row(0) == (
        dt.date(2024, 1, 3), dt.date(2024, 1, 10), -0.3)
    assert frame.filter(pl.col(c.TICKER) == "AAA")[c.DELISTED].item() == dt.date(2024, 1, 5)


@pytest.mark.parametrize(
    ("membership", "message"),
    [
        ("ticker,listed,delisted\nZZZ,2024-01-03,\n", r"members.csv: row 2: 'ZZZ' is not an instrument of the universe"),
        ("ticker,listed,delisted\nAAA,2024-01-03,\nAAA,2024-02-03,\n", r"row 3: 'AAA' has a second membership spell"),
        ("ticker,listed,delisted\nAAA,2024-01-10,2024-01-03\n", r"row 2: delisted 2024-01-03 precedes listed 2024-01-10"),
        ("ticker,listed,delisted_at\nAAA,2024-01-10,\n", r"expected columns ticker, listed, delisted, delisting_return"),
        ("ticker,delisting_return\nAAA,-0.5\n", r"row 2: delisting_return without a delisted date"),
        ("ticker,delisted,delisting_return\nAAA,2024-01-10,-1.5\n", r"row 2: delisting_return must be > -1"),
        ("ticker,delisted\nBBB,2024-01-10\n", r"BBB has membership dates both inline and in members.csv"),
    ],
)
def test_a_bad_membership_file_is_a_clear_error(tmp_path: Path, membership: str, message: str) -> None:
    path = _yaml(tmp_path, UNIVERSE_YAML + "    membership: members.csv\n", membership)
    with pytest.raises(UniverseConfigError, match=message):
        load_universe_spec(path)


def test_tradable_must_be_a_boolean(tmp_path: Path) -> None:
    with pytest.raises(UniverseConfigError, match=r"instruments\[2\].tradable must be true or false"):
        load_universe_spec(_yaml(tmp_path, UNIVERSE_YAML.replace("tradable: false", "tradable: no way")))


def test_shipped_real_universes_state_survivorship_and_mark_their_indices() -> None:
    from quantlab_assets.compute.universe import load_universe_catalog

    catalog = load_universe_catalog()
    for name, indices in (("sp500_sample", ["^GSPC", "^IXIC"]), ("yfinance_us_large_caps", ["SPY"])):
        assert "Survivorship bias" in catalog[name].description
        frame = universe_frame(catalog[name])
        assert sorted(frame.filter(~pl.col(c.TRADABLE))[c.TICKER].to_list()) == indices


def test_synthetic_listings_and_delistings_are_the_membership_dates() -> None:
    from quantlab_assets.compute.data.synthetic import SyntheticMarketParams, generate_synthetic_market

    end = dt.date(2016, 12, 30)
    market = generate_synthetic_market(SyntheticMarketParams(n_instruments=30, start=dt.date(2005, 1, 3), end=end,
                                                             delisting_share=0.3))
    spans = market.bars.group_by(c.TICKER).agg(pl.col(c.DATE).min().alias("first"), pl.col(c.DATE).max().alias("last"))
    table = market.universe.join(spans, on=c.TICKER)
    listed, delisted = table.filter(pl.col(c.LISTED).is_not_null()), table.filter(pl.col(c.DELISTED) <= end)
    assert listed.height > 0 and delisted.height > 0
    assert (listed[c.LISTED] == listed["first"]).all()
    # The last bar is the delisting day unless that day happened to be a randomly missing one.
    assert (delisted["last"] <= delisted[c.DELISTED]).all() and (delisted["last"] == delisted[c.DELISTED]).sum() >= delisted.height - 1


# --- the data step ---------------------------------------------------------------------------------------


def _raw(rows: dict[str, list[float]]) -> pl.DataFrame:
    days = weekdays(DAY, max(len(v) for v in rows.values()))
    bars = pl.DataFrame(
        [{c.DATE: days[i], c.TICKER: t, c.OPEN: p, c.HIGH: p, c.LOW: p, c.CLOSE: p, c.ADJ_CLOSE: p, c.VOLUME: 1.0}
         for t, prices in rows.items() for i, p in enumerate(prices)]
    ).sort(c.DATE, c.TICKER)
    return as_raw_frame(bars, source="csv", source_file="prices.csv")


def test_bars_after_a_delisting_are_quarantined_with_file_row_and_rule() -> None:
    raw = _raw({"AAA": [10.0] * 8, "BBB": [20.0] * 8})
    universe = _universe(AAA={}, BBB={"delisted": dt.date(2024, 1, 5)})
    kept, quarantine = split_after_delisting(raw, universe, (DAY, dt.date(2024, 1, 31)))
    validate(QuarantinedBarsSchema, quarantine, asset="rejected_bars", partition="p")
    assert kept.columns == raw.columns and kept.height == 8 + 5
    assert kept.filter(pl.col(c.TICKER) == "BBB")[c.DATE].max() == dt.date(2024, 1, 5)
    assert quarantine[c.DATE].to_list() == [dt.date(2024, 1, d) for d in (8, 9, 10)]
    assert set(quarantine[c.RULE]) == {AFTER_DELISTING} and set(quarantine[c.ACTION]) == {"dropped"}
    assert set(quarantine[c.SOURCE_FILE]) == {"prices.csv"} and quarantine[c.SOURCE_ROW].is_not_null().all()
    assert quarantine[c.DETAIL][0] == "dated after the instrument's delisting date 2024-01-05 (its last trading day)"


def test_a_delisting_date_before_the_first_bar_quarantines_every_bar_and_says_so() -> None:
    raw = _raw({"AAA": [10.0] * 3, "BBB": [20.0] * 3})
    universe = _universe(AAA={}, BBB={"delisted": dt.date(2023, 12, 29)})
    kept, quarantine = split_after_delisting(raw, universe, (DAY, dt.date(2024, 1, 31)))
    assert set(kept[c.TICKER]) == {"AAA"} and quarantine.height == 3
    assert quarantine[c.DETAIL].str.contains("which precedes its first bar").all()


def test_is_member_and_the_delisting_return_on_the_last_member_bar() -> None:
    # BBB's fifth row is cleaning's forward fill past its last bar: a price it never had, removed.
    bars = bars_frame({"AAA": [10.0, 11.0, 12.0, 12.0, 13.0], "BBB": [20.0, 21.0, 22.0, 20.0, 20.0]})
    universe = _universe(AAA={"listed": dt.date(2024, 1, 3)}, BBB={"delisted": dt.date(2024, 1, 4), "ret": -0.5})
    marked = mark_members(bars, universe, dt.date(2024, 1, 31))
    aaa, bbb = (marked.filter(pl.col(c.TICKER) == t).sort(c.DATE) for t in ("AAA", "BBB"))
    assert aaa[c.IS_MEMBER].to_list() == [False, False, True, True, True]
    assert bbb[c.IS_MEMBER].all()
    assert bbb[c.LOG_RETURN][-1] == pytest.approx(math.log(20.0 / 22.0) + math.log(0.5), rel=1e-15)
    assert bbb[c.CLOSE][-1] == 20.0  # the last traded price is kept
    assert marked.filter(pl.col(c.TICKER) == "AAA")[c.LOG_RETURN].equals(bars.filter(pl.col(c.TICKER) == "AAA")[c.LOG_RETURN])
    # A window that ends before the delisting date books nothing (its last bar is not the instrument's last).
    early = mark_members(bars, universe, dt.date(2024, 1, 3))
    assert early.filter(pl.col(c.TICKER) == "BBB")[c.LOG_RETURN].equals(bars.filter(pl.col(c.TICKER) == "BBB")[c.LOG_RETURN][:4])
    assert bbb.height == 4


def test_a_spell_without_any_bar_is_an_error_naming_the_universe_file() -> None:
    raw = _raw({"AAA": [10.0] * 5})
    universe = _universe(AAA={}, GONE={"listed": dt.date(2023, 6, 1), "delisted": dt.date(2024, 1, 3)})
    with pytest.raises(MembershipError, match=r"u.yaml: 1 instrument\(s\).*GONE \(2024-01-01..2024-01-03\)"):
        spells_without_bars(raw, universe, (DAY, dt.date(2024, 1, 31)), Path("u.yaml"))
    # A spell that ends before the window, or that starts after the newest bar, is no error.
    spells_without_bars(raw, _universe(AAA={}, OLD={"listed": dt.date(2020, 1, 1), "delisted": dt.date(2023, 1, 3)},
                                       NEW={"listed": dt.date(2024, 3, 1)}),
                        (DAY, dt.date(2024, 1, 31)), Path("u.yaml"))


# --- features --------------------------------------------------------------------------------------------


def test_a_member_joining_mid_panel_enters_the_ranks_from_its_listing_day() -> None:
    # ret_21d on the last two days: A up, B down, C up most (C's bars start early; it is a member from day 22).
    closes = {"A": [100.0] * 21 + [110.0, 121.0], "B": [100.0] * 21 + [90.0, 81.0], "C": [100.0] * 21 + [120.0, 144.0]}
    bars = bars_frame(closes)
    days = sorted(bars[c.DATE].unique())
    universe = _universe(A={}, B={}, C={"listed": days[22]})
    frame = features(mark_members(bars, universe, days[-1]), ["rank_ret_21d"], universe=universe)
    on = {day: dict(frame.filter(pl.col(c.DATE) == day).select(c.TICKER, "rank_ret_21d").iter_rows()) for day in days[21:]}
    assert on[days[21]] == {"A": 1.0, "B": 0.0}  # C's bar of day 21 is history, not a row of the cross-section
    assert on[days[22]]["C"] == 1.0 and on[days[22]]["A"] < 1.0  # C enters and takes the top rank
    everyone = features(bars, ["rank_ret_21d"], universe=universe.with_columns(pl.lit(None, dtype=pl.Date).alias(c.LISTED)))
    assert dict(everyone.filter(pl.col(c.DATE) == days[21]).select(c.TICKER, "rank_ret_21d").iter_rows())["A"] < 1.0


def test_an_index_never_enters_features_or_the_equal_weight_proxy() -> None:
    closes = {"A": [100.0, 101.0, 103.0], "B": [50.0, 49.0, 50.0], "IDX": [10.0, 20.0, 40.0]}
    bars = bars_frame(closes)
    universe = _universe(A={}, B={})
    frame = features(bars, ["ret_1d"], universe=universe)
    assert frame.height == 6 and "IDX" not in frame[c.TICKER].to_list()
    proxy = benchmark_returns(bars, universe, None)[BENCHMARK_RETURN].to_numpy()[1:]
    expected = np.mean([np.diff(np.log(closes[t])) for t in ("A", "B")], axis=0)
    np.testing.assert_allclose(proxy, expected, rtol=1e-12)
    # The index still feeds a named benchmark.
    named = benchmark_returns(bars, universe, "IDX")[BENCHMARK_RETURN].to_numpy()[1:]
    np.testing.assert_allclose(named, np.diff(np.log(closes["IDX"])), rtol=1e-14)


# --- labels ----------------------------------------------------------------------------------------------


def test_labels_hold_tradable_members_only_and_keep_a_delisted_loser() -> None:
    # Six days; B delists on day 2 with a -50 % delisting return; IDX is an index.
    close = np.array([[100.0, 100.0, 10.0, 100.0]] * 6)
    close[1:, 0] = [101.0, 102.0, 103.0, 104.0, 105.0]
    close[1:3, 1] = [98.0, 96.0]
    close[3:, 1] = np.nan
    close[1:, 2] = [11.0, 12.0, 13.0, 14.0, 15.0]
    close[1:, 3] = [100.0, 99.0, 101.0, 100.0, 100.0]
    bars = bars_from_grid(["A", "B", "IDX", "D"], close, log_return=np.vstack(
        [np.full(4, np.nan), np.diff(np.log(close), axis=0)]))
    days = sorted(bars[c.DATE].unique())
    universe = _universe(A={}, B={"delisted": days[2], "ret": -0.5}, D={})
    labels = compute_labels(mark_members(bars, universe, days[-1]), universe)
    assert "IDX" not in labels[c.TICKER].to_list()
    b_first = labels.filter((pl.col(c.TICKER) == "B") & (pl.col(c.DATE) == days[0])).row(0, named=True)
    # 5 days ahead: 100 -> 96, then the delisting (-50 %), then cash.
    assert b_first["fwd_return_5d"] == pytest.approx(math.log(0.96) + math.log(0.5), rel=1e-12)
    assert b_first["label_end_5d"] == days[5]
    assert labels.filter(pl.col(c.TICKER) == "B")[c.DATE].max() == days[2]  # no row of B after its delisting


def test_industry_peers_of_a_day_are_its_tradable_members() -> None:
    from quantlab_assets.compute.labels.compute import LabelParams

    close = np.array([[100.0, 100.0, 10.0]] * 3)
    close[1:, 0] = [110.0, 121.0]
    close[1:, 1] = [100.0, 100.0]
    close[1:, 2] = [20.0, 40.0]
    bars = bars_from_grid(["A", "B", "IDX"], close, log_return=np.vstack([np.full(3, np.nan), np.diff(np.log(close), axis=0)]))
    universe = _universe(A={}, B={}).with_columns(pl.lit("I").alias(c.INDUSTRY))  # the index shares A's industry
    labels = compute_labels(bars, universe, LabelParams(horizons=(1,), relative_horizons=(1,)))
    a_first = labels.filter(pl.col(c.TICKER) == "A").sort(c.DATE).row(0, named=True)
    assert a_first["label_1d"] == pytest.approx(math.log(1.1) - 0.0, rel=1e-12)  # B only, not the index's +69 %


# --- strategies and the engine ---------------------------------------------------------------------------


def _returns(days: list[dt.date], by_ticker: dict[str, list[float | None]]) -> pl.DataFrame:
    return pl.DataFrame(
        [{c.DATE: days[i], c.TICKER: t, RETURN: r} for t, values in by_ticker.items() for i, r in enumerate(values)
         if r is not None or i == 0],
        schema={c.DATE: pl.Date, c.TICKER: pl.String, RETURN: pl.Float64},
    )


def test_baselines_hold_tradable_members_and_the_benchmark_strategy_holds_the_benchmark() -> None:
    days = weekdays(DAY, 4)
    returns = _returns(days, {"A": [None, 0.01, 0.0, 0.0], "B": [None, 0.0, 0.01, 0.0], "L": [None, 0.0, 0.0, 0.02],
                              "IDX": [None, 0.01, 0.01, 0.01]})
    members = returns.filter(pl.col(c.TICKER).is_in(["A", "B"]) | ((pl.col(c.TICKER) == "L") & (pl.col(c.DATE) >= days[2])))
    alpha = returns.select(c.DATE, c.TICKER, pl.col(c.TICKER).replace_strict({"A": 1.0, "B": 2.0, "L": 3.0, "IDX": 9.0}).alias(StrategyParams().alpha))
    equal = build_target_weights(EQUAL, alpha, returns, members=members).weights
    assert set(equal[c.TICKER]) == {"A", "B"}  # the first rebalance: L is not listed yet, the index never
    top = build_target_weights(TOP_N, alpha, returns, members=members).weights
    assert "IDX" not in top[c.TICKER].to_list()
    assert set(top.filter(pl.col(c.DATE) == days[0])[c.TICKER]) == {"A", "B"}
    held = build_target_weights(BUY_AND_HOLD, alpha, returns, members=members, benchmark="IDX")
    assert held.weights.select(c.TICKER, "weight").rows() == [("IDX", 1.0)]
    fallback = build_target_weights(BUY_AND_HOLD, alpha, returns, members=members)
    assert sorted(fallback.weights[c.TICKER]) == ["A", "B"] and "equal-weighted members" in fallback.notes[0]


def test_a_delisted_position_is_closed_at_its_last_bar_with_its_delisting_return() -> None:
    days = weekdays(DAY, 6)
    # B's last bar is day 3, whose return carries a -50 % delisting (booked by mark_members upstream).
    returns = _returns(days, {"A": [None, 0.0, 0.0, 0.0, 0.0, 0.01], "B": [None, 0.1, 0.0, -0.5, None, None]})
    # Decided on day 0, traded at day 1's close; decided again on day 4 (B is gone by then).
    weights = pl.DataFrame({c.DATE: [days[0], days[0], days[4], days[4]], c.TICKER: ["A", "B", "A", "B"],
                            "weight": [0.5, 0.5, 0.5, 0.5]})
    result = run_backtest(returns, weights)
    daily = result.daily
    assert daily["gross_return"][3] == pytest.approx(-0.25, rel=1e-12)  # half the book loses half its value
    # After day 3 nothing of B survives: its value (0.25) is cash, not a weight and not traded.
    assert result.weights.filter(pl.col(c.TICKER) == "B")[c.DATE].max() == days[3]
    assert daily["invested"][4] == pytest.approx(0.5 / 0.75, rel=1e-12)
    a_before_trade = 0.505 / 0.755
    assert daily["turnover"][5] == pytest.approx(abs(a_before_trade - 0.5), rel=1e-12)  # A only: B's target stays cash
    assert daily["n_positions"][5] == 1 and daily["invested"][5] == pytest.approx(0.5)


def test_the_report_note_states_survivorship_or_the_dated_membership() -> None:
    from quantlab_assets.compute.data.membership import membership_note

    survivors = _universe(A={}, B={})
    assert membership_note(survivors).startswith("Survivorship: no instrument of this universe has a delisting date")
    assert membership_note(survivors).endswith("Not tradable (benchmarks only): IDX.")
    dated = _universe(A={"listed": DAY}, B={"delisted": DAY})
    assert membership_note(dated).startswith("Point-in-time membership: 1 listing and 1 delisting dates.")


def test_an_index_never_reaches_a_models_training_rows() -> None:
    from quantlab_assets.compute.features.compute import FeatureParams, compute_features
    from quantlab_assets.compute.models.oof import design_panel
    from quantlab_assets_tests.compute.features.panels import gap_free_panel

    bars, synthetic_universe = gap_free_panel()
    index = bars.filter(pl.col(c.TICKER) == bars[c.TICKER].min()).with_columns(pl.lit("IDX").alias(c.TICKER))
    bars = pl.concat([bars, index]).sort(c.DATE, c.TICKER)
    universe = pl.concat([synthetic_universe, _universe().filter(pl.col(c.TICKER) == "IDX")])
    panel = compute_features(bars, universe, params=FeatureParams(features=("ret_21d", "rank_ret_21d"),
                                                                  industry_z_features=(), rolling_z_features=())).frame
    design = design_panel(panel, compute_labels(bars, universe), horizon=21)
    assert design.frame.height > 0 and "IDX" not in design.frame[c.TICKER].to_list()
