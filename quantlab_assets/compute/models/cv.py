"""Purged cross-validation folds over a panel's trading dates, stored as data.

Two schemes (seed 004):

- `walk_forward`: expanding walk-forward, 5 splits. sklearn's `TimeSeriesSplit(gap=embargo)` on the
  axis of trading dates: each test window follows its training dates after an embargo of 63 trading
  dates (non-negotiable), and only earlier dates train.
- `cpcv`: combinatorial purged CV. skfolio's `CombinatorialPurgedCV` on the date axis: N contiguous
  groups of dates, every choice of k test groups (C(N, k) splits), the 63-date embargo after each test
  group (and ours before it, so every train/test pair is 63 dates apart), and the backtest paths those splits recombine into (each group is tested in C(N-1, k-1)
  splits; path p takes each group from the p-th split that tests it).
- `purged_kfold`: K contiguous groups of dates, each tested once, every other date training, with the
  same purge and the 63-date embargo on both sides of the test group (CPCV with one test group, which
  skfolio does not offer). Not stored: the stack cross-fits its calibration on it (stacking.py).

Why on the date axis: both libraries count observations by row position (`gap`, `purged_size` and
`embargo_size` are numbers of rows). The panel holds one row per (date, instrument) with a varying
number of instruments per date, so a row count is no fixed span of time and a cut by rows could split
one date between train and test. Splitting the array of distinct dates (one observation per date) makes
every count a count of trading dates; rows follow their date (`dates_with_role`).

Purging is by the labels' recorded end dates, not by a fixed size: a training date t is purged from a
split when a label at t ends on or after the start of a test window it precedes (its window t..label_end
overlaps the test window). The end date taken for t is the latest `label_end_{k}d` of any row at t,
so every row of a purged date goes, a superset of the rows whose own window overlaps (on a trading
calendar the two agree: the labels check makes every end exactly k trading dates after t).

A fold is a set of rows of a long frame: (scheme, horizon_days, fold_id, role, start, end, n_dates,
test_group, path_id), one row per contiguous run of dates with one role (train, test, embargoed,
purged); test rows of `cpcv` name their group and backtest path.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import numpy as np
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.labels.compute import label_end_column
from quantlab_assets.compute.labels.compute import relative_label_column as label_column

WALK_FORWARD: Final = "walk_forward"
CPCV: Final = "cpcv"
PURGED_KFOLD: Final = "purged_kfold"
SCHEME: Final = "scheme"
HORIZON_DAYS: Final = "horizon_days"
FOLD_ID: Final = "fold_id"
ROLE: Final = "role"
START: Final = "start"
END: Final = "end"
N_DATES: Final = "n_dates"
TEST_GROUP: Final = "test_group"
PATH_ID: Final = "path_id"

TRAIN: Final = "train"
TEST: Final = "test"
EMBARGOED: Final = "embargoed"
PURGED: Final = "purged"
ROLES: Final = (TRAIN, TEST, EMBARGOED, PURGED)
_UNUSED = -1  # a date that is in no role of a split (a walk-forward date after its test window)
_CODE = {role: code for code, role in enumerate(ROLES)}
# Test dates are coded _TEST_BASE + j (j-th test group of the split), so adjacent test groups stay
# separate segments and each keeps its group and path.
_TEST_BASE = 10

FOLD_SCHEMA: Final = {
    SCHEME: pl.String, HORIZON_DAYS: pl.Int64, FOLD_ID: pl.Int64, ROLE: pl.String, START: pl.Date,
    END: pl.Date, N_DATES: pl.Int64, TEST_GROUP: pl.Int64, PATH_ID: pl.Int64,
}


@dataclass(frozen=True)
class CvParams:
    """The folds' shape. Defaults from seed 004; CPCV's N and k are ours (see below)."""

    walk_forward_splits: int = 5
    # Seed 004: "63-day gap between train end and test start (NON-NEGOTIABLE)"; in trading dates.
    embargo_days: int = 63
    # 6 groups, 2 tested per split: 15 splits and 5 backtest paths, each group about 3.5 years of a
    # 20-year history, long enough that the embargo removes a small share of each training set.
    cpcv_groups: int = 6
    cpcv_test_groups: int = 2
    kfold_groups: int = 5
    horizons: tuple[int, ...] = (21, 63)
    schemes: tuple[str, ...] = (WALK_FORWARD, CPCV)


def label_calendar(labels: pl.DataFrame, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted dates with at least one complete `label_{k}d`, and the latest label end at each (datetime64[D])."""
    per_date = (
        labels.lazy()
        .filter(pl.col(label_column(horizon)).is_not_null())
        .group_by(c.DATE)
        .agg(pl.col(label_end_column(horizon)).max().alias(END))
        .sort(c.DATE)
        .collect()
    )
    return per_date[c.DATE].to_numpy().astype("datetime64[D]"), per_date[END].to_numpy().astype("datetime64[D]")


