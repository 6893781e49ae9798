"""Real prices shipped in PyPI packages (skfolio, arch): read as received, labelled portably, and clean.

The files are read once per module (a few seconds: importing arch and skfolio dominates).
"""

from __future__ import annotations

import datetime as dt
import math
import re

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.cleaning import ACTION_FLAGGED, REVERTED_SPIKE, ROW_RULES, CleaningResult, clean_bars
from quantlab_assets.compute.data.outlier_review import REAL_MOVE, VERDICT, review_capped_bars
from quantlab_assets.compute.data.packaged_sources import SOURCE, read_sp500_sample
from quantlab_assets.compute.data.raw import RAW_SCHEMA
from quantlab_assets.compute.schemas import RawBarsSchema, validate
from quantlab_assets.compute.universe import load_universe_catalog

INDICES = ("^GSPC", "^IXIC")
PORTABLE_LABEL = re.compile(r"^(skfolio|arch)==[0-9][0-9A-Za-z.+-]*:[A-Za-z0-9_/]+\.csv\.gz$")


@pytest.fixture(scope="module")
def sample() -> pl.DataFrame:
    return read_sp500_sample()


@pytest.fixture(scope="module")
def stocks(sample: pl.DataFrame) -> pl.DataFrame:
    return sample.filter(~pl.col(c.TICKER).is_in(INDICES))


@pytest.fixture(scope="module")
def indices(sample: pl.DataFrame) -> pl.DataFrame:
    return sample.filter(pl.col(c.TICKER).is_in(INDICES))


@pytest.fixture(scope="module")
def cleaned_sample(sample: pl.DataFrame) -> CleaningResult:
    spec = load_universe_catalog()["sp500_sample"]
    return clean_bars(
        sample, spec.instruments[c.TICKER], window=(dt.date(1990, 1, 1), dt.date(2022, 12, 31)),
        as_of=dt.date(2023, 1, 3), holidays=spec.holidays, close_is_adjusted=spec.close_is_adjusted,
    )


def test_sample_has_the_22_tickers_of_the_universe(sample: pl.DataFrame) -> None:
    spec = load_universe_catalog()["sp500_sample"]
    tickers = set(sample[c.TICKER].unique())
    assert len(tickers) == 22
    assert tickers == set(spec.instruments[c.TICKER])


def test_sample_conforms_to_the_raw_schema(sample: pl.DataFrame) -> None:
    assert sample.schema == pl.Schema(RAW_SCHEMA)
    validate(RawBarsSchema, sample, asset="raw_bars", partition=None)
    assert set(sample[c.SOURCE]) == {SOURCE}
    assert sample[c.PARSE_ERROR].null_count() == sample.height
    assert sample.select(c.DATE, c.TICKER).is_duplicated().sum() == 0


def test_stocks_are_close_only_from_1990_to_2022(stocks: pl.DataFrame) -> None:
    assert stocks[c.TICKER].n_unique() == 20
    spans = stocks.group_by(c.TICKER).agg(pl.col(c.DATE).min().alias("first"), pl.col(c.DATE).max().alias("last"))
    assert set(spans["first"]) == {dt.date(1990, 1, 2)}
    assert set(spans["last"]) == {dt.date(2022, 12, 28)}
    assert stocks.select(pl.col(c.OPEN, c.HIGH, c.LOW, c.VOLUME).null_count()).row(0) == (stocks.height,) * 4
    assert stocks[c.CLOSE].null_count() == 0
    assert stocks[c.ADJ_CLOSE].null_count() == stocks.height  # adjusted closes, declared by the universe


def test_stocks_match_skfolios_own_loader(stocks: pl.DataFrame) -> None:
    from skfolio.datasets import load_sp500_dataset

    wide = load_sp500_dataset()
    assert stocks.height == int(wide.notna().sum().sum())
    ours = stocks.pivot(on=c.TICKER, index=c.DATE, values=c.CLOSE).sort(c.DATE)
    assert ours[c.DATE].to_list() == [day.date() for day in wide.index]
    for ticker in wide.columns:
        np.testing.assert_array_equal(ours[ticker].to_numpy(), wide[ticker].to_numpy())


