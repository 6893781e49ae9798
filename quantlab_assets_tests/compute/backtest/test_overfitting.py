"""PBO by CSCV on strategy sets whose answer is known, its split count, and the CPCV path-wise Sharpes on a
constructed case (cv.py's folds on a small calendar, returns chosen so every path and group is known)."""

import datetime as dt
import math
import statistics

import numpy as np
import polars as pl
import pytest

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.backtest.overfitting import (
    OverfittingParams,
    assess_overfitting,
    candidate_matrix,
    cpcv_test_segments,
    cscv_splits,
    probability_of_backtest_overfitting,
)
from quantlab_assets.compute.backtest.report import PBO_FIGURE_ID, overfitting_section
from quantlab_assets.compute.models import cv
from quantlab_assets_tests.compute.backtest.test_report import _Ids


@pytest.mark.parametrize("blocks", [2, 4, 8, 16])
def test_cscv_takes_every_half_of_the_blocks_once(blocks: int) -> None:
    splits = cscv_splits(blocks)
    assert splits.shape == (math.comb(blocks, blocks // 2), blocks)
    assert (splits.sum(axis=1) == blocks // 2).all()
    assert len({row.tobytes() for row in splits}) == splits.shape[0]
    # Symmetric: the complement of every in-sample set is itself a split's in-sample set.
    assert {row.tobytes() for row in ~splits} == {row.tobytes() for row in splits}
    with pytest.raises(ValueError, match="even"):
        cscv_splits(blocks + 1)


def test_pbo_by_hand_on_two_blocks() -> None:
    # Two candidates, two blocks of 4 days: A wins block 0 and loses block 1, B the reverse. Each split's
    # in-sample best is the worse one out of sample: rank 1 of 2, omega 1/3, logit ln(1/2), PBO 1.
    a = [0.02, 0.01, 0.02, 0.01, -0.01, -0.02, -0.01, -0.02]
    b = [-0.01, -0.02, -0.01, -0.02, 0.02, 0.01, 0.02, 0.01]
    result = probability_of_backtest_overfitting(np.array([a, b]).T, n_blocks=2)
    assert result.n_splits == 2 and result.pbo == 1.0 and result.oos_loss == 1.0
    np.testing.assert_allclose(result.logits, math.log(0.5))
    assert result.best.tolist() == [0, 1]


def _noise(seed: int, days: int = 400, candidates: int = 10) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 0.01, (days, candidates))


SEEDS = range(40)
BLOCKS = 8  # C(8, 4) = 70 splits a set


def test_pure_noise_candidates_overfit_half_the_time() -> None:
    # With no edge the in-sample best's out-of-sample rank is uniform over the 10 candidates (an even count,
    # so no rank sits on the median): PBO has expectation 0.5. One set's splits share their days and are
    # far from independent, so the tolerance is measured over independent sets: the mean PBO of 40 seeds
    # lies within 3 standard errors (sample SD across seeds / sqrt 40) of 0.5.
    values = [probability_of_backtest_overfitting(_noise(seed), BLOCKS).pbo for seed in SEEDS]
    standard_error = statistics.stdev(values) / math.sqrt(len(values))
    assert abs(statistics.mean(values) - 0.5) < 3 * standard_error
    assert 0 < standard_error < 0.05


def test_one_real_edge_among_noise_does_not_overfit() -> None:
    # Candidate 3 earns 0.2 % a day on 1 % volatility (a daily Sharpe of 0.2, about 3 a year): over 500
    # in-sample days (standard error of a Sharpe about 0.045) it is the in-sample best and ranks first out of
    # sample on nearly every split.
    values = []
    for seed in SEEDS:
        returns = _noise(seed, days=1000)
        returns[:, 3] += 0.002
        result = probability_of_backtest_overfitting(returns, BLOCKS)
        values.append(result.pbo)
        assert (result.best == 3).mean() > 0.9
    assert statistics.mean(values) < 0.05


def test_pbo_refuses_what_it_cannot_split() -> None:
    with pytest.raises(ValueError, match="two candidates"):
        probability_of_backtest_overfitting(_noise(0, candidates=1), 4)
    with pytest.raises(ValueError, match="blocks"):
        probability_of_backtest_overfitting(_noise(0, days=10), 8)


# --- CPCV paths on a constructed calendar -------------------------------------------------------------
DAYS = 60
HORIZON = 1
PARAMS = cv.CvParams(embargo_days=2, cpcv_groups=3, cpcv_test_groups=2, horizons=(HORIZON,), schemes=(cv.CPCV,))


def _calendar() -> list[dt.date]:
    return [dt.date(2020, 1, 1) + dt.timedelta(days=i) for i in range(DAYS)]


def _folds() -> pl.DataFrame:
    dates = _calendar()
    labels = pl.DataFrame({c.DATE: dates, c.TICKER: "A", "label_1d": 0.0,
                           "label_end_1d": [d + dt.timedelta(days=1) for d in dates]})
    return cv.make_folds(labels, PARAMS)


def _daily(returns: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame({c.DATE: _calendar(), "net_return": returns})


def test_cpcv_paths_and_groups_of_a_constructed_case() -> None:
    folds = _folds()
    segments = cpcv_test_segments(folds, HORIZON)
    # 3 groups, 2 tested per split: C(3, 2) = 3 splits; each group is tested twice, so 2 paths.
    assert segments[cv.FOLD_ID].n_unique() == 3 and sorted(segments[cv.PATH_ID].unique()) == [0, 1]
    groups = segments.select(cv.TEST_GROUP, cv.START, cv.END).unique().sort(cv.TEST_GROUP)
    group = np.searchsorted(np.array(_calendar(), dtype="datetime64[D]"), groups[cv.END].to_numpy().astype("datetime64[D]"),
                            side="right")
    in_group = np.digitize(np.arange(DAYS), group)  # 0, 1, 2 per date
    # "good" earns +1 % on even days and 0 on odd days in group 0, mirrored sign in group 2; "flat" is noise.
    sign = np.array([1.0, 0.5, -1.0])[in_group]
    good = np.where(np.arange(DAYS) % 2 == 0, 0.01, 0.0) * sign
    noise = np.random.default_rng(7).normal(0, 0.01, DAYS)
    assessment = assess_overfitting({"good": _daily(good), "noise": _daily(noise)}, folds,
                                    OverfittingParams(n_blocks=4, horizon_days=HORIZON))
    periods = 365.25 * (DAYS - 1) / (DAYS - 1)  # every calendar day: 365.25 a year

    def annual(x: np.ndarray) -> float:
        return statistics.mean(x.tolist()) / statistics.stdev(x.tolist()) * math.sqrt(periods)

    # A candidate's paths are the same series (its signal was fitted once): each covers every group.
    paths = assessment.candidate_paths.filter(pl.col("strategy") == "good")
    assert paths["days"].to_list() == [DAYS, DAYS]
    assert paths["sharpe"].to_list() == pytest.approx([annual(good)] * 2, rel=1e-9)
    by_group = assessment.candidate_groups.filter(pl.col("strategy") == "good").sort(cv.TEST_GROUP)
    assert by_group["sharpe"].to_list() == pytest.approx([annual(good[in_group == g]) for g in range(3)], rel=1e-9)
    # The selection: each split picks the better candidate on its training dates (the one group it does not
    # test, less the purged and embargoed dates) and trades it on its two test groups.
    for split, chosen in assessment.selection.items():
        train = folds.filter((pl.col(cv.FOLD_ID) == split) & (pl.col(cv.ROLE) == cv.TRAIN))
        mask = np.zeros(DAYS, dtype=bool)
        for start, end in train.select(cv.START, cv.END).iter_rows():
            mask |= np.array([start <= d <= end for d in _calendar()])
        expected = max(("good", "noise"), key=lambda n: annual({"good": good, "noise": noise}[n][mask]))
        assert chosen == expected
    assert len(assessment.selection) == 3 and assessment.selection_paths.height == 2
    # Path p of the selection: group g's returns are those of the candidate chosen by the split testing g on p.
    returns = {"good": good, "noise": noise}
    for path, days, sharpe in assessment.selection_paths.iter_rows():
        pieces = np.zeros(DAYS)
        for split, group_id, path_id, _, _ in segments.iter_rows():
            if path_id == path:
                pieces[in_group == group_id] = returns[assessment.selection[split]][in_group == group_id]
        assert days == DAYS and sharpe == pytest.approx(annual(pieces), rel=1e-9)


def test_no_folds_leave_pbo_and_say_why_there_are_no_paths() -> None:
    candidates = {name: _daily(_noise(i, DAYS, 1)[:, 0]) for i, name in enumerate("ab")}
    assessment = assess_overfitting(candidates, None, OverfittingParams(n_blocks=4, horizon_days=HORIZON))
    assert assessment.pbo is not None and assessment.pbo.n_splits == 6
    assert assessment.candidate_paths.is_empty() and "no CPCV fold" in assessment.notes[0]
    assert candidate_matrix(candidates).columns == [c.DATE, "a", "b"]


def test_the_report_section_states_n_the_pbo_and_the_paths() -> None:
    folds = _folds()
    candidates = {name: _daily(_noise(i, DAYS, 1)[:, 0]) for i, name in enumerate(("qp_optimal", "top_n_equal"))}
    assessment = assess_overfitting(candidates, folds, OverfittingParams(n_blocks=4, horizon_days=HORIZON))
    metrics = pl.DataFrame({"strategy": ["qp_optimal", "top_n_equal", "equal_weight"], "periods_per_year": 365.25,
                            "n_trials": 15, "trial_sharpe_variance": 0.04 / 365.25, "trials_strategy": 2, "trials_model": 6,
                            "trials_tuning": 1, "trials_deep": 2, "trials_rl": 1, "trials_design": 3, "candidate": [True, True, False],
                            "trial_note": ["", "", "passive baseline: a benchmark, not a choice of the search"]})
    parser = _Ids()
    html = overfitting_section(metrics, assessment, HORIZON)
    parser.feed(html)
    assert {"overfitting", "trials-counted", "pbo", "cpcv-paths", PBO_FIGURE_ID} <= set(parser.ids)
    assert not parser.scripts_with_src  # the figure uses the report's embedded plotly.js
    assert ("N = 15 trials: 2 candidate strategies, 6 base models x horizons, 1 hyper-parameter search trials, "
            "2 deep-learning out-of-fold models, 1 RL policies, 3 configurations tried while choosing the defaults, "
            "every") in html
    assert "standard deviation of 0.200" in html  # sqrt(0.04): the annualised SD of the trials' Sharpes
    assert f"PBO = <strong>{assessment.pbo.pbo:.3f}</strong>" in html and "of the 6 combinatorially" in html
    assert "Equal weight</td><td>passive baseline" in html
    path_sharpe = assessment.candidate_paths.filter(pl.col("strategy") == "qp_optimal")["sharpe"][0]
    assert f"<td>QP optimal</td><td>{path_sharpe:.2f}</td><td>{path_sharpe:.2f}</td>" in html
