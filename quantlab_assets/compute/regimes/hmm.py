"""A Gaussian HMM of the market state (hmmlearn), refitted on an expanding window and applied as a filter.

Refits: the first model is fitted on every complete market-state row up to the universe's `train_end`
and applies from the day after; every `refit_months` months a new model is fitted on all rows before
its boundary. The model that applies to date t was therefore fitted on rows strictly before t's refit
boundary, and its filtered probability at t reads rows up to t only (forward_filter.py): hmmlearn's own
`predict`/`predict_proba` smooth over the whole sequence and are never used for outputs. Each model runs
its filter from the first complete row, so a model's probabilities never depend on another model.

Features are transformed (log of the volatility columns, which are positive and right-skewed) and
standardised with the mean and standard deviation of the model's own fit span.

Initialisation: EM starts from the fit span split into `n_states` bins of market volatility (1-D
k-means from equal-count bins, so a rare crash gets a bin of its own; each state's initial mean and
covariance are its bin's, its transition row the bin-to-bin frequencies of consecutive days), not from
hmmlearn's random k-means start. The fit draws no random number: the same rows give the same model.

Why: the labels (labels.py) read each state's mean volatility, and the random start decided whether
any state held the high-volatility tail at all. Measured on sp500_sample with hmmlearn's start
(the README's range 1991-2022, yearly refits from 2005): over random_state 0..9, autumn 2008 was Crisis
on >= 75 % of its days for 4 seeds, March 2020 for 6, both for 2; with random_state 0 on 1990-2022 the
2008 refit's most volatile state had a mean volatility z of 0.63, so no state was Crisis (autumn 2008:
0 of 76 days); with the default random_state 7, storing 1990 or not moved March 2020 from 46 to 33 of
48 days (one refit split the crash into a falling and a "+64 % a year" rebound state, and the rebound
at 60-90 % volatility became High-Vol Bull), and leaving out AAPL, XOM or GE, or moving the training
end by a year or half a year, gave 33-35 of 48. From volatility bins, March 2020 is Crisis on 42-44
of 48 days in 9 of those 10 variations and autumn 2008 on 76 of 76 in all (robustness.py; the figures
and the one failure are in docs/studies.md).

State numbering: hmmlearn numbers states arbitrarily per fit. The first model's states are ordered by
their mean market volatility (state 0 the calmest); every later model's states are matched to the
previous model's by their means (the assignment that minimises the summed squared distance in the new
model's standardised units, scipy's linear_sum_assignment), so state k means the same regime across
refits while the regime's statistics drift.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl
from threadpoolctl import threadpool_limits

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.params import described
from quantlab_assets.compute.regimes.forward_filter import forward_filter
from quantlab_assets.compute.regimes.market_state import (
    AVERAGE_CORRELATION_21D,
    BREADTH_MA_21D,
    MARKET_RETURN_21D,
    MARKET_VOL_21D,
    VOL_RATIO,
)

# The state statistics the labels read (labels.py) must be among the model's features.
RETURN_FEATURE = MARKET_RETURN_21D
VOL_FEATURE = MARKET_VOL_21D
DEFAULT_FEATURES = (MARKET_RETURN_21D, MARKET_VOL_21D, AVERAGE_CORRELATION_21D, BREADTH_MA_21D, VOL_RATIO)

REFIT = "refit"
FIT_START = "fit_start"
FIT_END = "fit_end"
APPLIES_FROM = "applies_from"
APPLIES_TO = "applies_to"
STATE = "state"
STATE_PROBABILITY_PREFIX = "p_state_"


def state_probability_column(state: int) -> str:
    return f"{STATE_PROBABILITY_PREFIX}{state}"


@dataclass(frozen=True)
class HmmParams:
    """The regime HMM: seed 003's GaussianHMM (full covariance, n_iter 100) on market-state features."""

    n_states: int = described(4, "Hidden states of the Gaussian HMM (seed 003: 3-5).")
    features: tuple[str, ...] = DEFAULT_FEATURES
    # Positive, right-skewed features modelled on a log scale.
    log_features: tuple[str, ...] = (MARKET_VOL_21D,)
    n_iter: int = described(100, "EM iterations of each fit.")
    refit_months: int = described(
        12, "Months between refits on the expanding window; 0 fits once, on the training span.")
    min_fit_rows: int = described(
        252, "Complete rows a fit span needs (a year); refit boundaries with fewer are skipped.")

    def __post_init__(self) -> None:
        if not 3 <= self.n_states <= 5:
            raise ValueError(f"n_states must be 3 to 5 (seed 003), got {self.n_states}")
        for name in (RETURN_FEATURE, VOL_FEATURE):
            if name not in self.features:
                raise ValueError(f"the labels read {name!r}: it must be one of the HMM features {self.features}")
        if not set(self.log_features) <= set(self.features):
            raise ValueError(f"log_features {self.log_features} must be HMM features")
        if self.refit_months < 0 or self.min_fit_rows < 2 * self.n_states:
            raise ValueError("refit_months must be >= 0 and min_fit_rows at least 2 per state")