def _purge_and_embargo_before(roles: np.ndarray, dates: np.ndarray, label_ends: np.ndarray, embargo: int) -> np.ndarray:
    """Purge every training date whose label window reaches a later test window, and embargo the
    `embargo` dates before each test window (the libraries embargo only on one side: walk-forward
    before, CPCV after; a fold pair is then `embargo` dates apart on both sides)."""
    is_test = roles >= _TEST_BASE
    starts = np.flatnonzero(is_test & (np.concatenate([[_UNUSED], roles[:-1]]) != roles))
    positions = np.arange(len(roles))
    purged = np.zeros(roles.shape, dtype=bool)
    embargoed = np.zeros(roles.shape, dtype=bool)
    for start in starts:  # one pass per test window (at most k of them), vectorised over dates
        purged |= (dates < dates[start]) & (label_ends >= dates[start])
        embargoed |= (positions < start) & (positions >= start - embargo)
    is_train = roles == _CODE[TRAIN]
    roles = np.where(purged & is_train, _CODE[PURGED], roles)
    return np.where(embargoed & ~purged & is_train, _CODE[EMBARGOED], roles)


def _walk_forward_roles(n_dates: int, params: CvParams) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per split: the role code of every date, the tested group(s) and their path ids."""
    # Imported here: sklearn takes about 0.3 s to import, and every Dagster run process imports this module.
    from sklearn.model_selection import TimeSeriesSplit

    splitter = TimeSeriesSplit(n_splits=params.walk_forward_splits, gap=params.embargo_days)
    for fold_id, (train, test) in enumerate(splitter.split(np.arange(n_dates))):
        roles = np.full(n_dates, _UNUSED)
        roles[train] = _CODE[TRAIN]
        roles[train[-1] + 1 : test[0]] = _CODE[EMBARGOED]
        roles[test] = _TEST_BASE
        # The walk-forward's test windows are consecutive: together they form its one backtest path.
        yield roles, np.array([fold_id]), np.array([0])


def _cpcv_roles(n_dates: int, params: CvParams) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    # Imported here: skfolio (with cvxpy) takes about 0.8 s to import, and every module that reads the folds,
    # hence every Dagster run process, imports this one.
    from skfolio.model_selection import CombinatorialPurgedCV

    splitter = CombinatorialPurgedCV(
        n_folds=params.cpcv_groups, n_test_folds=params.cpcv_test_groups, embargo_size=params.embargo_days
    )
    path_ids = splitter.get_path_ids()
    for split, (train, tests) in enumerate(splitter.split(np.arange(n_dates))):
        roles = np.full(n_dates, _CODE[EMBARGOED])  # what is neither train nor test was embargoed
        roles[train] = _CODE[TRAIN]
        for j, test in enumerate(tests):
            roles[test] = _TEST_BASE + j
        yield roles, splitter.test_set_index[split], path_ids[split]


def _purged_kfold_roles(n_dates: int, params: CvParams) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Group j tested in split j; the embargo after it here, the purge and embargo before it by
    _purge_and_embargo_before (as for CPCV). The groups together are one backtest path."""
    for group, test in enumerate(np.array_split(np.arange(n_dates), params.kfold_groups)):
        roles = np.full(n_dates, _CODE[TRAIN])
        if test.size:
            roles[test] = _TEST_BASE
            roles[test[-1] + 1 : test[-1] + 1 + params.embargo_days] = _CODE[EMBARGOED]
        yield roles, np.array([group]), np.array([0])


def _segments(dates: np.ndarray, roles: np.ndarray, groups: np.ndarray, paths: np.ndarray) -> pl.DataFrame:
    """Contiguous runs of one role as (role, start, end, n_dates, test_group, path_id); unused dates dropped."""
    change = np.flatnonzero(np.diff(roles)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(roles)]]) - 1
    keep = roles[starts] != _UNUSED
    starts, ends, codes = starts[keep], ends[keep], roles[starts[keep]]
    is_test = codes >= _TEST_BASE
    position = np.where(is_test, codes - _TEST_BASE, 0)
    return pl.DataFrame(
        {
            ROLE: [TEST if code >= _TEST_BASE else ROLES[code] for code in codes],
            START: dates[starts],
            END: dates[ends],
            N_DATES: ends - starts + 1,
            TEST_GROUP: np.where(is_test, groups[position], -1),
            PATH_ID: np.where(is_test, paths[position], -1),
        },
        schema_overrides={START: pl.Date, END: pl.Date, N_DATES: pl.Int64, TEST_GROUP: pl.Int64, PATH_ID: pl.Int64},
    ).with_columns(pl.col(TEST_GROUP, PATH_ID).replace(-1, None))