def test_indices_have_ohlcv_from_1999_to_2018(indices: pl.DataFrame) -> None:
    for ticker in INDICES:
        rows = indices.filter(pl.col(c.TICKER) == ticker)
        assert rows[c.DATE].min() == dt.date(1999, 1, 4)
        assert rows[c.DATE].max() == dt.date(2018, 12, 31)
        assert rows.select(pl.col(*c.BAR_COLUMNS).null_count()).row(0) == (0,) * len(c.BAR_COLUMNS)
        assert (rows[c.VOLUME] >= 0).all()
        assert rows[c.SOURCE_ROW].to_list() == list(range(2, rows.height + 2))


def test_the_only_zero_volume_index_days_are_two_known_nasdaq_days(indices: pl.DataFrame) -> None:
    """A genuine vendor quirk, kept as received (volume 0 is valid for cleaning): ^IXIC reports no volume
    on 2015-05-12 and 2018-01-09, trading days with ordinary prices."""
    zero = indices.filter(pl.col(c.VOLUME) == 0).select(c.TICKER, c.DATE).rows()
    assert zero == [("^IXIC", dt.date(2015, 5, 12)), ("^IXIC", dt.date(2018, 1, 9))]


def test_gspc_matches_archs_own_loader(indices: pl.DataFrame) -> None:
    import arch.data.sp500

    frame = arch.data.sp500.load()
    ours = indices.filter(pl.col(c.TICKER) == "^GSPC")
    assert ours[c.DATE].to_list() == [day.date() for day in frame.index]
    for ours_name, theirs in ((c.OPEN, "Open"), (c.CLOSE, "Close"), (c.ADJ_CLOSE, "Adj Close"), (c.VOLUME, "Volume")):
        np.testing.assert_allclose(ours[ours_name].to_numpy(), frame[theirs].to_numpy(dtype=float), rtol=1e-12)


def test_source_file_labels_are_machine_independent(sample: pl.DataFrame) -> None:
    labels = sample[c.SOURCE_FILE].unique().sort().to_list()
    assert len(labels) == 3
    for label in labels:
        assert PORTABLE_LABEL.fullmatch(label), label
        assert "site-packages" not in label and not label.startswith("/") and "\\" not in label
    assert any(label.endswith("skfolio/datasets/data/sp500_dataset.csv.gz") for label in labels)
    assert any(label.endswith("arch/data/sp500/sp500.csv.gz") for label in labels)
    assert any(label.endswith("arch/data/nasdaq/nasdaq.csv.gz") for label in labels)


def test_each_row_is_traceable_to_one_file_line_and_column(sample: pl.DataFrame) -> None:
    assert sample.select(c.SOURCE_FILE, c.SOURCE_ROW, c.TICKER).is_duplicated().sum() == 0
    assert sample[c.SOURCE_ROW].min() == 2


def test_reading_is_deterministic(sample: pl.DataFrame) -> None:
    assert_frame_equal(read_sp500_sample(), sample, check_exact=True)


def test_cleaning_the_sample_rejects_nothing(cleaned_sample: CleaningResult, sample: pl.DataFrame) -> None:
    """Real data, no row-rule rejection: no weekend, duplicate, non-positive or inconsistent bar.

    Series rules do fire: each instrument's first 251 days are dropped (insufficient history, 22 x 251
    rows) and 31 returns are flagged as outliers (kept; see the next tests). No bar is a reverted spike.
    """
    counts = cleaned_sample.rule_counts
    assert {rule: counts[rule] for rule in ROW_RULES} == {rule: 0 for rule in ROW_RULES}
    assert cleaned_sample.rejected_share == 0.0 and counts[REVERTED_SPIKE] == 0
    assert counts["insufficient_history"] == 22 * 251
    assert counts["high_missing_share"] == 0
    assert cleaned_sample.raw_rows == sample.height
    received = cleaned_sample.cleaned.filter(~pl.col(c.IS_FILLED))
    assert received.height + counts["insufficient_history"] == sample.height
    # The indices end on 2018-12-31 while the stocks go on: each index is forward-filled for the
    # 5-day limit (as a live system would, not knowing yet that the series stopped), then stops.
    filled = cleaned_sample.cleaned.filter(pl.col(c.IS_FILLED))
    assert filled.height == cleaned_sample.filled_rows == 10
    assert set(filled[c.TICKER]) == set(INDICES)
    assert filled[c.DATE].unique().sort().to_list() == [dt.date(2019, 1, d) for d in (2, 3, 4, 7, 8)]