@dataclass(frozen=True)
class FittedHmm:
    """One fitted model in its canonical state order; means and covariances in standardised units."""

    center: np.ndarray  # (F,) fit-span mean of the transformed features
    scale: np.ndarray  # (F,) fit-span standard deviation
    startprob: np.ndarray  # (K,)
    transmat: np.ndarray  # (K, K), rows: state at t - 1
    means: np.ndarray  # (K, F)
    covars: np.ndarray  # (K, F, F)
    log_likelihood: float
    converged: bool
    iterations: int

    def reordered(self, order: np.ndarray) -> FittedHmm:
        """The same model with canonical state k = this model's state order[k]."""
        return FittedHmm(
            self.center, self.scale, self.startprob[order], self.transmat[np.ix_(order, order)], self.means[order],
            self.covars[order], self.log_likelihood, self.converged, self.iterations,
        )

    def standardise(self, transformed: np.ndarray) -> np.ndarray:
        return (transformed - self.center) / self.scale

    def log_emission(self, transformed: np.ndarray) -> np.ndarray:
        """(T, K) log densities of the rows under each state's Gaussian."""
        # Imported here: scipy.stats loads scipy.optimize, interpolate and ndimage (0.4 s), and every Dagster
        # run process imports this module.
        from scipy.stats import multivariate_normal

        z = self.standardise(transformed)
        return np.column_stack(
            [multivariate_normal(mean, cov, allow_singular=False).logpdf(z).reshape(len(z)) for mean, cov in zip(self.means, self.covars, strict=True)]
        )

    def filter(self, transformed: np.ndarray) -> np.ndarray:
        """(T, K) filtered state probabilities of the rows, the filter started at the first row."""
        with np.errstate(divide="ignore"):  # a transition hmmlearn estimated as impossible has log 0 = -inf
            log_startprob, log_transmat = np.log(self.startprob), np.log(self.transmat)
        return forward_filter(self.log_emission(transformed), log_startprob, log_transmat).filtered

    def raw_means(self) -> np.ndarray:
        """(K, F) state means in transformed (not standardised) units."""
        return self.means * self.scale + self.center


def volatility_bins(volatility: np.ndarray, n_states: int) -> np.ndarray:
    """Bin (0 .. n_states - 1, 0 the calmest) of each row: 1-D k-means of the fit span's volatility.

    Lloyd's iterations start from equal-count bins and move each boundary to the midpoint of its two
    bins' means until no row changes bin, so a rare, far tail (a crash that fills 5 % of the span) gets
    a bin of its own instead of being averaged into the top third. Deterministic: no random start.
    """
    bins = np.searchsorted(np.quantile(volatility, np.arange(1, n_states) / n_states), volatility, side="right")
    previous = bins
    while True:
        counts = np.bincount(bins, minlength=n_states)
        if (counts == 0).any():  # ties can empty a bin; stay with the last split that filled every bin
            return previous
        centers = np.bincount(bins, weights=volatility, minlength=n_states) / counts
        previous, bins = bins, np.searchsorted((centers[:-1] + centers[1:]) / 2, volatility, side="right")
        if np.array_equal(bins, previous):
            return bins


