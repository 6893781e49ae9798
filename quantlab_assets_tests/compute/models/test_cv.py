"""Purged CV folds: a hand-checked tiny calendar, and the embargo / purge properties on a larger one."""

from __future__ import annotations

import datetime as dt
from math import comb

import numpy as np
import polars as pl
import pytest

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.models import cv
from quantlab_assets_tests.compute.builders import weekdays

TINY = cv.CvParams(walk_forward_splits=2, embargo_days=2, cpcv_groups=3, cpcv_test_groups=2, horizons=(3,))


def label_panel(n_dates: int, horizons: tuple[int, ...], tickers: tuple[str, ...] = ("A", "B")) -> pl.DataFrame:
    """Labels at every weekday ending k trading dates later (null for the last k dates), per horizon k."""
    days = weekdays(dt.date(2024, 1, 1), n_dates)
    columns: dict[str, list] = {c.DATE: [d for d in days for _ in tickers], c.TICKER: list(tickers) * n_dates}
    for k in horizons:
        ends = days[k:] + [None] * k
        columns[cv.label_column(k)] = [0.0 if e else None for e in ends for _ in tickers]
        columns[cv.label_end_column(k)] = [e for e in ends for _ in tickers]
    return pl.DataFrame(columns)


def date_roles(folds: pl.DataFrame, days: list[dt.date]) -> list[str]:
    """The role of each day in one fold, '.' where it has none."""
    roles = ["."] * len(days)
    for role, start, end in folds.select(cv.ROLE, cv.START, cv.END).iter_rows():
        for i, day in enumerate(days):
            if start <= day <= end:
                roles[i] = role[0]
    return roles


def test_tiny_walk_forward_matches_the_hand_worked_folds() -> None:
    # 30 weekdays, 3-day labels: 27 dates carry a label. TimeSeriesSplit(2, gap=2): test windows of
    # 27 // 3 = 9 dates at positions 9..17 and 18..26. Fold 0 trains on 0..6 less the embargo of the
    # 2 dates 7, 8; date 6's label ends at date 9 (the test start), so it is purged.
    labels = label_panel(30, (3,))
    folds = cv.make_folds(labels, TINY).filter(pl.col(cv.SCHEME) == cv.WALK_FORWARD)
    days = weekdays(dt.date(2024, 1, 1), 27)
    fold0 = "".join(date_roles(folds.filter(pl.col(cv.FOLD_ID) == 0), days))
    fold1 = "".join(date_roles(folds.filter(pl.col(cv.FOLD_ID) == 1), days))
    assert fold0 == "tttttt" + "p" + "ee" + "t" * 9 + "." * 9
    assert fold1 == "t" * 15 + "p" + "ee" + "t" * 9
    # Roles are data: train, purged, embargoed and test segments with their date counts.
    assert folds.filter(pl.col(cv.FOLD_ID) == 0).select(cv.ROLE, cv.N_DATES).rows() == [
        ("train", 6), ("purged", 1), ("embargoed", 2), ("test", 9)
    ]


def test_tiny_cpcv_has_every_combination_and_skfolio_paths() -> None:
    labels = label_panel(30, (3,))
    folds = cv.make_folds(labels, TINY).filter(pl.col(cv.SCHEME) == cv.CPCV)
    assert folds[cv.FOLD_ID].n_unique() == comb(3, 2)
    tests = folds.filter(pl.col(cv.ROLE) == cv.TEST).sort(cv.FOLD_ID, cv.START)
    assert tests.group_by(cv.FOLD_ID).agg(pl.col(cv.TEST_GROUP)).sort(cv.FOLD_ID)[cv.TEST_GROUP].to_list() == [
        [0, 1], [0, 2], [1, 2]
    ]
    # Paths: C(3,2) * 2 / 3 = 2; each path tests every group exactly once.
    per_path = tests.group_by(cv.PATH_ID).agg(pl.col(cv.TEST_GROUP).sort()).sort(cv.PATH_ID)
    assert per_path[cv.TEST_GROUP].to_list() == [[0, 1, 2], [0, 1, 2]]
    # Split 1 tests groups 0 (dates 0-8) and 2 (18-26): group 1 trains, less the embargo of 2 dates
    # after group 0 and the purged date 17 - 3 + 1 = 15..17 before group 2 (labels ending at 18 or later).
    days = weekdays(dt.date(2024, 1, 1), 27)
    split1 = "".join(date_roles(folds.filter(pl.col(cv.FOLD_ID) == 1), days))
    assert split1 == "t" * 9 + "ee" + "tttt" + "ppp" + "t" * 9