def test_genuine_market_moves_are_flagged_and_kept_as_they_happened(cleaned_sample: CleaningResult) -> None:
    """A 10-sigma day is flagged for review, never rewritten: AAPL -52 % on 2000-09-29 stays -52 %.

    And a stale-priced instrument's moves are not flagged to death: skfolio's RRC trades in 1/8-dollar
    ticks around $2 in 1990-1993, most of its daily returns are exactly 0 and its robust sigma is 0.
    """
    flagged = cleaned_sample.cleaned.filter(pl.col(c.IS_OUTLIER))
    assert flagged.height == 31
    aapl = cleaned_sample.cleaned.filter(pl.col(c.TICKER) == "AAPL").sort(c.DATE)
    crash = aapl.with_columns((pl.col(c.CLOSE) / pl.col(c.CLOSE).shift(1)).log().alias("received")).filter(
        pl.col(c.DATE) == dt.date(2000, 9, 29)
    )
    assert crash[c.IS_OUTLIER].item() and crash[c.LOG_RETURN].item() == crash["received"].item()
    assert crash[c.LOG_RETURN].item() == pytest.approx(-0.7308, abs=1e-4)
    assert flagged.filter(pl.col(c.TICKER) == "RRC").height == 0


def test_every_bar_beyond_the_outlier_bound_is_a_real_move_kept(sample: pl.DataFrame) -> None:
    """The 31 bars a capping rule rewrote (docs/real_data.md lists them): none reverts, all are kept."""
    spec = load_universe_catalog()["sp500_sample"]
    review = review_capped_bars(
        sample, spec.instruments[c.TICKER], window=(dt.date(1990, 1, 1), dt.date(2022, 12, 31)),
        as_of=dt.date(2023, 1, 3), holidays=spec.holidays, close_is_adjusted=spec.close_is_adjusted,
    )
    assert review.height == 31
    assert set(review[VERDICT]) == {REAL_MOVE}
    assert (review[c.LOG_RETURN] == review["kept_log_return"]).all()
    famous = {(dt.date(2004, 9, 30), "MRK"): -0.3117, (dt.date(2000, 9, 29), "AAPL"): -0.7308, (dt.date(2011, 8, 8), "BAC"): -0.2271}
    for (day, ticker), expected in famous.items():
        row = review.filter((pl.col(c.DATE) == day) & (pl.col(c.TICKER) == ticker))
        assert row[VERDICT].to_list() == [REAL_MOVE], (day, ticker)
        assert row[c.LOG_RETURN].item() == pytest.approx(expected, abs=1e-4)


def test_cleaned_returns_compound_to_the_price_path(cleaned_sample: CleaningResult) -> None:
    frame = cleaned_sample.cleaned.filter(pl.col(c.TICKER) == "MSFT").sort(c.DATE)
    implied = frame.with_columns((pl.col(c.CLOSE) / pl.col(c.CLOSE).shift(1)).log().alias("implied")).drop_nulls("implied")
    np.testing.assert_allclose(implied[c.LOG_RETURN].to_numpy(), implied["implied"].to_numpy(), rtol=0, atol=0)
    assert not math.isnan(frame[c.LOG_RETURN].drop_nulls().sum())
    flagged_rows = cleaned_sample.quarantine.filter(pl.col(c.ACTION) == ACTION_FLAGGED)
    assert flagged_rows.height == cleaned_sample.cleaned[c.IS_OUTLIER].sum()