def initial_parameters(
    standardised: np.ndarray, vol_index: int, n_states: int, min_covar: float
) -> tuple[np.ndarray, ...]:
    """(startprob, transmat, means, covars) of the volatility-bin start (module docstring), standardised units.

    min_covar is added to each covariance's diagonal, as hmmlearn's M-step does, so a bin of few or
    collinear rows still starts positive definite.
    """
    bins = volatility_bins(standardised[:, vol_index], n_states)
    ridge = min_covar * np.eye(standardised.shape[1])
    means = np.stack([standardised[bins == k].mean(axis=0) for k in range(n_states)])
    covars = np.stack([np.cov(standardised[bins == k], rowvar=False) + ridge for k in range(n_states)])
    # Bin-to-bin counts of consecutive rows, one added to each so that no transition starts impossible.
    counts = np.ones((n_states, n_states))
    np.add.at(counts, (bins[:-1], bins[1:]), 1.0)
    startprob = np.bincount(bins, minlength=n_states) / len(bins)
    return startprob, counts / counts.sum(axis=1, keepdims=True), means, covars


def fit_hmm(transformed: np.ndarray, params: HmmParams) -> FittedHmm:
    """Fit a GaussianHMM to fit-span rows (T, F), standardised by their own mean and std, from volatility bins."""
    # Imported here: hmmlearn (with sklearn) takes about 0.4 s to import, and every run process loads this module.
    from hmmlearn.hmm import GaussianHMM

    center = transformed.mean(axis=0)
    scale = transformed.std(axis=0, ddof=1)
    scale = np.where(scale > 0, scale, 1.0)
    standardised = (transformed - center) / scale
    # implementation="scaling" fits the same model as "log" (equal scores to 1e-12, measured) in half the time.
    # init_params="": EM starts from the parameters set below, so hmmlearn draws no random start.
    model = GaussianHMM(
        n_components=params.n_states, covariance_type="full", n_iter=params.n_iter, implementation="scaling",
        init_params="",
    )
    model.startprob_, model.transmat_, model.means_, model.covars_ = initial_parameters(
        standardised, params.features.index(VOL_FEATURE), params.n_states, model.min_covar
    )
    # One BLAS thread: the matrices are K x F, and threads only contend (measured 4x slower on 2 cores).
    with threadpool_limits(limits=1):
        model.fit(standardised)
    return FittedHmm(
        center=center, scale=scale, startprob=model.startprob_, transmat=model.transmat_, means=model.means_,
        covars=model.covars_, log_likelihood=float(model.monitor_.history[-1]) if model.monitor_.history else float("nan"),
        converged=bool(model.monitor_.converged), iterations=int(model.monitor_.iter),
    )


def canonical_order(model: FittedHmm, previous: FittedHmm | None, vol_index: int) -> np.ndarray:
    """order[k] = the model's state that becomes canonical state k (see the module docstring)."""
    if previous is None:
        return np.argsort(model.raw_means()[:, vol_index], kind="stable")
    from scipy.optimize import linear_sum_assignment  # imported here: see log_emission

    distance = (((previous.raw_means()[:, None, :] - model.raw_means()[None, :, :]) / model.scale) ** 2).sum(axis=-1)
    _, order = linear_sum_assignment(distance)
    return order


def refit_boundaries(train_end: dt.date, last_date: dt.date, refit_months: int) -> list[dt.date]:
    """First day of each model's span: train_end + 1 day, then every `refit_months` months up to last_date."""
    first = train_end + dt.timedelta(days=1)
    if refit_months == 0 or last_date < first:
        return [first]
    count = (last_date.year - first.year) * 12 + last_date.month - first.month
    offsets = pl.Series([f"{months}mo" for months in range(0, count + 1, refit_months)])
    boundaries = pl.select(pl.lit(first).dt.offset_by(offsets)).to_series()
    return [day for day in boundaries.to_list() if day <= last_date]


