"""Backtest overfitting across the candidate strategies: the probability of backtest overfitting by
combinatorially symmetric cross-validation, and path-wise backtests over the CPCV paths.

PBO (Bailey, Borwein, Lopez de Prado & Zhu 2017). The T x N matrix of the candidates' daily returns
(dates every candidate has) is cut into S contiguous blocks of (nearly) equal length. Each of the
C(S, S/2) ways to choose S/2 blocks is an in-sample set, its complement the out-of-sample set. Per split:
the candidate with the best in-sample Sharpe, its relative rank omega = rank / (N + 1) among the
out-of-sample Sharpes (1 the worst, average ranks on ties; an undefined Sharpe ranks lowest), and the
logit lambda = ln(omega / (1 - omega)). PBO is the share of splits with lambda <= 0: the in-sample
winner is at or below the out-of-sample median. Pure noise gives about 0.5; a real edge, about 0.

CPCV paths (cv.py's `cpcv` folds of the alpha's horizon, the `cv_folds` asset): N groups of dates, each
split tests k of them, and path p takes each group from the p-th split that tests it. A path-wise
backtest is the return series a strategy earns on a path's test segments, one Sharpe per path.

What is stored bounds what a path can mean here. The out-of-fold predictions that drive the strategies
come from the walk-forward folds, fitted once per fold, not once per CPCV split. So a candidate's return
on a date is the same whichever split tests it, and its paths, which each cover every group once, are
the same series: its path Sharpes coincide (they are computed and reported, not assumed). What varies
with the split is only what is fitted on the split's training dates; with stored data that is the choice
among the candidates. Two distributions follow:

- per candidate, its Sharpe on each CPCV test group (the pieces every path is made of: how the edge
  varies over the history);
- the selection's path-wise backtest: on each split, the candidate with the best Sharpe on the split's
  training dates (purged and embargoed as cv_folds marks them) is traded on its test groups; path p
  joins those out-of-sample pieces. One Sharpe per path: what choosing the best candidate earns.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.backtest.metrics import periods_per_year, sharpe_ratio
from quantlab_assets.compute.models import cv
from quantlab_assets.compute.params import described

NET_RETURN: Final = "net_return"
STRATEGY: Final = "strategy"
PBO: Final = "pbo"  # backtest_metrics' column of the universe's PBO


@dataclass(frozen=True)
class OverfittingParams:
    n_blocks: int = described(16, "CSCV blocks S (even): C(S, S/2) splits; 16 gives 12,870, as in Bailey et al.")
    horizon_days: int = described(21, "Horizon whose CPCV folds define the paths (the alpha's horizon).")


def cscv_splits(n_blocks: int) -> np.ndarray:
    """Every in-sample choice of n_blocks / 2 of n_blocks blocks: a (C(S, S/2), S) boolean mask, True in sample."""
    if n_blocks < 2 or n_blocks % 2:
        raise ValueError(f"CSCV needs an even number of blocks >= 2, not {n_blocks}")
    chosen = np.array(list(itertools.combinations(range(n_blocks), n_blocks // 2)))
    mask = np.zeros((len(chosen), n_blocks), dtype=bool)
    mask[np.arange(len(chosen))[:, None], chosen] = True
    return mask


@dataclass(frozen=True)
class PboResult:
    """pbo: share of splits whose in-sample best is at or below the out-of-sample median; logits: lambda per
    split; best: the in-sample best candidate's index per split; oos_loss: share of splits where it loses
    money out of sample (negative Sharpe)."""

    pbo: float
    logits: np.ndarray
    best: np.ndarray
    oos_loss: float
    n_blocks: int
    n_candidates: int
    n_days: int

    @property
    def n_splits(self) -> int:
        return int(self.logits.size)


def _split_sharpes(sum1: np.ndarray, sum2: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Per-period Sharpe (ddof 1) from sums of returns and squares; -inf where undefined (ranks lowest)."""
    mean = sum1 / count[:, None]
    variance = (sum2 - sum1 * mean) / (count[:, None] - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpe = mean / np.sqrt(variance)
    return np.where((variance > 0) & np.isfinite(sharpe), sharpe, -np.inf)


def probability_of_backtest_overfitting(returns: np.ndarray, n_blocks: int = 16) -> PboResult:
    """PBO of the candidates whose daily returns are the columns of `returns` (T x N), by CSCV (module docstring)."""
    n_days, n_candidates = returns.shape
    if n_candidates < 2:
        raise ValueError("PBO needs at least two candidates")
    if n_days < 2 * n_blocks:
        raise ValueError(f"PBO: {n_days} days cannot fill {n_blocks} blocks of at least 2 days")
    blocks = np.array_split(np.arange(n_days), n_blocks)
    sum1 = np.stack([returns[b].sum(axis=0) for b in blocks])
    sum2 = np.stack([(returns[b] ** 2).sum(axis=0) for b in blocks])
    count = np.array([b.size for b in blocks], dtype=float)
    in_sample = cscv_splits(n_blocks).astype(float)
    out_sample = 1.0 - in_sample
    sharpe_in = _split_sharpes(in_sample @ sum1, in_sample @ sum2, in_sample @ count)
    sharpe_out = _split_sharpes(out_sample @ sum1, out_sample @ sum2, out_sample @ count)
    best = np.argmax(sharpe_in, axis=1)
    # Imported here: scipy.stats loads scipy.optimize, interpolate and ndimage (0.4 s), and every Dagster run
    # process imports this module.
    from scipy import stats

    rank = stats.rankdata(sharpe_out, method="average", axis=1)[np.arange(best.size), best]
    omega = rank / (n_candidates + 1)
    logits = np.log(omega / (1 - omega))
    return PboResult(pbo=float(np.mean(logits <= 0)), logits=logits, best=best,
                     oos_loss=float(np.mean(sharpe_out[np.arange(best.size), best] < 0)),
                     n_blocks=n_blocks, n_candidates=n_candidates, n_days=n_days)


def candidate_matrix(candidates: Mapping[str, pl.DataFrame]) -> pl.DataFrame:
    """date and one column of net returns per candidate, on the dates every candidate has (sorted)."""
    frames = [daily.select(c.DATE, pl.col(NET_RETURN).alias(name)) for name, daily in sorted(candidates.items())]
    matrix = frames[0]
    for frame in frames[1:]:
        matrix = matrix.join(frame, on=c.DATE, how="inner")
    return matrix.sort(c.DATE)


def cpcv_test_segments(folds: pl.DataFrame, horizon: int) -> pl.DataFrame:
    """The CPCV test segments of one horizon: fold_id (the split), test_group, path_id, start, end."""
    return folds.filter((pl.col(cv.SCHEME) == cv.CPCV) & (pl.col(cv.HORIZON_DAYS) == horizon)
                        & (pl.col(cv.ROLE) == cv.TEST)).select(cv.FOLD_ID, cv.TEST_GROUP, cv.PATH_ID, cv.START, cv.END)


def _between(start: object, end: object) -> pl.Expr:
    return pl.col(c.DATE).is_between(start, end, closed="both")


def path_returns(matrix: pl.DataFrame, segments: pl.DataFrame, column_of_split: Mapping[int, str]) -> pl.DataFrame:
    """(path_id, test_group, fold_id, date, net_return): path p takes each group's test dates from the split
    that tests the group on p, with the returns of column `column_of_split[split]` of `matrix`."""
    pieces = [
        matrix.filter(_between(start, end)).select(
            pl.lit(path, dtype=pl.Int64).alias(cv.PATH_ID), pl.lit(group, dtype=pl.Int64).alias(cv.TEST_GROUP),
            pl.lit(split, dtype=pl.Int64).alias(cv.FOLD_ID), c.DATE, pl.col(column_of_split[split]).alias(NET_RETURN))
        for split, group, path, start, end in segments.iter_rows()
    ]
    return pl.concat(pieces).sort(cv.PATH_ID, c.DATE)


def _annualised(returns: np.ndarray, periods: float) -> float | None:
    sharpe = sharpe_ratio(returns)
    return None if sharpe is None else sharpe * math.sqrt(periods)


def path_sharpes(paths: pl.DataFrame, periods: float) -> pl.DataFrame:
    """path_id, days and annualised Sharpe of each path of `path_returns`."""
    rows = [{cv.PATH_ID: path, "days": frame.height, "sharpe": _annualised(frame[NET_RETURN].to_numpy(), periods)}
            for (path,), frame in paths.group_by(cv.PATH_ID, maintain_order=True)]
    return pl.DataFrame(rows, schema={cv.PATH_ID: pl.Int64, "days": pl.Int64, "sharpe": pl.Float64})


def selection_by_split(matrix: pl.DataFrame, folds: pl.DataFrame, horizon: int, periods: float) -> dict[int, str]:
    """Per CPCV split: the candidate (column of `matrix`) with the best Sharpe on the split's training dates;
    the first in column order on a tie. A split whose training dates hold no returns chooses nothing."""
    names = [col for col in matrix.columns if col != c.DATE]
    train = folds.filter((pl.col(cv.SCHEME) == cv.CPCV) & (pl.col(cv.HORIZON_DAYS) == horizon) & (pl.col(cv.ROLE) == cv.TRAIN))
    chosen = {}
    for (split,), segments in train.group_by(cv.FOLD_ID):
        inside = pl.any_horizontal([_between(s, e) for s, e in segments.select(cv.START, cv.END).iter_rows()])
        rows = matrix.filter(inside)
        scores = [_annualised(rows[name].to_numpy(), periods) for name in names]
        if any(score is not None for score in scores):
            chosen[int(split)] = names[int(np.argmax([-np.inf if s is None else s for s in scores]))]
    return chosen


@dataclass(frozen=True)
class OverfittingAssessment:
    """The candidates, the days they share, PBO (None with fewer than two candidates or too few days) and the
    CPCV paths: candidate_paths (strategy, path_id, days, sharpe), candidate_groups (strategy, test_group,
    start, end, days, sharpe), selection_paths (path_id, days, sharpe), selection (fold_id -> chosen
    candidate); the paths are empty without folds. notes: what could not be computed and why."""

    candidates: list[str]
    days: int
    pbo: PboResult | None
    candidate_paths: pl.DataFrame
    candidate_groups: pl.DataFrame
    selection_paths: pl.DataFrame
    selection: dict[int, str]
    notes: list[str]

    def summary(self) -> dict[str, object]:
        """JSON-ready figures for asset metadata."""
        def rounded(frame: pl.DataFrame) -> list[dict[str, object]]:
            return frame.with_columns(pl.selectors.float().round(4)).with_columns(pl.selectors.date().cast(pl.String)).to_dicts()
        pbo = self.pbo
        return {
            "candidates": self.candidates, "days": self.days, "notes": self.notes,
            "pbo": None if pbo is None else round(pbo.pbo, 4),
            "pbo_splits": None if pbo is None else pbo.n_splits, "pbo_blocks": None if pbo is None else pbo.n_blocks,
            "pbo_oos_loss_share": None if pbo is None else round(pbo.oos_loss, 4),
            "pbo_logit_quartiles": None if pbo is None else [round(float(q), 4) for q in np.quantile(pbo.logits, [0.25, 0.5, 0.75])],
            "candidate_path_sharpes": rounded(self.candidate_paths),
            "candidate_group_sharpes": rounded(self.candidate_groups),
            "selection_path_sharpes": rounded(self.selection_paths),
            "selection_by_split": {str(k): v for k, v in sorted(self.selection.items())},
        }


_CANDIDATE_PATHS = {STRATEGY: pl.String, cv.PATH_ID: pl.Int64, "days": pl.Int64, "sharpe": pl.Float64}
_GROUPS = {STRATEGY: pl.String, cv.TEST_GROUP: pl.Int64, cv.START: pl.Date, cv.END: pl.Date, "days": pl.Int64,
           "sharpe": pl.Float64}


def assess_overfitting(candidates: Mapping[str, pl.DataFrame], folds: pl.DataFrame | None,
                       params: OverfittingParams = OverfittingParams()) -> OverfittingAssessment:
    """PBO across the candidates' backtests (name -> date, net_return) and their CPCV paths (module docstring)."""
    notes: list[str] = []
    empty = OverfittingAssessment(sorted(candidates), 0, None, pl.DataFrame(schema=_CANDIDATE_PATHS),
                                  pl.DataFrame(schema=_GROUPS), pl.DataFrame(schema={cv.PATH_ID: pl.Int64, "days": pl.Int64,
                                                                                      "sharpe": pl.Float64}), {}, notes)
    if not candidates:
        notes.append("no candidate strategy: nothing to assess")
        return empty
    matrix = candidate_matrix(candidates)
    names = [col for col in matrix.columns if col != c.DATE]
    periods = periods_per_year(matrix[c.DATE])
    pbo = None
    if len(names) < 2:
        notes.append(f"PBO needs at least two candidates; there is {len(names)}")
    elif matrix.height < 2 * params.n_blocks:
        notes.append(f"PBO needs at least {2 * params.n_blocks} shared days; there are {matrix.height}")
    else:
        pbo = probability_of_backtest_overfitting(matrix.select(names).to_numpy(), params.n_blocks)
    segments = None if folds is None else cpcv_test_segments(folds, params.horizon_days).filter(
        (pl.col(cv.START) <= matrix[c.DATE].max()) & (pl.col(cv.END) >= matrix[c.DATE].min()))
    if segments is None or segments.height == 0:
        notes.append("no CPCV fold of the alpha's horizon covers the backtest span (cv_folds not stored?): no paths")
        return OverfittingAssessment(names, matrix.height, pbo, empty.candidate_paths, empty.candidate_groups,
                                     empty.selection_paths, {}, notes)
    splits = segments[cv.FOLD_ID].unique().sort().to_list()
    candidate_paths = pl.concat([
        path_sharpes(path_returns(matrix, segments, dict.fromkeys(splits, name)), periods).select(
            pl.lit(name).alias(STRATEGY), pl.all()) for name in names])
    groups = segments.select(cv.TEST_GROUP, cv.START, cv.END).unique().sort(cv.TEST_GROUP)
    group_rows = []
    for name in names:
        for group, start, end in groups.iter_rows():
            returns = matrix.filter(_between(start, end))[name].to_numpy()
            group_rows.append({STRATEGY: name, cv.TEST_GROUP: group, cv.START: start, cv.END: end, "days": returns.size,
                               "sharpe": _annualised(returns, periods)})
    selection = selection_by_split(matrix, folds, params.horizon_days, periods)
    unselected = sorted(set(splits) - set(selection))
    if unselected:
        notes.append(f"splits {unselected} have no candidate return on their training dates: their test groups are left "
                     "out of the selection's paths")
    chosen_segments = segments.filter(pl.col(cv.FOLD_ID).is_in(list(selection)))
    selection_paths = (path_sharpes(path_returns(matrix, chosen_segments, selection), periods) if chosen_segments.height
                       else empty.selection_paths)
    return OverfittingAssessment(names, matrix.height, pbo, candidate_paths, pl.DataFrame(group_rows, schema=_GROUPS),
                                 selection_paths, selection, notes)