_ROLES_OF = {WALK_FORWARD: _walk_forward_roles, CPCV: _cpcv_roles, PURGED_KFOLD: _purged_kfold_roles}


def make_folds(labels: pl.DataFrame, params: CvParams = CvParams()) -> pl.DataFrame:
    """Both schemes' folds for every horizon of `params`, as segments (see the module docstring)."""
    frames = []
    for horizon in params.horizons:
        dates, label_ends = label_calendar(labels, horizon)
        for scheme in params.schemes:
            roles_of = _ROLES_OF[scheme]
            for fold_id, (roles, groups, paths) in enumerate(roles_of(len(dates), params)):
                segments = _segments(dates, _purge_and_embargo_before(roles, dates, label_ends, params.embargo_days), groups, paths)
                frames.append(
                    segments.with_columns(
                        pl.lit(scheme).alias(SCHEME),
                        pl.lit(horizon, dtype=pl.Int64).alias(HORIZON_DAYS),
                        pl.lit(fold_id, dtype=pl.Int64).alias(FOLD_ID),
                    )
                )
    if not frames:
        return pl.DataFrame(schema=FOLD_SCHEMA)
    return pl.concat(frames).select(list(FOLD_SCHEMA))


def dates_with_role(folds: pl.DataFrame, frame: pl.DataFrame, role: str) -> pl.DataFrame:
    """The rows of `frame` whose date lies in a segment of `role` among `folds` (one scheme, horizon, fold)."""
    segments = folds.filter(pl.col(ROLE) == role)
    inside = pl.any_horizontal(
        [pl.col(c.DATE).is_between(start, end, closed="both") for start, end in segments.select(START, END).iter_rows()]
        or [pl.lit(False)]
    )
    return frame.filter(inside)


def fold_violations(folds: pl.DataFrame, labels: pl.DataFrame, embargo_days: int) -> list[str]:
    """Independent restatement of the folds' hygiene: one line per broken rule, [] if none.

    For every fold: train and test dates are disjoint; every train segment is at least `embargo_days`
    trading dates (of the horizon's label calendar) away from every test segment; no training row's
    label window [t, label_end] contains a test date.
    """
    problems: list[str] = []
    calendars = {horizon: label_calendar(labels, horizon)[0] for horizon in folds[HORIZON_DAYS].unique().to_list()}
    for (scheme, horizon, fold_id), fold in folds.group_by(SCHEME, HORIZON_DAYS, FOLD_ID):
        name = f"{scheme} {horizon}d fold {fold_id}"
        dates = calendars[horizon]

        def position(day: object, dates: np.ndarray = dates) -> int:
            return int(np.searchsorted(dates, np.datetime64(day, "D")))

        train = fold.filter(pl.col(ROLE) == TRAIN).select(START, END).rows()
        test = fold.filter(pl.col(ROLE) == TEST).select(START, END).rows()
        for t_start, t_end in train:
            for s_start, s_end in test:
                apart = max(position(s_start) - position(t_end), position(t_start) - position(s_end)) - 1
                if apart < embargo_days:
                    problems.append(f"{name}: train {t_start}..{t_end} is {apart} dates from test {s_start}..{s_end}")
        rows = dates_with_role(fold, labels.drop_nulls(label_column(horizon)), TRAIN)
        in_test = np.zeros(dates.shape, dtype=bool)
        for s_start, s_end in test:
            in_test |= (dates >= np.datetime64(s_start, "D")) & (dates <= np.datetime64(s_end, "D"))
        test_dates = dates[in_test]
        first = np.searchsorted(test_dates, rows[c.DATE].to_numpy().astype("datetime64[D]"), side="left")
        last = np.searchsorted(test_dates, rows[label_end_column(horizon)].to_numpy().astype("datetime64[D]"), side="right")
        if (overlapping := int((last > first).sum())):
            problems.append(f"{name}: {overlapping} training rows have a label window reaching a test date")
    return problems