def transformed_features(state: pl.DataFrame, params: HmmParams) -> pl.DataFrame:
    """(date, features...) of the rows where every feature is defined; log features must be > 0."""
    exprs = [
        pl.when(pl.col(name) > 0).then(pl.col(name).log()) if name in params.log_features else pl.col(name)
        for name in params.features
    ]
    frame = state.select(c.DATE, *(expr.alias(name) for expr, name in zip(exprs, params.features, strict=True)))
    return frame.drop_nulls().filter(pl.all_horizontal(pl.col(params.features).is_finite())).sort(c.DATE)


@dataclass(frozen=True)
class Refit:
    """One model and the dates it applies to: its fit span is every complete row dated < applies_from."""

    index: int
    model: FittedHmm
    fit_start: dt.date
    fit_end: dt.date
    fit_rows: int
    applies_from: dt.date
    applies_to: dt.date


@dataclass(frozen=True)
class HmmResult:
    """probabilities: date, refit, fit_end, state, p_state_0..K-1 (dates > train_end only); refits in order."""

    probabilities: pl.DataFrame
    refits: tuple[Refit, ...]
    skipped_boundaries: tuple[dt.date, ...]
    params: HmmParams


def filtered_regimes(state: pl.DataFrame, train_end: dt.date, params: HmmParams = HmmParams()) -> HmmResult:
    """Fit the HMM on an expanding window and filter every date after `train_end` (see the module docstring)."""
    rows = transformed_features(state, params)
    dates = rows.get_column(c.DATE)
    values = rows.select(params.features).to_numpy()
    probability_columns = [state_probability_column(k) for k in range(params.n_states)]
    empty = pl.DataFrame(
        schema={c.DATE: pl.Date, REFIT: pl.Int64, FIT_END: pl.Date, STATE: pl.Int64}
        | {name: pl.Float64 for name in probability_columns}
    )
    if rows.height == 0:
        return HmmResult(empty, (), (), params)
    boundaries = refit_boundaries(train_end, dates[-1], params.refit_months)
    vol_index = params.features.index(VOL_FEATURE)
    segments, refits, skipped, previous = [empty], [], [], None
    for index, start in enumerate(boundaries):
        end = boundaries[index + 1] if index + 1 < len(boundaries) else dates[-1] + dt.timedelta(days=1)
        fit_rows = int(dates.search_sorted(start, side="left"))
        stop = int(dates.search_sorted(end, side="left"))
        if fit_rows < params.min_fit_rows:
            skipped.append(start)
            continue
        if stop == fit_rows:  # no date to apply this model to
            continue
        model = fit_hmm(values[:fit_rows], params)
        model = model.reordered(canonical_order(model, previous, vol_index))
        previous = model
        filtered = model.filter(values[:stop])[fit_rows:stop]
        refits.append(Refit(len(refits), model, dates[0], dates[fit_rows - 1], fit_rows, start, dates[stop - 1]))
        segments.append(
            pl.DataFrame({name: filtered[:, k] for k, name in enumerate(probability_columns)})
            .with_columns(
                dates.slice(fit_rows, stop - fit_rows).alias(c.DATE),
                pl.lit(refits[-1].index, dtype=pl.Int64).alias(REFIT),
                pl.lit(refits[-1].fit_end, dtype=pl.Date).alias(FIT_END),
                pl.Series(STATE, filtered.argmax(axis=1), dtype=pl.Int64),
            )
            .select(empty.columns)
        )
    return HmmResult(pl.concat(segments), tuple(refits), tuple(skipped), params)


# Columns of the parameters frame: one row per (refit, state).
FIT_ROWS = "fit_rows"
CONVERGED = "converged"
ITERATIONS = "iterations"
FIT_LOG_LIKELIHOOD = "fit_log_likelihood"
FEATURES = "features"
LOG_FEATURES = "log_features"
CENTER = "center"
SCALE = "scale"
STARTPROB = "startprob"
TRANSITION = "transition"
MEAN = "mean"
COVARIANCE = "covariance"


