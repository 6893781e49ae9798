"""Regime labels: the threshold rules, fixed label ids, label probabilities, statistics from stored parameters."""

import datetime as dt

import numpy as np
import polars as pl
import pytest

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.regimes.hmm import HmmParams, filtered_regimes, parameters_frame
from quantlab_assets.compute.regimes.labels import (
    BEAR,
    CRISIS,
    HIGH_VOL_BULL,
    LABEL_THRESHOLDS,
    LOW_VOL_BULL,
    REGIME_NAMES,
    TRANSITION,
    label_dates,
    label_states,
    state_statistics,
)
from quantlab_assets_tests.compute.regimes.helpers import regime_switching_state

T = LABEL_THRESHOLDS


@pytest.mark.parametrize(
    ("annual_return", "vol_z", "expected"),
    [
        pytest.param(0.20, -0.5, LOW_VOL_BULL, id="rising-calm"),
        pytest.param(0.20, 0.5, HIGH_VOL_BULL, id="rising-nervous"),
        pytest.param(T.bull_min_annual_return, T.high_vol_min_vol_z, HIGH_VOL_BULL, id="bull-edges-inclusive"),
        pytest.param(-0.20, 0.5, BEAR, id="falling"),
        pytest.param(T.bear_max_annual_return, 0.0, BEAR, id="bear-edge-inclusive"),
        pytest.param(-0.40, T.crisis_min_vol_z, CRISIS, id="crash"),
        pytest.param(0.01, 1.5, CRISIS, id="extreme-vol-without-a-fall"),
        pytest.param(0.30, 1.5, CRISIS, id="extreme-vol-even-rising"),
        pytest.param(0.0, 0.2, TRANSITION, id="flat"),
        pytest.param(-0.04, 0.99, TRANSITION, id="just-inside-both-bands"),
    ],
)
def test_threshold_rules(annual_return: float, vol_z: float, expected: int) -> None:
    frame = pl.DataFrame({"refit": [0], "state": [0], "annual_return": [annual_return], "vol_z": [vol_z]})
    labelled = label_states(frame)
    assert labelled["regime_id"].to_list() == [expected]
    assert labelled["regime"].cast(pl.String).to_list() == [REGIME_NAMES[expected]]


def test_label_probabilities_add_states_sharing_a_label_and_ids_follow_statistics_not_numbering() -> None:
    probabilities = pl.DataFrame({
        c.DATE: [dt.date(2020, 1, 2), dt.date(2020, 1, 3), dt.date(2021, 1, 4)],
        "refit": [0, 0, 1], "state": [0, 2, 1],
        "p_state_0": [0.5, 0.1, 0.2], "p_state_1": [0.3, 0.2, 0.7], "p_state_2": [0.2, 0.7, 0.1],
    })
    # Refit 1 numbers the crisis state 1 instead of 2: its label follows the statistics.
    states = pl.DataFrame({
        "refit": [0, 0, 0, 1, 1, 1], "state": [0, 1, 2, 0, 1, 2], "regime_id": [0, 0, 3, 0, 3, 2],
    }).with_columns(pl.col("regime_id").cast(pl.Int8))
    labels = label_dates(probabilities, states)
    np.testing.assert_allclose(labels["p_low_vol_bull"], [0.8, 0.3, 0.2])
    np.testing.assert_allclose(labels["p_crisis"], [0.2, 0.7, 0.7])
    np.testing.assert_allclose(labels["p_bear"], [0.0, 0.0, 0.1])
    assert labels["regime"].cast(pl.String).to_list() == ["Low-Vol Bull", "Crisis", "Crisis"]


def test_missing_state_labels_raise() -> None:
    probabilities = pl.DataFrame({c.DATE: [dt.date(2020, 1, 2)], "refit": [5], "state": [0], "p_state_0": [1.0]})
    states = pl.DataFrame({"refit": [0], "state": [0], "regime_id": [0]}).with_columns(pl.col("regime_id").cast(pl.Int8))
    with pytest.raises(ValueError, match="no state labels"):
        label_dates(probabilities, states)


def test_state_statistics_read_the_stored_parameters_in_raw_units() -> None:
    state, _ = regime_switching_state(900, seed=4)
    result = filtered_regimes(state, dt.date(2002, 6, 30), HmmParams(n_states=3, refit_months=0, n_iter=30))
    statistics = state_statistics(parameters_frame(result)).sort("state")
    model = result.refits[0].model
    np.testing.assert_allclose(statistics["annual_return"], model.raw_means()[:, 0] * 12, rtol=1e-12)
    np.testing.assert_allclose(statistics["market_vol"], np.exp(model.raw_means()[:, 1]), rtol=1e-12)
    np.testing.assert_allclose(statistics["vol_z"], model.means[:, 1], rtol=1e-12)
    # The planted crisis regime (vol 0.45, return -8 % a month) is the one Crisis state.
    assert label_states(statistics)["regime"].cast(pl.String).to_list()[-1] == "Crisis"
