"""The regime HMM: refit boundaries, no look-ahead under truncation, stable state numbering, stored parameters."""

import datetime as dt

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.regimes.hmm import (
    FittedHmm,
    HmmParams,
    canonical_order,
    filtered_regimes,
    initial_parameters,
    parameters_frame,
    refilter,
    refit_boundaries,
    volatility_bins,
)
from quantlab_assets_tests.compute.regimes.helpers import REGIME_MEANS, regime_switching_state

TRAIN_END = dt.date(2001, 12, 31)
PARAMS = HmmParams(n_states=3, refit_months=6, n_iter=30)


@pytest.fixture(scope="module")
def state() -> pl.DataFrame:
    return regime_switching_state(1500, seed=1)[0]  # 2000-01-03 .. 2005-09


@pytest.fixture(scope="module")
def full_run(state: pl.DataFrame):
    return filtered_regimes(state, TRAIN_END, PARAMS)


@pytest.mark.parametrize(
    ("train_end", "last", "months", "expected"),
    [
        pytest.param(dt.date(2004, 12, 31), dt.date(2007, 3, 1), 12, ["2005-01-01", "2006-01-01", "2007-01-01"], id="yearly"),
        pytest.param(dt.date(2004, 12, 31), dt.date(2007, 3, 1), 0, ["2005-01-01"], id="fit-once"),
        pytest.param(dt.date(2014, 6, 15), dt.date(2015, 7, 1), 6, ["2014-06-16", "2014-12-16", "2015-06-16"], id="mid-month"),
        pytest.param(dt.date(2014, 12, 31), dt.date(2014, 6, 1), 12, ["2015-01-01"], id="data-ends-before"),
    ],
)
def test_refit_boundaries(train_end: dt.date, last: dt.date, months: int, expected: list[str]) -> None:
    assert refit_boundaries(train_end, last, months) == [dt.date.fromisoformat(d) for d in expected]


def test_outputs_start_after_train_end_and_each_model_was_fitted_before_its_dates(full_run) -> None:
    probabilities = full_run.probabilities
    assert probabilities[c.DATE].min() > TRAIN_END
    assert (probabilities["fit_end"] < probabilities[c.DATE]).all()
    assert [refit.applies_from for refit in full_run.refits] == refit_boundaries(TRAIN_END, dt.date(2005, 9, 30), 6)[: len(full_run.refits)]
    for refit in full_run.refits:
        assert refit.fit_end < refit.applies_from
    np.testing.assert_allclose(probabilities.select(pl.sum_horizontal(pl.col("^p_state_.*$"))).to_series(), 1.0, atol=1e-12)


@pytest.mark.parametrize("cut", [dt.date(2002, 3, 14), dt.date(2003, 6, 30), dt.date(2004, 1, 2), dt.date(2005, 2, 7)])
def test_truncating_the_data_at_t_leaves_every_probability_up_to_t_unchanged(state, full_run, cut) -> None:
    truncated = filtered_regimes(state.filter(pl.col(c.DATE) <= cut), TRAIN_END, PARAMS)
    assert_frame_equal(truncated.probabilities, full_run.probabilities.filter(pl.col(c.DATE) <= cut))


def test_the_future_never_moves_the_past(state, full_run) -> None:
    """Rewriting every row after t (a crash that never happened) changes nothing up to t."""
    cut = dt.date(2003, 9, 15)
    crashed = state.with_columns(
        pl.when(pl.col(c.DATE) > cut).then(pl.col("market_vol_21d") * 5).otherwise(pl.col("market_vol_21d")).alias("market_vol_21d")
    )
    changed = filtered_regimes(crashed, TRAIN_END, PARAMS).probabilities
    assert_frame_equal(changed.filter(pl.col(c.DATE) <= cut), full_run.probabilities.filter(pl.col(c.DATE) <= cut))
    assert not changed.filter(pl.col(c.DATE) > cut).equals(full_run.probabilities.filter(pl.col(c.DATE) > cut))


def test_deterministic(state, full_run) -> None:
    assert_frame_equal(filtered_regimes(state, TRAIN_END, PARAMS).probabilities, full_run.probabilities)