@pytest.fixture(scope="module")
def panel_folds() -> tuple[pl.DataFrame, pl.DataFrame]:
    labels = label_panel(700, (21, 63))
    return labels, cv.make_folds(labels, cv.CvParams())


def test_embargo_of_63_trading_dates_separates_every_train_and_test_segment(panel_folds) -> None:
    labels, folds = panel_folds
    calendar = np.array(labels[c.DATE].unique().sort().to_list(), dtype="datetime64[D]")
    position = {d: i for i, d in enumerate(calendar.astype(dt.date))}
    for (scheme, horizon, fold), fold_frame in folds.group_by(cv.SCHEME, cv.HORIZON_DAYS, cv.FOLD_ID):
        train = fold_frame.filter(pl.col(cv.ROLE) == cv.TRAIN)
        test = fold_frame.filter(pl.col(cv.ROLE) == cv.TEST)
        assert train.height and test.height
        for t_start, t_end in train.select(cv.START, cv.END).iter_rows():
            for s_start, s_end in test.select(cv.START, cv.END).iter_rows():
                gap_before = position[s_start] - position[t_end] - 1  # train before test
                gap_after = position[t_start] - position[s_end] - 1  # train after test
                assert gap_before >= 63 or gap_after >= 63, (scheme, horizon, fold, t_start, s_start)


def test_no_training_label_window_overlaps_a_test_date(panel_folds) -> None:
    labels, folds = panel_folds
    for (scheme, horizon, fold), fold_frame in folds.group_by(cv.SCHEME, cv.HORIZON_DAYS, cv.FOLD_ID):
        train = cv.dates_with_role(fold_frame, labels, cv.TRAIN).drop_nulls(cv.label_column(horizon))
        test = cv.dates_with_role(fold_frame, labels, cv.TEST)
        test_dates = test[c.DATE].unique().sort().to_numpy()
        starts = np.searchsorted(test_dates, train[c.DATE].to_numpy(), side="left")
        ends = np.searchsorted(test_dates, train[cv.label_end_column(horizon)].to_numpy(), side="right")
        assert (ends == starts).all(), (scheme, horizon, fold)  # no test date in [t, label_end]
        assert not set(train[c.DATE].to_list()) & set(test_dates.tolist())


def test_folds_cover_the_expected_counts(panel_folds) -> None:
    _, folds = panel_folds
    counts = folds.group_by(cv.SCHEME, cv.HORIZON_DAYS).agg(pl.col(cv.FOLD_ID).n_unique()).sort(cv.SCHEME, cv.HORIZON_DAYS)
    assert counts.rows() == [("cpcv", 21, 15), ("cpcv", 63, 15), ("walk_forward", 21, 5), ("walk_forward", 63, 5)]
    # Walk-forward test windows do not overlap and follow each other.
    wf = folds.filter((pl.col(cv.SCHEME) == cv.WALK_FORWARD) & (pl.col(cv.ROLE) == cv.TEST)).sort(cv.HORIZON_DAYS, cv.FOLD_ID)
    for _, tests in wf.group_by(cv.HORIZON_DAYS):
        assert (tests[cv.START][1:].to_numpy() > tests[cv.END][:-1].to_numpy()).all()


def test_fold_violations_accept_the_folds_and_name_a_shortened_embargo(panel_folds) -> None:
    labels, folds = panel_folds
    assert cv.fold_violations(folds, labels, 63) == []
    short = cv.make_folds(labels, cv.CvParams(embargo_days=5, horizons=(63,)))
    problems = cv.fold_violations(short, labels, 63)
    assert any("dates from test" in p for p in problems)
    # Without the purge, the 63-day labels just before a test window would reach into it.
    unpurged = short.with_columns(pl.when(pl.col(cv.ROLE) == cv.PURGED).then(pl.lit(cv.TRAIN)).otherwise(pl.col(cv.ROLE)).alias(cv.ROLE))
    assert any("label window reaching a test date" in p for p in cv.fold_violations(unpurged, labels, 5))
