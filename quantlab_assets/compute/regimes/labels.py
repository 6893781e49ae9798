"""Interpretable regime labels (seed 003, Phase 6.3): Low-Vol Bull, High-Vol Bull, Bear, Crisis, Transition.

Each HMM state of each refit gets one label from two statistics of the state's emission mean:
its market return (the mean 21-day log return of the equal-weighted market, annualised) and its market
volatility in the fit span's standard units (the state's mean log volatility minus the fit span's mean,
over the fit span's standard deviation: 0 is the fit span's typical volatility). The first rule that
matches wins:

1. Crisis: volatility z >= crisis_min_vol_z, whatever the return
2. Bear: annual return <= bear_max_annual_return
3. Low-Vol Bull / High-Vol Bull: annual return >= bull_min_annual_return, split at high_vol_min_vol_z
4. Transition: everything else (returns near zero: no clear direction)

The seed's Crisis asks for "very negative returns" as well as very high volatility; here volatility
alone decides. The reason is measured: a state this volatile pools the crashes with their rebounds, so
its mean return is near zero in fit spans without a long crash (sp500_sample's models fitted on
1991-2004 .. 1991-2007, whose most volatile state holds 1998 and 2000-2002: -1 % to -8 % a year), and a
"very negative" rule would call autumn 2008 a Transition; a rebound at crisis volatility (April 2020) is
still a crisis for risk. That the most volatile state reaches the Crisis level at all depends on how EM
splits the market state: the HMM therefore starts from volatility bins (hmm.py), which keeps a state on
the high-volatility tail in every refit; robustness.py measures the known crises under input changes.

The thresholds are written once, in `LABEL_THRESHOLDS`. Label ids are fixed (the seed's numbering), so
they are stable across refits whatever numbering the HMM gives its states; states of different refits
that share statistics share labels. A date's label is the one with the highest filtered probability,
the probabilities of states sharing a label added up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.regimes.hmm import (
    CENTER,
    FEATURES,
    LOG_FEATURES,
    MEAN,
    REFIT,
    RETURN_FEATURE,
    SCALE,
    STATE,
    STATE_PROBABILITY_PREFIX,
    VOL_FEATURE,
)

TRADING_DAYS_PER_YEAR = 252
RETURN_WINDOW_DAYS = 21

LOW_VOL_BULL, HIGH_VOL_BULL, BEAR, CRISIS, TRANSITION = 0, 1, 2, 3, 4
REGIME_NAMES = ("Low-Vol Bull", "High-Vol Bull", "Bear", "Crisis", "Transition")
REGIME_DTYPE = pl.Enum(REGIME_NAMES)
REGIME_ID = "regime_id"
REGIME = "regime"
ANNUAL_RETURN = "annual_return"
VOL_Z = "vol_z"
MARKET_VOL = "market_vol"


def regime_probability_column(regime_id: int) -> str:
    """p_low_vol_bull, p_high_vol_bull, p_bear, p_crisis, p_transition."""
    return "p_" + REGIME_NAMES[regime_id].lower().replace("-", "_").replace(" ", "_")


REGIME_PROBABILITY_COLUMNS = tuple(regime_probability_column(k) for k in range(len(REGIME_NAMES)))


@dataclass(frozen=True)
class LabelThresholds:
    """Where the labels split (units in the module docstring)."""

    # A crisis: volatility a standard deviation above the fit span's typical level, and no rally.
    crisis_min_vol_z: float = 1.0
    bear_max_annual_return: float = -0.05
    bull_min_annual_return: float = 0.05
    high_vol_min_vol_z: float = 0.0


LABEL_THRESHOLDS = LabelThresholds()


def label_expr(thresholds: LabelThresholds = LABEL_THRESHOLDS) -> pl.Expr:
    """Regime id (Int8) from the columns annual_return and vol_z, by the rules of the module docstring."""
    annual_return, vol_z = pl.col(ANNUAL_RETURN), pl.col(VOL_Z)
    return (
        pl.when(vol_z >= thresholds.crisis_min_vol_z)
        .then(CRISIS)
        .when(annual_return <= thresholds.bear_max_annual_return)
        .then(BEAR)
        .when((annual_return >= thresholds.bull_min_annual_return) & (vol_z >= thresholds.high_vol_min_vol_z))
        .then(HIGH_VOL_BULL)
        .when(annual_return >= thresholds.bull_min_annual_return)
        .then(LOW_VOL_BULL)
        .otherwise(TRANSITION)
        .cast(pl.Int8)
    )


def label_states(statistics: pl.DataFrame, thresholds: LabelThresholds = LABEL_THRESHOLDS) -> pl.DataFrame:
    """statistics (refit, state, annual_return, vol_z, ...) with regime_id and regime added."""
    return statistics.with_columns(label_expr(thresholds).alias(REGIME_ID)).with_columns(
        pl.col(REGIME_ID).replace_strict(list(range(len(REGIME_NAMES))), list(REGIME_NAMES), return_dtype=REGIME_DTYPE)
        .alias(REGIME)
    )


def label_dates(probabilities: pl.DataFrame, state_labels: pl.DataFrame) -> pl.DataFrame:
    """Per date: the label probabilities (states sharing a label summed) and the most probable label.

    probabilities: date, refit, state, p_state_0..K-1 (hmm.filtered_regimes); state_labels: refit,
    state, regime_id for every (refit, state) of those refits. Ties go to the lower regime id.
    """
    state_columns = sorted(
        (name for name in probabilities.columns if name.startswith(STATE_PROBABILITY_PREFIX)),
        key=lambda name: int(name.removeprefix(STATE_PROBABILITY_PREFIX)),
    )
    n_states = len(state_columns)
    # (refit, state) -> label as a (refits, K) lookup, so each date's row maps its K probabilities at once.
    table = state_labels.select(REFIT, STATE, REGIME_ID).sort(REFIT, STATE)
    refit_ids = table.get_column(REFIT).unique().sort()
    label_of = table.get_column(REGIME_ID).to_numpy().reshape(refit_ids.len(), n_states)
    rows = probabilities.get_column(REFIT).to_numpy()
    position = np.searchsorted(refit_ids.to_numpy(), rows)
    if probabilities.height and (position >= refit_ids.len()).any() or not np.array_equal(refit_ids.to_numpy()[np.minimum(position, refit_ids.len() - 1)], rows):
        raise ValueError("label_dates: a refit of the probabilities has no state labels")
    labels = label_of[position]  # (T, K)
    p_state = probabilities.select(state_columns).to_numpy()  # (T, K)
    one_hot = labels[:, :, None] == np.arange(len(REGIME_NAMES))[None, None, :]  # (T, K, L)
    p_label = np.minimum((p_state[:, :, None] * one_hot).sum(axis=1), 1.0)  # (T, L); a sum may round to 1 + 1e-16
    regime_id = p_label.argmax(axis=1).astype(np.int8)
    return probabilities.select(c.DATE, REFIT, STATE).with_columns(
        pl.Series(REGIME_ID, regime_id, dtype=pl.Int8),
        pl.Series(REGIME, np.asarray(REGIME_NAMES)[regime_id], dtype=REGIME_DTYPE),
        *(pl.Series(name, p_label[:, k]) for k, name in enumerate(REGIME_PROBABILITY_COLUMNS)),
    )


def state_statistics(parameters: pl.DataFrame) -> pl.DataFrame:
    """(refit, state, annual_return, vol_z, market_vol) from hmm.parameters_frame rows.

    annual_return: the state's mean market_return_21d x 252/21; vol_z: its standardised mean (log)
    market volatility; market_vol: that mean back in volatility units (exp of the mean log vol if logged).
    """
    def element(column: str, feature: str) -> pl.Expr:
        return pl.col(column).list.get(pl.col(FEATURES).list.eval(pl.element() == feature).list.arg_max())

    raw_return = element(MEAN, RETURN_FEATURE) * element(SCALE, RETURN_FEATURE) + element(CENTER, RETURN_FEATURE)
    vol_z = element(MEAN, VOL_FEATURE)
    raw_vol = vol_z * element(SCALE, VOL_FEATURE) + element(CENTER, VOL_FEATURE)
    logged = pl.col(LOG_FEATURES).list.contains(VOL_FEATURE)
    return parameters.select(
        REFIT, STATE,
        (raw_return * (TRADING_DAYS_PER_YEAR / RETURN_WINDOW_DAYS)).alias(ANNUAL_RETURN),
        vol_z.alias(VOL_Z),
        pl.when(logged).then(raw_vol.exp()).otherwise(raw_vol).alias(MARKET_VOL),
    )