def parameters_frame(result: HmmResult) -> pl.DataFrame:
    """Every refit's model, one row per (refit, state): spans, fit diagnostics and the parameters.

    center/scale: the fit span's standardisation of the (log-)features; mean and covariance (flattened
    row-major, F x F) in standardised units; transition: the state's row of the transition matrix.
    """
    params = result.params
    rows = [
        {
            REFIT: refit.index, STATE: k, FIT_START: refit.fit_start, FIT_END: refit.fit_end, FIT_ROWS: refit.fit_rows,
            APPLIES_FROM: refit.applies_from, APPLIES_TO: refit.applies_to, CONVERGED: refit.model.converged,
            ITERATIONS: refit.model.iterations, FIT_LOG_LIKELIHOOD: refit.model.log_likelihood,
            FEATURES: list(params.features), LOG_FEATURES: list(params.log_features),
            CENTER: refit.model.center.tolist(), SCALE: refit.model.scale.tolist(),
            STARTPROB: float(refit.model.startprob[k]), TRANSITION: refit.model.transmat[k].tolist(),
            MEAN: refit.model.means[k].tolist(), COVARIANCE: refit.model.covars[k].ravel().tolist(),
        }
        for refit in result.refits
        for k in range(params.n_states)
    ]
    return pl.DataFrame(rows, schema=PARAMETERS_SCHEMA)


PARAMETERS_SCHEMA = {
    REFIT: pl.Int64, STATE: pl.Int64, FIT_START: pl.Date, FIT_END: pl.Date, FIT_ROWS: pl.Int64,
    APPLIES_FROM: pl.Date, APPLIES_TO: pl.Date, CONVERGED: pl.Boolean, ITERATIONS: pl.Int64,
    FIT_LOG_LIKELIHOOD: pl.Float64, FEATURES: pl.List(pl.String), LOG_FEATURES: pl.List(pl.String),
    CENTER: pl.List(pl.Float64), SCALE: pl.List(pl.Float64), STARTPROB: pl.Float64,
    TRANSITION: pl.List(pl.Float64), MEAN: pl.List(pl.Float64), COVARIANCE: pl.List(pl.Float64),
}


def model_from_parameters(parameters: pl.DataFrame, refit: int) -> FittedHmm:
    """The FittedHmm of one refit, rebuilt from its rows of parameters_frame."""
    rows = parameters.filter(pl.col(REFIT) == refit).sort(STATE)
    if rows.height == 0:
        raise KeyError(f"no parameters for refit {refit}")
    n_features = len(rows[FEATURES][0])
    first = rows.row(0, named=True)
    return FittedHmm(
        center=np.asarray(first[CENTER]), scale=np.asarray(first[SCALE]),
        startprob=rows[STARTPROB].to_numpy(), transmat=np.asarray(rows[TRANSITION].to_list()),
        means=np.asarray(rows[MEAN].to_list()),
        covars=np.asarray(rows[COVARIANCE].to_list()).reshape(rows.height, n_features, n_features),
        log_likelihood=first[FIT_LOG_LIKELIHOOD], converged=first[CONVERGED], iterations=first[ITERATIONS],
    )


def refilter(state: pl.DataFrame, parameters: pl.DataFrame, refit: int, until: dt.date) -> pl.DataFrame:
    """Filtered probabilities of one persisted refit on the market state up to `until` (date, p_state_k).

    Runs the forward filter from the first complete row, exactly as filtered_regimes does, on rows dated
    <= until only: the look-ahead check compares it with the stored probabilities.
    """
    first = parameters.filter(pl.col(REFIT) == refit).row(0, named=True)
    params = HmmParams(
        n_states=parameters.filter(pl.col(REFIT) == refit).height, features=tuple(first[FEATURES]),
        log_features=tuple(first[LOG_FEATURES]),
    )
    rows = transformed_features(state.filter(pl.col(c.DATE) <= until), params)
    filtered = model_from_parameters(parameters, refit).filter(rows.select(params.features).to_numpy())
    return pl.DataFrame({state_probability_column(k): filtered[:, k] for k in range(params.n_states)}).with_columns(
        rows.get_column(c.DATE)
    ).select(c.DATE, pl.exclude(c.DATE))
