"""clean_bars: each rule on a tiny hand-built frame, then the whole-pipeline properties on a synthetic panel.

Hand-built frames use `LENIENT` cleaning (the two drop rules off) unless the test is about those rules,
since a few weeks of bars never reach the default 252 days of history.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.cleaning import (
    ACTION_FLAGGED,
    ACTION_DROPPED,
    ACTION_REJECTED,
    CLEANED_COLUMNS,
    RETURN_OUTLIER,
    REVERTED_SPIKE,
    QUARANTINE_SCHEMA,
    ROW_RULES,
    SERIES_RULES,
    CleaningParams,
    CleaningResult,
    UnadjustedSplitError,
    clean_bars,
)
from quantlab_assets.compute.data.raw import as_raw_frame
from quantlab_assets.compute.data.synthetic import SyntheticMarketParams
from quantlab_assets.compute.universe import UniverseConfigError
from quantlab_assets_tests.compute.builders import HAND_SOURCE_FILE, bar, clean, raw_frame, series, shuffled, weekdays

START = dt.date(2024, 1, 1)  # a Monday
DAYS = weekdays(START, 10)  # 2024-01-01 .. 2024-01-12
MONDAY_AFTER = dt.date(2024, 1, 15)
SATURDAY = dt.date(2024, 1, 13)


def _base_rows() -> list[dict[str, Any]]:
    """Two instruments with ten good weekdays each (A: 100, 101, ...; B: 50, 50.5, ...)."""
    return series("A", [100.0 + i for i in range(10)]) + series("B", [50.0 + 0.5 * i for i in range(10)])


def _row_of(frame: pl.DataFrame, source_row: int) -> dict[str, Any]:
    rows = frame.filter(pl.col(c.SOURCE_ROW) == source_row).to_dicts()
    assert len(rows) == 1, f"expected one row from source_row {source_row}, got {rows}"
    return rows[0]


def _cleaned_row(result: CleaningResult, day: dt.date, ticker: str) -> dict[str, Any] | None:
    rows = result.cleaned.filter((pl.col(c.DATE) == day) & (pl.col(c.TICKER) == ticker)).to_dicts()
    assert len(rows) <= 1
    return rows[0] if rows else None


# --- Row rules ---------------------------------------------------------------------------------------------


ROW_RULE_CASES = [
    pytest.param(
        bar(MONDAY_AFTER, "A", None, parse_error="close: n/a is not a number"), {}, "unparseable_value",
        "close: n/a is not a number", id="unparseable_value",
    ),
    pytest.param(bar(MONDAY_AFTER, None, 110.0), {}, "missing_key", "missing_key", id="missing_key-null-ticker"),
    pytest.param(bar(MONDAY_AFTER, "ZZZ", 110.0), {}, "unknown_instrument", "unknown_instrument", id="unknown_instrument"),
    pytest.param(bar(SATURDAY, "A", 110.0), {}, "non_trading_day", "non_trading_day", id="non_trading_day-saturday"),
    pytest.param(bar(dt.date(2024, 1, 14), "A", 110.0), {}, "non_trading_day", "non_trading_day", id="non_trading_day-sunday"),
    pytest.param(
        bar(MONDAY_AFTER, "A", 110.0), {"holidays": [MONDAY_AFTER]}, "non_trading_day", "non_trading_day",
        id="non_trading_day-listed-holiday",
    ),
    pytest.param(
        bar(MONDAY_AFTER, "A", 110.0), {"as_of": DAYS[-1]}, "future_date", "future_date", id="future_date",
    ),
    pytest.param(bar(MONDAY_AFTER, "A", None), {}, "missing_close", "close=", id="missing_close-null"),
    pytest.param(bar(MONDAY_AFTER, "A", float("nan")), {}, "missing_close", "close=", id="missing_close-nan"),
    pytest.param(
        bar(MONDAY_AFTER, "A", -3.0, open=None, high=None, low=None, volume=None), {}, "non_positive_price", "close=-3.0",
        id="non_positive_price-close-only",
    ),
    pytest.param(bar(MONDAY_AFTER, "A", 0.0), {}, "non_positive_price", "close=0.0", id="non_positive_price-zero-close"),
    pytest.param(
        bar(MONDAY_AFTER, "A", 110.0, low=-1.0), {}, "non_positive_price", "low=-1.0", id="non_positive_price-negative-low",
    ),
    pytest.param(
        bar(MONDAY_AFTER, "A", 110.0, high=109.0), {}, "ohlc_inconsistent", "high=109.0", id="ohlc-high-below-close",
    ),
    pytest.param(
        bar(MONDAY_AFTER, "A", 110.0, open=105.0, low=106.0), {}, "ohlc_inconsistent", "low=106.0", id="ohlc-low-above-open",
    ),
    pytest.param(
        bar(MONDAY_AFTER, "A", 110.0, high=100.0, low=120.0, open=110.0), {}, "ohlc_inconsistent", "high=100.0",
        id="ohlc-low-above-high",
    ),
    pytest.param(bar(MONDAY_AFTER, "A", 110.0, volume=-5.0), {}, "negative_volume", "volume=-5.0", id="negative_volume"),
]


@pytest.mark.parametrize(("bad_row", "options", "rule", "detail"), ROW_RULE_CASES)
def test_row_rule_rejects_the_row_with_its_provenance(
    bad_row: dict[str, Any], options: dict[str, Any], rule: str, detail: str
) -> None:
    rows = _base_rows() + series("B", [60.0], start=MONDAY_AFTER) + [bad_row]
    raw = raw_frame(rows)
    bad_source_row = raw.height - 1
    result = clean(raw, ["A", "B"], window=(START, dt.date(2024, 1, 31)), **options)

    quarantined = _row_of(result.quarantine, bad_source_row)
    assert quarantined[c.RULE] == rule
    assert quarantined[c.ACTION] == ACTION_REJECTED
    assert quarantined[c.SOURCE_FILE] == HAND_SOURCE_FILE
    assert quarantined[c.SOURCE] == "csv"
    assert quarantined[c.DATE] == bad_row[c.DATE]
    assert quarantined[c.TICKER] == bad_row[c.TICKER]
    assert result.rule_counts[rule] >= 1
    # The rejected row never becomes a received bar (at most a forward-filled one).
    received = result.cleaned.filter(
        (pl.col(c.DATE) == bad_row[c.DATE]) & pl.col(c.TICKER).eq_missing(bad_row[c.TICKER]) & ~pl.col(c.IS_FILLED)
    )
    assert received.height == 0
    # The ten good days of A and B are untouched.
    good = result.cleaned.filter(pl.col(c.DATE) <= DAYS[-1])
    assert good.height == 20 and not good[c.IS_FILLED].any()


@pytest.mark.parametrize(("bad_row", "options", "rule", "detail"), ROW_RULE_CASES)
def test_row_rule_detail_describes_the_row(bad_row: dict[str, Any], options: dict[str, Any], rule: str, detail: str) -> None:
    """QuarantinedBarsSchema.detail is non-nullable: every quarantined row must say what was wrong."""
    rows = _base_rows() + series("B", [60.0], start=MONDAY_AFTER) + [bad_row]
    raw = raw_frame(rows)
    result = clean(raw, ["A", "B"], window=(START, dt.date(2024, 1, 31)), **options)
    quarantined = _row_of(result.quarantine, raw.height - 1)
    assert quarantined[c.DETAIL] is not None, f"{rule} row quarantined without a detail: {quarantined}"
    assert detail in quarantined[c.DETAIL]


def test_unparseable_value_detail_is_the_parse_error_and_the_day_is_forward_filled() -> None:
    rows = _base_rows() + series("B", [60.0], start=MONDAY_AFTER)
    rows.append(bar(MONDAY_AFTER, "A", None, parse_error="close: 1O9.5 is not a number"))
    result = clean(raw_frame(rows))
    assert result.quarantine[c.DETAIL].to_list() == ["close: 1O9.5 is not a number"]
    filled = _cleaned_row(result, MONDAY_AFTER, "A")
    assert filled is not None and filled[c.IS_FILLED] and filled[c.CLOSE] == 109.0


@pytest.mark.parametrize(
    ("bad_row", "options", "rule"),
    [
        pytest.param(bar(SATURDAY, "ZZZ", 1.0, parse_error="x"), {}, "unparseable_value", id="parse-error-beats-all"),
        pytest.param(bar(SATURDAY, None, -1.0), {}, "missing_key", id="missing-key-beats-weekend"),
        pytest.param(bar(SATURDAY, "ZZZ", -1.0), {}, "unknown_instrument", id="unknown-beats-weekend"),
        pytest.param(bar(SATURDAY, "A", 1.0), {"as_of": DAYS[-1]}, "non_trading_day", id="weekend-beats-future"),
        pytest.param(bar(MONDAY_AFTER, "A", None), {"as_of": DAYS[-1]}, "future_date", id="future-beats-missing-close"),
        pytest.param(bar(MONDAY_AFTER, "A", -1.0, high=-5.0), {}, "non_positive_price", id="non-positive-beats-ohlc"),
        pytest.param(bar(MONDAY_AFTER, "A", 1.0, high=0.5, volume=-1.0), {}, "ohlc_inconsistent", id="ohlc-beats-volume"),
    ],
)
def test_the_first_rule_in_order_names_the_fate(bad_row: dict[str, Any], options: dict[str, Any], rule: str) -> None:
    raw = raw_frame([*_base_rows(), bad_row])
    result = clean(raw, ["A", "B"], window=(START, dt.date(2024, 1, 31)), **options)
    assert _row_of(result.quarantine, raw.height - 1)[c.RULE] == rule


def test_row_rules_are_listed_in_the_documented_order() -> None:
    assert ROW_RULES == (
        "unparseable_value", "missing_key", "unknown_instrument", "non_trading_day", "future_date",
        "missing_close", "non_positive_price", "invalid_adj_close", "ohlc_inconsistent", "negative_volume",
        "duplicate_key",
    )
    assert SERIES_RULES == (
        "reverted_spike", "return_outlier", "adj_factor_jump", "insufficient_history", "high_missing_share"
    )


def test_ohlc_rounding_within_tolerance_is_accepted() -> None:
    rows = _base_rows()
    rows.append(bar(MONDAY_AFTER, "A", 110.0, high=110.0 * (1 - 1e-12), low=110.0 * (1 + 1e-12)))
    rows += series("B", [60.0], start=MONDAY_AFTER)
    result = clean(raw_frame(rows))
    assert result.quarantine.height == 0
    assert _cleaned_row(result, MONDAY_AFTER, "A") is not None


def test_close_only_rows_are_valid() -> None:
    rows = [bar(day, "A", 100.0 + i, open=None, high=None, low=None, volume=None) for i, day in enumerate(DAYS)]
    result = clean(raw_frame(rows))
    assert result.quarantine.height == 0
    assert result.cleaned.height == 10
    assert result.cleaned[c.OPEN].null_count() == 10 and result.cleaned[c.VOLUME].null_count() == 10


def test_duplicate_key_keeps_the_first_received_row() -> None:
    rows = _base_rows()
    # Received first, though its line number is larger: arrival order decides, not source_row.
    rows.append(bar(MONDAY_AFTER, "A", 111.0, source_row=500))
    rows.append(bar(MONDAY_AFTER, "A", 222.0, source_row=7))
    rows += series("B", [60.0], start=MONDAY_AFTER)
    result = clean(raw_frame(rows))

    kept = _cleaned_row(result, MONDAY_AFTER, "A")
    assert kept is not None and kept[c.CLOSE] == 111.0 and not kept[c.IS_FILLED]
    assert kept[c.LOG_RETURN] == pytest.approx(math.log(111.0 / 109.0))
    assert result.quarantine.height == 1
    rejected = result.quarantine.row(0, named=True)
    assert (rejected[c.RULE], rejected[c.ACTION], rejected[c.CLOSE], rejected[c.SOURCE_ROW]) == (
        "duplicate_key", ACTION_REJECTED, 222.0, 7,
    )
    assert rejected[c.DETAIL] == "a valid row for this (date, ticker) was received earlier"


def test_a_broken_first_copy_does_not_cost_the_day_its_valid_second_copy() -> None:
    rows = _base_rows()
    rows.append(bar(MONDAY_AFTER, "A", -111.0, source_row=40))
    rows.append(bar(MONDAY_AFTER, "A", 111.0, source_row=41))
    rows += series("B", [60.0], start=MONDAY_AFTER)
    result = clean(raw_frame(rows))

    kept = _cleaned_row(result, MONDAY_AFTER, "A")
    assert kept is not None and kept[c.CLOSE] == 111.0 and not kept[c.IS_FILLED]
    assert result.quarantine.select(c.RULE, c.SOURCE_ROW).rows() == [("non_positive_price", 40)]


def test_each_extra_duplicate_is_quarantined() -> None:
    rows = _base_rows() + [bar(DAYS[3], "B", float(v)) for v in (1, 2, 3)]
    result = clean(raw_frame(rows))
    assert result.rule_counts["duplicate_key"] == 3
    assert _cleaned_row(result, DAYS[3], "B")[c.CLOSE] == 51.5


# --- Forward fill ------------------------------------------------------------------------------------------


def _gappy_frame(missing: range, *, as_nan: bool) -> pl.DataFrame:
    """A (100, 101, ...) for 30 weekdays with `missing` positions NaN (or absent); B complete (the calendar)."""
    closes = [100.0 + i for i in range(30)]
    a_rows = series("A", closes)
    if as_nan:
        for i in missing:
            a_rows[i] = bar(a_rows[i][c.DATE], "A", float("nan"))
    else:
        a_rows = [row for i, row in enumerate(a_rows) if i not in missing]
    return raw_frame(a_rows + series("B", [50.0] * 30))


@pytest.mark.parametrize("as_nan", [pytest.param(True, id="nan-close"), pytest.param(False, id="absent-rows")])
@pytest.mark.parametrize(
    ("missing", "filled", "gap"),
    [
        pytest.param(range(10, 13), range(10, 13), range(0), id="3-days-all-filled"),
        pytest.param(range(10, 15), range(10, 15), range(0), id="5-days-all-filled"),
        pytest.param(range(10, 18), range(10, 15), range(15, 18), id="8-days-5-filled-then-gap"),
    ],
)
def test_short_gaps_are_forward_filled_and_long_gaps_stay_gaps(
    missing: range, filled: range, gap: range, as_nan: bool
) -> None:
    days = weekdays(START, 30)
    result = clean(_gappy_frame(missing, as_nan=as_nan))
    a = result.cleaned.filter(pl.col(c.TICKER) == "A").sort(c.DATE)
    assert a.height == 30 - len(gap)
    assert set(a[c.DATE]) == {day for i, day in enumerate(days) if i not in gap}
    last_close = 100.0 + missing.start - 1
    for i in filled:
        row = _cleaned_row(result, days[i], "A")
        assert row is not None and row[c.IS_FILLED] and not row[c.IS_OUTLIER]
        assert (row[c.OPEN], row[c.HIGH], row[c.LOW], row[c.CLOSE], row[c.RAW_CLOSE]) == (last_close,) * 5
        assert row[c.ADJ_FACTOR] == 1.0
        assert row[c.VOLUME] == 0.0
        assert row[c.LOG_RETURN] == 0.0
    # The first bar after the gap returns from the last close (filled or received) before it.
    after = _cleaned_row(result, days[missing.stop], "A")
    assert not after[c.IS_FILLED]
    assert after[c.LOG_RETURN] == pytest.approx(math.log((100.0 + missing.stop) / last_close))
    assert result.filled_rows == len(filled)
    assert result.rule_counts["missing_close"] == (len(missing) if as_nan else 0)
    # B is complete, so it never needs filling.
    assert not result.cleaned.filter(pl.col(c.TICKER) == "B")[c.IS_FILLED].any()


def test_days_on_which_no_instrument_traded_are_not_calendar_days() -> None:
    """The calendar is the dates with any valid bar: a day missing for every instrument is not filled."""
    days = weekdays(START, 12)
    rows = [bar(day, t, 100.0) for t in ("A", "B") for i, day in enumerate(days) if i != 5]
    result = clean(raw_frame(rows))
    assert days[5] not in set(result.cleaned[c.DATE])
    assert result.filled_rows == 0


def test_forward_fill_never_runs_before_an_instruments_first_bar() -> None:
    rows = series("A", [100.0] * 10) + series("B", [50.0] * 5, start=DAYS[5])
    result = clean(raw_frame(rows))
    b = result.cleaned.filter(pl.col(c.TICKER) == "B")
    assert b[c.DATE].min() == DAYS[5] and not b[c.IS_FILLED].any()
    assert b.sort(c.DATE)[c.LOG_RETURN][0] is None


def test_a_delisted_instrument_is_filled_up_to_the_limit_then_stops() -> None:
    rows = series("A", [100.0] * 20) + series("B", [50.0] * 8)
    result = clean(raw_frame(rows))
    b = result.cleaned.filter(pl.col(c.TICKER) == "B").sort(c.DATE)
    assert b.height == 8 + 5
    assert b[c.IS_FILLED].to_list() == [False] * 8 + [True] * 5


# --- Return outliers ---------------------------------------------------------------------------------------


OUTLIER_DETAIL = re.compile(
    r"log_return (?P<ret>-?[\d.]+) beyond (?P<k>[\d.]+) x robust sigma (?P<sigma>[\d.]+) \(kept as it happened\)"
)


def _spiky_closes(n: int = 40, spike_at: int = 30, jump: float = 0.5) -> list[float]:
    """Log returns alternating +1 % / -1 % (robust sigma 1.4826 %), with a jump at `spike_at` undone the next day."""
    log_returns = [0.01 * (-1) ** i for i in range(n)]
    log_returns[0] = 0.0
    log_returns[spike_at] += jump
    log_returns[spike_at + 1] -= jump
    closes, level = [], math.log(100.0)
    for r in log_returns:
        level += r
        closes.append(math.exp(level))
    return closes


def test_a_spike_that_reverts_on_the_next_bar_is_quarantined_and_the_day_filled() -> None:
    closes = _spiky_closes()
    days = weekdays(START, 40)
    # B trades every day, so the spike's date stays on the calendar and A's hole there is filled.
    result = clean(raw_frame(series("A", closes) + series("B", [50.0] * 40)))

    spike = _cleaned_row(result, days[30], "A")
    assert spike[c.IS_FILLED] and spike[c.CLOSE] == closes[29] and spike[c.LOG_RETURN] == 0.0
    after = _cleaned_row(result, days[31], "A")
    assert not after[c.IS_FILLED] and not after[c.IS_OUTLIER]
    assert after[c.LOG_RETURN] == pytest.approx(math.log(closes[31] / closes[29]))
    assert not result.cleaned[c.IS_OUTLIER].any()
    assert result.cleaned.height == 80

    quarantined = result.quarantine
    assert quarantined[c.RULE].to_list() == [REVERTED_SPIKE]
    assert quarantined[c.ACTION].to_list() == [ACTION_REJECTED]
    assert quarantined[c.SOURCE_ROW].to_list() == [30] and quarantined[c.CLOSE].to_list() == [closes[30]]
    assert quarantined[c.DETAIL][0].startswith("log_return 0.51 beyond 10.0 x robust sigma 0.014826, undone by -0.51")
    assert result.rejected_share == pytest.approx(1 / 80)


def test_a_40x_spike_that_reverts_is_quarantined() -> None:
    closes = [100.0 * (1.01 if i % 2 else 1.0) for i in range(40)]
    closes[30] = closes[30] * 40.0
    result = clean(raw_frame(series("A", closes)))
    assert result.quarantine.select(c.SOURCE_ROW, c.RULE).rows() == [(30, REVERTED_SPIKE)]
    assert result.cleaned[c.CLOSE].max() == pytest.approx(101.0)


def test_a_persistent_crash_is_flagged_and_kept_bit_for_bit() -> None:
    """A -31 % day that stays (the Vioxx withdrawal) is the return labels and P&L must see, unchanged."""
    closes = [100.0 * (1.01 if i % 2 else 1.0) for i in range(30)]
    closes += [closes[-1] * 0.69 * (1.01 if i % 2 else 1.0) for i in range(10)]
    days = weekdays(START, 40)
    result = clean(raw_frame(series("A", closes)))

    crash = _cleaned_row(result, days[30], "A")
    assert crash[c.LOG_RETURN] == math.log(closes[30] / closes[29])
    assert crash[c.IS_OUTLIER] and crash[c.CLOSE] == closes[30]
    assert result.cleaned[c.LOG_RETURN].sum() == pytest.approx(math.log(closes[-1] / closes[0]))

    flagged = result.quarantine
    assert flagged.select(c.SOURCE_ROW, c.RULE, c.ACTION).rows() == [(30, RETURN_OUTLIER, ACTION_FLAGGED)]
    detail = OUTLIER_DETAIL.fullmatch(flagged[c.DETAIL][0])
    assert detail is not None, flagged[c.DETAIL][0]
    assert float(detail["ret"]) == pytest.approx(math.log(0.69), abs=1e-6)
    assert float(detail["k"]) == 10.0
    assert result.rejected_share == 0.0  # flagged rows are not rejections


def test_the_newest_bar_cannot_be_judged_a_reverted_spike_and_stays_flagged() -> None:
    closes = _spiky_closes()[:31]  # the spike is the last bar: no next bar yet
    result = clean(raw_frame(series("A", closes)))
    assert result.quarantine.select(c.RULE, c.ACTION).rows() == [(RETURN_OUTLIER, ACTION_FLAGGED)]
    assert result.cleaned[c.IS_OUTLIER].to_list() == [False] * 30 + [True]


def test_outlier_sigma_is_a_parameter() -> None:
    closes = _spiky_closes(jump=0.1)  # 0.1 is ~6.7 robust sigmas: capped at 5, not at 10
    raw = raw_frame(series("A", closes))
    assert clean(raw).quarantine.height == 0
    loose = clean(raw, params=CleaningParams(min_history_days=1, max_missing_share=1.0, outlier_sigma=5.0))
    assert loose.rule_counts[REVERTED_SPIKE] == 1


def test_no_return_is_judged_before_enough_history_for_a_sigma() -> None:
    """Fewer than min_sigma_observations prior returns: no yardstick yet, nothing capped."""
    raw = raw_frame(series("A", _spiky_closes(n=12, spike_at=5)))
    result = clean(raw)
    assert not result.cleaned[c.IS_OUTLIER].any()
    assert result.rule_counts["return_outlier"] == 0


def test_outlier_cap_never_erases_a_move_when_robust_sigma_is_zero() -> None:
    """A stale-priced instrument (most daily returns exactly 0) then moves 5 %: its robust sigma is 0.

    Real data does this: skfolio's RRC trades in 1/8-dollar ticks around $2 in 1990-1993, so the median
    |return| is 0. The 5 % move must not come out of cleaning as a log return of 0 (or of the wrong sign)
    while the close itself moved: either it is not capped, or it is capped to a non-zero bound.
    """
    closes = [10.0] * 30 + [10.5, 10.5, 10.0]
    result = clean(raw_frame(series("A", closes)))
    days = weekdays(START, 33)
    up = _cleaned_row(result, days[30], "A")
    down = _cleaned_row(result, days[32], "A")
    assert up[c.CLOSE] == 10.5
    assert up[c.LOG_RETURN] > 0, f"a 5% rise came out as log_return {up[c.LOG_RETURN]} ({up})"
    assert down[c.LOG_RETURN] < 0, f"a 4.8% fall came out as log_return {down[c.LOG_RETURN]} ({down})"


# --- Drop rules --------------------------------------------------------------------------------------------


def test_insufficient_history_drops_the_first_251_days() -> None:
    days = weekdays(START, 260)
    raw = raw_frame(series("A", [100.0 + 0.1 * i for i in range(260)]))
    result = clean(raw, params=CleaningParams())
    assert result.cleaned[c.DATE].to_list() == days[251:]
    assert result.cleaned.height == 9
    dropped = result.quarantine
    assert dropped.height == 251
    assert set(dropped[c.RULE]) == {"insufficient_history"} and set(dropped[c.ACTION]) == {ACTION_DROPPED}
    assert dropped[c.SOURCE_ROW].to_list() == list(range(251))
    assert dropped[c.DETAIL][0] == "history_days=1 missing_share=0.0"
    assert dropped[c.DETAIL][-1] == "history_days=251 missing_share=0.0"
    assert result.rule_counts["insufficient_history"] == 251
    assert result.rejected_share == 0.0  # dropped rows are not rejections


def test_history_counts_from_the_first_bar_in_the_input_even_outside_the_window() -> None:
    days = weekdays(START, 300)
    raw = raw_frame(series("A", [100.0] * 300))
    result = clean(raw, window=(days[260], days[-1]), params=CleaningParams())
    assert result.cleaned.height == 40 and result.quarantine.height == 0
    assert result.raw_rows == 40


def test_high_missing_share_drops_the_rows_and_quarantines_the_received_ones() -> None:
    days = weekdays(START, 80)
    a_rows = series("A", [100.0] * 80)
    # B trades for 30 days, then only every third day (filled in between, but filled days count as missing).
    b_positions = [i for i in range(80) if i < 30 or i % 3 == 0]
    b_rows = [bar(days[i], "B", 50.0) for i in b_positions]
    result = clean(raw_frame(a_rows + b_rows), params=CleaningParams(min_history_days=1))

    observed = 0
    expected_dropped, expected_kept = [], []
    for i in range(80):
        observed += i in b_positions
        share = 1 - observed / (i + 1)
        if share > 0.2:
            if i in b_positions:
                expected_dropped.append(days[i])
        else:
            expected_kept.append(days[i])
    assert expected_dropped, "the scenario must trigger the rule"
    b = result.cleaned.filter(pl.col(c.TICKER) == "B")
    assert b[c.DATE].to_list() == expected_kept
    quarantined = result.quarantine.filter(pl.col(c.TICKER) == "B")
    assert quarantined[c.DATE].to_list() == expected_dropped
    assert set(quarantined[c.RULE]) == {"high_missing_share"} and set(quarantined[c.ACTION]) == {ACTION_DROPPED}
    assert all(float(d.split("missing_share=")[1]) > 0.2 for d in quarantined[c.DETAIL])
    # A is complete and unaffected.
    assert result.cleaned.filter(pl.col(c.TICKER) == "A").height == 80


# --- Whole-pipeline properties -----------------------------------------------------------------------------


def _clean_panel(raw: pl.DataFrame, tickers: list[str], market: SyntheticMarketParams, **kwargs: Any) -> CleaningResult:
    window = kwargs.pop("window", (market.start, market.end))
    as_of = kwargs.pop("as_of", market.end)
    return clean_bars(raw, tickers, window=window, as_of=as_of, **kwargs)


def _assert_results_equal(left: CleaningResult, right: CleaningResult) -> None:
    assert_frame_equal(left.cleaned, right.cleaned, check_exact=True)
    assert_frame_equal(left.quarantine, right.quarantine, check_exact=True)
    assert left.rule_counts == right.rule_counts
    assert (left.raw_rows, left.filled_rows) == (right.raw_rows, right.filled_rows)


def test_output_frames_have_the_documented_columns(dirty_small_raw, small_tickers, small_market_params) -> None:
    result = _clean_panel(dirty_small_raw, small_tickers, small_market_params)
    assert tuple(result.cleaned.columns) == CLEANED_COLUMNS
    assert result.quarantine.schema == pl.Schema(QUARANTINE_SCHEMA)
    assert_frame_equal(result.cleaned, result.cleaned.sort(c.DATE, c.TICKER))
    assert result.cleaned.select(c.DATE, c.TICKER).is_duplicated().sum() == 0
    assert set(result.rule_counts) == set(ROW_RULES + SERIES_RULES)
    assert sum(result.rule_counts.values()) == result.quarantine.height


def test_every_row_rule_fires_on_the_dirty_panel(dirty_small_raw, small_tickers, small_market_params) -> None:
    result = _clean_panel(dirty_small_raw, small_tickers, small_market_params)
    fired = {rule for rule, count in result.rule_counts.items() if count}
    # The synthetic market's adj_close is never missing: invalid_adj_close has its own tests.
    assert fired >= set(ROW_RULES) - {"future_date", "invalid_adj_close"} | {REVERTED_SPIKE, "insufficient_history"}


def test_unsorted_input_gives_the_same_result(small_raw, small_tickers, small_market_params) -> None:
    expected = _clean_panel(small_raw, small_tickers, small_market_params)
    for seed in (0, 1):
        _assert_results_equal(_clean_panel(shuffled(small_raw, seed), small_tickers, small_market_params), expected)


def test_every_quarantined_row_keeps_its_source_file_and_row(dirty_small_raw, small_tickers, small_market_params) -> None:
    result = _clean_panel(dirty_small_raw, small_tickers, small_market_params)
    quarantine = result.quarantine
    assert quarantine.height > 0
    assert quarantine.select(pl.sum_horizontal(pl.col(c.SOURCE, c.SOURCE_FILE, c.SOURCE_ROW).null_count())).item() == 0
    # And the provenance points at the very row that was received.
    back = quarantine.join(
        dirty_small_raw.select(c.SOURCE_FILE, c.SOURCE_ROW, c.DATE, pl.col(c.TICKER).alias("raw_ticker")),
        on=[c.SOURCE_FILE, c.SOURCE_ROW, c.DATE],
        how="left",
    )
    assert back.height == quarantine.height
    assert (back[c.TICKER].eq_missing(back["raw_ticker"])).all()
    assert set(quarantine[c.SOURCE_FILE]) == {"synthetic(test)", "extra.csv"}


@pytest.mark.parametrize(
    "window",
    [
        pytest.param(None, id="whole-span"),
        pytest.param((dt.date(2020, 3, 1), dt.date(2020, 3, 31)), id="one-month"),
    ],
)
def test_cleaning_loses_no_row(dirty_small_raw, small_tickers, small_market_params, window) -> None:
    """Each raw row in the window is a received cleaned bar, or quarantined as rejected/dropped (capped: both)."""
    window = window or (small_market_params.start, small_market_params.end)
    result = _clean_panel(dirty_small_raw, small_tickers, small_market_params, window=window)
    raw_in_window = dirty_small_raw.filter(pl.col(c.DATE).is_between(*window))
    assert result.raw_rows == raw_in_window.height

    removed = result.quarantine.filter(pl.col(c.ACTION).is_in([ACTION_REJECTED, ACTION_DROPPED]))
    capped = result.quarantine.filter(pl.col(c.ACTION) == ACTION_FLAGGED)
    received = result.cleaned.filter(~pl.col(c.IS_FILLED))
    assert removed.height + received.height == raw_in_window.height

    key = [c.SOURCE_FILE, c.SOURCE_ROW]
    assert removed.select(key).is_duplicated().sum() == 0
    survivors = raw_in_window.join(removed.select(key), on=key, how="anti")
    assert_frame_equal(
        survivors.select(c.DATE, c.TICKER, c.CLOSE).sort(c.DATE, c.TICKER),
        received.select(c.DATE, c.TICKER, c.CLOSE),
        check_exact=True,
    )
    # Capped rows are both in cleaned bars (flagged) and in the quarantine.
    flagged = received.filter(pl.col(c.IS_OUTLIER)).select(c.DATE, c.TICKER)
    assert_frame_equal(flagged, capped.select(c.DATE, c.TICKER).sort(c.DATE, c.TICKER))


def test_cleaning_is_deterministic(dirty_small_raw, small_tickers, small_market_params) -> None:
    _assert_results_equal(
        _clean_panel(dirty_small_raw, small_tickers, small_market_params),
        _clean_panel(dirty_small_raw, small_tickers, small_market_params),
    )


def test_cleaning_cleaned_bars_again_changes_nothing(dirty_small_raw, small_tickers, small_market_params) -> None:
    """Idempotence: the received cleaned bars, fed back as raw bars, come out the same.

    With the drop rules off: a dropped row is not in cleaned bars, so a second pass would count history
    from a later first bar (by design, not a defect of idempotence).
    """
    params = CleaningParams(min_history_days=1, max_missing_share=1.0)
    first = _clean_panel(dirty_small_raw, small_tickers, small_market_params, params=params)
    again_raw = as_raw_frame(
        first.cleaned.filter(~pl.col(c.IS_FILLED)).select(
            c.DATE, c.TICKER, *c.PRICE_COLUMNS, pl.col(c.CLOSE).alias(c.ADJ_CLOSE), c.VOLUME
        ),
        source="cleaned", source_file="cleaned",
    )
    second = _clean_panel(again_raw, small_tickers, small_market_params, params=params)
    assert_frame_equal(second.cleaned, first.cleaned, check_exact=True)
    assert set(second.quarantine[c.RULE]) == {"return_outlier"}
    assert_frame_equal(
        second.quarantine.select(c.DATE, c.TICKER, c.DETAIL),
        first.quarantine.filter(pl.col(c.ACTION) == ACTION_FLAGGED).select(c.DATE, c.TICKER, c.DETAIL),
    )


@pytest.mark.parametrize(
    "cut",
    [
        pytest.param(dt.date(2020, 1, 15), id="first-cleaned-weeks"),
        pytest.param(dt.date(2020, 3, 16), id="inside-crisis"),
        pytest.param(dt.date(2020, 6, 15), id="mid-panel"),
        pytest.param(dt.date(2021, 6, 29), id="day-before-end"),
    ],
)
def test_no_look_ahead(dirty_small_raw, small_tickers, small_market_params, cut: dt.date) -> None:
    """Cleaned rows and quarantine up to t are the same whether or not the raw rows after t exist."""
    full = _clean_panel(dirty_small_raw, small_tickers, small_market_params, params=CleaningParams())
    truncated = _clean_panel(
        dirty_small_raw.filter(pl.col(c.DATE) <= cut), small_tickers, small_market_params,
        window=(small_market_params.start, cut), as_of=cut, params=CleaningParams(),
    )
    assert truncated.cleaned.height > 0
    assert_frame_equal(truncated.cleaned, full.cleaned.filter(pl.col(c.DATE) <= cut), check_exact=True)
    assert_frame_equal(truncated.quarantine, full.quarantine.filter(pl.col(c.DATE) <= cut), check_exact=True)


def test_no_look_ahead_with_a_spike_just_after_the_cut() -> None:
    """A 10x spike the day after t cannot change the return, cap or fill of any day up to t."""
    closes = _spiky_closes(n=40, spike_at=30)
    raw = raw_frame(series("A", closes) + series("B", [50.0] * 40))
    days = weekdays(START, 40)
    full = clean(raw)
    truncated = clean(raw.filter(pl.col(c.DATE) <= days[29]))
    assert_frame_equal(truncated.cleaned, full.cleaned.filter(pl.col(c.DATE) <= days[29]), check_exact=True)


def test_a_window_with_lookback_equals_the_slice_of_the_whole(dirty_small_raw, small_tickers, small_market_params) -> None:
    window = (dt.date(2020, 9, 1), dt.date(2020, 9, 30))
    whole = _clean_panel(dirty_small_raw, small_tickers, small_market_params, params=CleaningParams())
    part = _clean_panel(dirty_small_raw, small_tickers, small_market_params, window=window, params=CleaningParams())
    in_window = pl.col(c.DATE).is_between(*window)
    assert part.cleaned.height > 0
    assert_frame_equal(part.cleaned, whole.cleaned.filter(in_window), check_exact=True)
    assert_frame_equal(part.quarantine, whole.quarantine.filter(in_window), check_exact=True)


def test_an_empty_input_gives_empty_outputs() -> None:
    empty = raw_frame([])
    result = clean_bars(empty, ["A"], window=(START, DAYS[-1]), as_of=DAYS[-1])
    assert result.cleaned.height == 0 and result.quarantine.height == 0
    assert tuple(result.cleaned.columns) == CLEANED_COLUMNS
    assert result.rejected_share == 0.0 and result.filled_rows == 0


def test_rejected_share_counts_only_row_rule_rejections() -> None:
    rows = _base_rows() + [bar(SATURDAY, "A", 1.0), bar(DAYS[0], "ZZZ", 1.0)]
    result = clean(raw_frame(rows), ["A", "B"])
    assert result.raw_rows == 22
    assert result.rejected_share == pytest.approx(2 / 22)


def test_rejected_share_by_month_does_not_dilute_one_bad_month_in_a_long_window() -> None:
    january = series("A", [100.0 + i for i in range(22)], start=dt.date(2024, 1, 1))
    february = series("A", [130.0 + i for i in range(20)], start=dt.date(2024, 2, 1))
    february[3][c.CLOSE] = -1.0
    february[4][c.CLOSE] = -1.0
    result = clean(raw_frame(january + february), ["A"])
    assert result.rejected_share == pytest.approx(2 / 42)
    assert result.rejected_share_by_month() == {"2024-01": 0.0, "2024-02": pytest.approx(2 / 20)}


def test_a_frame_concatenated_from_many_chunks_cleans_like_a_contiguous_one(small_raw: pl.DataFrame) -> None:
    """Regression: polars 2.1 panicked on the row rules over a frame stacked from monthly files."""
    months = small_raw.with_columns(pl.col(c.DATE).dt.strftime("%Y-%m").alias("month")).partition_by(
        "month", maintain_order=True, include_key=False
    )
    chunked = pl.concat(months, rechunk=False)
    assert chunked.n_chunks() > 1
    window = (small_raw[c.DATE].min(), small_raw[c.DATE].max())
    tickers = small_raw[c.TICKER].unique().sort()
    left = clean_bars(chunked, tickers, window=window, as_of=window[1])
    right = clean_bars(small_raw.rechunk(), tickers, window=window, as_of=window[1])
    assert_frame_equal(left.cleaned, right.cleaned)
    assert_frame_equal(left.quarantine, right.quarantine)


# --- Total-return adjustment -------------------------------------------------------------------------------


def _split_and_dividend_rows() -> tuple[list[dict[str, Any]], list[float]]:
    """A user's CSV rows with raw traded closes and a vendor's adjusted close.

    Traded closes: 400 for 20 days, a 4:1 split on day 20 (100.5 traded, +0.5 % true move), a 1.0
    dividend going ex on day 30 (the traded close drops by it); adj_close back-adjusts both.
    Returns the rows and the true (total-return) closes.
    """
    traded = [400.0] * 20 + [100.5] * 10 + [99.5] * 10
    dividend_factor = 1 - 1.0 / 100.5  # the vendor's multiplier for bars before the ex-date
    true = [t / 4 * dividend_factor if i < 20 else (t * dividend_factor if i < 30 else t) for i, t in enumerate(traded)]
    rows = [
        bar(day, "A", close, adj_close=adjusted, volume=1000.0 if i < 20 else 4000.0)
        for i, (day, close, adjusted) in enumerate(zip(weekdays(START, 40), traded, true, strict=True))
    ]
    return rows, true


def test_returns_come_from_the_adjusted_close_across_a_split_and_a_dividend() -> None:
    rows, true = _split_and_dividend_rows()
    result = clean(raw_frame(rows))
    a = result.cleaned.sort(c.DATE)
    expected = [None] + [math.log(b / a_) for a_, b in zip(true, true[1:])]
    assert a[c.LOG_RETURN].to_list()[1:] == pytest.approx(expected[1:], abs=1e-12)
    assert a[c.LOG_RETURN][20] == pytest.approx(math.log(1.005), abs=1e-12)  # not ln(1/4) = -1.386
    # Ex-dividend day: total return = (price + dividend) / previous price, i.e. price return + dividend yield.
    assert a[c.LOG_RETURN][30] == pytest.approx(math.log((99.5 + 1.0) / 100.5), abs=1e-12)
    # Prices are adjusted alike; the traded close and the factor stay; share volume is split-continuous.
    assert a[c.CLOSE].to_list() == pytest.approx(true, rel=1e-12)
    assert a[c.OPEN].to_list() == pytest.approx(true, rel=1e-12)
    assert a[c.RAW_CLOSE].to_list() == [row[c.CLOSE] for row in rows]
    assert (a[c.CLOSE] * a[c.VOLUME]).to_list() == pytest.approx([row[c.CLOSE] * row[c.VOLUME] for row in rows], rel=1e-12)
    assert a[c.VOLUME][19] == pytest.approx(4000.0 / (1 - 1.0 / 100.5), rel=1e-12)  # 1000 shares x 4
    assert result.quarantine.height == 0  # neither the split nor the dividend is an outlier or a factor jump


@pytest.mark.parametrize("bad_adj_close", [0.0, None, float("nan"), -5.0], ids=["zero", "missing", "nan", "negative"])
def test_a_bad_adjusted_close_for_one_day_is_quarantined(bad_adj_close: float | None) -> None:
    rows, _ = _split_and_dividend_rows()
    rows[25] = {**rows[25], c.ADJ_CLOSE: bad_adj_close}
    result = clean(raw_frame(rows + series("B", [50.0] * 40)))  # B keeps the day on the calendar
    row = _row_of(result.quarantine, 25)
    assert (row[c.RULE], row[c.ACTION], row[c.SOURCE_FILE]) == ("invalid_adj_close", ACTION_REJECTED, HAND_SOURCE_FILE)
    assert row[c.DETAIL].startswith(f"adj_close={'null' if bad_adj_close is None or math.isnan(bad_adj_close) else bad_adj_close}")
    assert _cleaned_row(result, weekdays(START, 40)[25], "A")[c.IS_FILLED]


def test_an_adjustment_factor_jump_without_a_price_move_is_flagged() -> None:
    """The vendor halves adj_close from day 20 on while the traded close does not move: not a split."""
    rows = [bar(day, "A", 100.0 + 0.1 * (i % 2), adj_close=(100.0 + 0.1 * (i % 2)) * (0.5 if i >= 20 else 1.0))
            for i, day in enumerate(weekdays(START, 40))]
    result = clean(raw_frame(rows))
    jumps = result.quarantine.filter(pl.col(c.RULE) == "adj_factor_jump")
    assert jumps.select(c.SOURCE_ROW, c.ACTION).rows() == [(20, ACTION_FLAGGED)]
    assert jumps[c.DETAIL][0].startswith("adj_factor moved by -0.693147 (log)")
    # A genuine 2:1 split (the traded close halves as the factor doubles) is neither a jump nor an outlier.
    split = [bar(day, "A", 100.0 / (2 if i >= 20 else 1), adj_close=50.0) for i, day in enumerate(weekdays(START, 40))]
    assert clean(raw_frame(split)).quarantine.height == 0


def test_a_file_without_adjusted_closes_needs_the_universe_to_declare_them() -> None:
    rows = [{**row, c.ADJ_CLOSE: None} for row in series("A", [100.0 + i for i in range(10)])]
    with pytest.raises(UniverseConfigError, match=r"test universe: 10 bar\(s\) come without an adjusted close .*close_is_adjusted"):
        clean(raw_frame(rows))
    declared = clean(raw_frame(rows), close_is_adjusted=True)
    assert declared.cleaned[c.ADJ_FACTOR].to_list() == [1.0] * 10
    assert declared.cleaned[c.CLOSE].to_list() == declared.cleaned[c.RAW_CLOSE].to_list() == [100.0 + i for i in range(10)]


def test_a_split_in_raw_closes_declared_unadjusted_stops_the_run_naming_instrument_and_date() -> None:
    closes = [100.0 * (1.01 if i % 2 else 1.0) for i in range(30)] + [25.3 * (1.01 if i % 2 else 1.0) for i in range(10)]
    rows = [{**row, c.ADJ_CLOSE: None} for row in series("A", closes)]
    day = weekdays(START, 40)[30]
    with pytest.raises(UnadjustedSplitError, match=rf"close_is_adjusted: false .* A {day} \(close x 0\.2505, {HAND_SOURCE_FILE} row 30\)"):
        clean(raw_frame(rows), close_is_adjusted=False)
    # A crash that is no split ratio is booked as it happened (price return: dividends are not in it).
    crash = [{**row, c.ADJ_CLOSE: None} for row in series("A", closes[:30] + [c_ * 0.69 * 4 for c_ in closes[30:]])]
    booked = clean(raw_frame(crash), close_is_adjusted=False)
    assert booked.cleaned[c.LOG_RETURN][30] == math.log(closes[30] * 0.69 * 4 / closes[29])