def test_volatility_bins_start_em_by_hand() -> None:
    """Six rows, two states: bins split at the median volatility; start, transitions, means and covariances by hand."""
    volatility = np.array([-1.0, 2.0, -2.0, 1.0, 3.0, -3.0])
    np.testing.assert_array_equal(volatility_bins(volatility, 2), [0, 1, 0, 1, 1, 0])
    rows = np.column_stack([np.array([1.0, 4.0, 2.0, 6.0, 5.0, 3.0]), volatility])
    startprob, transmat, means, covars = initial_parameters(rows, vol_index=1, n_states=2, min_covar=0.5)
    np.testing.assert_allclose(startprob, [0.5, 0.5])
    # Consecutive pairs 0->1, 1->0, 0->1, 1->1, 1->0 (+1 each): from 0: [1, 3], from 1: [3, 2].
    np.testing.assert_allclose(transmat, [[0.25, 0.75], [0.6, 0.4]])
    np.testing.assert_allclose(means, [[2.0, -2.0], [5.0, 2.0]])
    np.testing.assert_allclose(covars[1], np.cov(rows[[1, 3, 4]], rowvar=False) + 0.5 * np.eye(2))


def test_a_rare_far_tail_gets_a_volatility_bin_of_its_own() -> None:
    """Equal-count thirds would put the 5 crash rows with 28 calm ones; k-means gives them their own bin."""
    volatility = np.concatenate([np.linspace(-1.0, 0.0, 50), np.linspace(0.5, 1.0, 45), np.full(5, 4.0)])
    bins = volatility_bins(volatility, 3)
    np.testing.assert_array_equal(np.bincount(bins), [50, 45, 5])
    assert (bins[-5:] == 2).all()


def test_the_fit_draws_no_random_number(state) -> None:
    """The start is the volatility bins, so a changed global random state cannot move the model."""
    np.random.seed(0)
    first = filtered_regimes(state, TRAIN_END, PARAMS).refits[0].model
    np.random.seed(1)
    np.random.uniform(size=1000)
    again = filtered_regimes(state, TRAIN_END, PARAMS).refits[0].model
    np.testing.assert_array_equal(first.means, again.means)
    np.testing.assert_array_equal(first.transmat, again.transmat)


def test_states_keep_their_meaning_across_refits(full_run) -> None:
    """The planted regimes are calm < nervous < crisis in volatility: every refit numbers them that way."""
    vol = [np.exp(refit.model.raw_means()[:, PARAMS.features.index("market_vol_21d")]) for refit in full_run.refits]
    for refit_vol in vol:
        np.testing.assert_allclose(refit_vol, REGIME_MEANS[:, 1], rtol=0.15)


def test_canonical_order_undoes_any_permutation(full_run) -> None:
    model = full_run.refits[-1].model
    for permutation in ([2, 0, 1], [1, 2, 0], [0, 2, 1]):
        shuffled = model.reordered(np.array(permutation))
        order = canonical_order(shuffled, model, vol_index=1)
        np.testing.assert_array_equal(shuffled.reordered(order).means, model.means)
    first = canonical_order(model.reordered(np.array([2, 0, 1])), None, vol_index=1)
    assert np.all(np.diff(model.reordered(np.array([2, 0, 1])).reordered(first).raw_means()[:, 1]) > 0)


def test_stored_parameters_rebuild_the_filter(state, full_run) -> None:
    frame = parameters_frame(full_run)
    assert frame.height == len(full_run.refits) * PARAMS.n_states
    refit = full_run.refits[1]
    again = refilter(state, frame, refit.index, refit.applies_to)
    stored = full_run.probabilities.filter(pl.col("refit") == refit.index).drop("refit", "fit_end", "state")
    joined = again.join(stored, on=c.DATE, suffix="_stored")
    assert joined.height == stored.height
    for k in range(PARAMS.n_states):
        np.testing.assert_allclose(joined[f"p_state_{k}"], joined[f"p_state_{k}_stored"], atol=1e-12)
    assert isinstance(full_run.refits[0].model, FittedHmm)


def test_too_short_a_fit_span_skips_the_boundary(state) -> None:
    result = filtered_regimes(state, dt.date(2000, 3, 31), HmmParams(n_states=3, refit_months=6, n_iter=10))
    assert result.skipped_boundaries[0] == dt.date(2000, 4, 1)
    assert result.probabilities[c.DATE].min() >= dt.date(2000, 10, 1)


@pytest.mark.parametrize(
    "kwargs",
    [{"n_states": 2}, {"n_states": 6}, {"features": ("market_return_21d", "breadth_ma_21d")}, {"refit_months": -1}],
)
def test_invalid_params(kwargs) -> None:
    with pytest.raises(ValueError):
        HmmParams(**kwargs)
