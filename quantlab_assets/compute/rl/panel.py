"""The observation panel of the RL environment: per-asset forecasts (and embeddings), eligibility, returns and
market regime, as arrays on one calendar, and the train / validation / test spans on it.

Every row t holds data of date t or earlier only: the forecast is the model stack's out-of-fold alpha at t
(its models never saw t's future), z-scored across the instruments of date t; the regime is regime_labels'
filtered label at t; embeddings are those of date t, and their PCA (optional) is fitted on the training
span's rows alone. Returns are the engine's (cleaned log returns, exp - 1), and enter the environment only
as the outcome of a step, never as an observation.

Embeddings are optional: a frame (date, ticker, emb_0 .. emb_{d-1}), e.g. the deep track's encoder output.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.backtest.engine import RETURN, wide_panel
from quantlab_assets.compute.regimes.labels import REGIME_ID, REGIME_NAMES

TRAIN, VALIDATION, TEST = "train", "validation", "test"
SPANS = (TRAIN, VALIDATION, TEST)
# The column that names a row's span.
SPAN = "span"
EMBEDDING_PREFIX = "emb_"
_PRESENT = "_present"


@dataclass(frozen=True)
class PanelParams:
    # The model stack's combined alpha (bp); more columns of the same frame may be added.
    forecast_columns: tuple[str, ...] = ("alpha_combined",)
    use_regime: bool = True
    # PCA components kept of the embeddings (fitted on the training span); None keeps them all.
    embedding_components: int | None = 8
    # Cross-sectional z-scores beyond this are clipped (a few outliers would otherwise dominate the inputs).
    z_clip: float = 5.0
    seed: int = 0


@dataclass(frozen=True)
class ObservationPanel:
    """T dates x N instruments. asset_features: (T, N, F) float32; market_features: (T, M) float32 (M = 0 for the
    regime-blind variant); returns: (T, N) simple returns of day t (0 where no bar); eligible: (T, N) bool, a
    forecast and a bar on date t."""

    dates: pl.Series
    tickers: list[str]
    returns: np.ndarray
    eligible: np.ndarray
    asset_features: np.ndarray
    market_features: np.ndarray
    asset_feature_names: list[str]
    market_feature_names: list[str]

    @property
    def n_assets(self) -> int:
        return len(self.tickers)


def common_dates(returns: pl.DataFrame, forecasts: pl.DataFrame, regimes: pl.DataFrame) -> pl.Series:
    """Trading dates (of `returns`) between the first and last date that has both a forecast and a regime label.

    The regime-aware and regime-blind variants share these dates, so they are compared on the same market.
    """
    first = max(forecasts[c.DATE].min(), regimes[c.DATE].min())
    last = min(forecasts[c.DATE].max(), regimes[c.DATE].max())
    dates = returns[c.DATE].unique().sort()
    return dates.filter(dates.is_between(first, last))


def split_spans(dates: pl.Series, validation_end: dt.date, validation_days: int) -> dict[str, tuple[int, int]]:
    """Inclusive bar ranges (first, last) of the spans: test after the universe's validation_end (the lab's test
    span), validation the last `validation_days` dates up to it, train everything before. Spans do not overlap,
    and an episode earns only returns of its own span's dates."""
    values = dates.to_numpy()
    test_start = int(np.searchsorted(values, np.datetime64(validation_end), side="right"))
    validation_start = test_start - validation_days
    spans = {TRAIN: (0, validation_start - 1), VALIDATION: (validation_start, test_start - 1), TEST: (test_start, len(values) - 1)}
    short = {name: last - first + 1 for name, (first, last) in spans.items() if last - first + 1 < 3}
    if short:
        raise ValueError(f"spans too short (dates): {short}; {len(values)} dates from {values[0]} to {values[-1]}, "
                         f"validation_end {validation_end}, validation_days {validation_days}")
    return spans


def span_dates(dates: pl.Series, spans: dict[str, tuple[int, int]]) -> dict[str, pl.Series]:
    return {name: dates.slice(first, last - first + 1) for name, (first, last) in spans.items()}


def forecast_tickers(forecasts: pl.DataFrame, dates: pl.Series, params: PanelParams = PanelParams()) -> list[str]:
    """The panel's instruments: those with a finite forecast on some date of the calendar (sorted)."""
    return sorted(_usable_forecasts(forecasts, dates, params)[c.TICKER].unique().to_list())


def _usable_forecasts(forecasts: pl.DataFrame, dates: pl.Series, params: PanelParams) -> pl.DataFrame:
    return forecasts.filter(pl.col(c.DATE).is_in(dates.implode())
                            & pl.all_horizontal(pl.col(col).is_finite() for col in params.forecast_columns))


def _zscores(forecasts: pl.DataFrame, columns: tuple[str, ...], z_clip: float) -> pl.DataFrame:
    """Per date, each forecast column z-scored across the instruments that have it (0 where undefined)."""
    return forecasts.select(
        c.DATE, c.TICKER,
        *[((pl.col(col) - pl.col(col).mean().over(c.DATE)) / pl.col(col).std().over(c.DATE))
          .fill_nan(None).fill_null(0.0).clip(-z_clip, z_clip).alias(col) for col in columns],
    )


def _embedding_features(embeddings: pl.DataFrame, dates: pl.Series, tickers: list[str], fit_end: dt.date,
                        params: PanelParams) -> tuple[np.ndarray, list[str]]:
    """(T, N, k) embeddings, PCA-reduced with the projection fitted on rows dated <= fit_end, standardised by
    the training rows' component std; 0 where an instrument has no embedding."""
    names = [col for col in embeddings.columns if col.startswith(EMBEDDING_PREFIX)]
    frame = embeddings.filter(pl.col(c.DATE).is_in(dates.implode()) & pl.col(c.TICKER).is_in(tickers))
    values = frame.select(names).to_numpy().astype(float)
    fit_rows = (frame[c.DATE] <= fit_end).to_numpy()
    if not fit_rows.any():
        raise ValueError(f"no embedding rows on or before {fit_end} to fit the projection on")
    if params.embedding_components is not None and params.embedding_components < len(names):
        # Imported here: sklearn takes about 0.3 s to import, and every Dagster run process imports this module.
        from sklearn.decomposition import PCA

        pca = PCA(n_components=params.embedding_components, random_state=params.seed).fit(values[fit_rows])
        values, names = pca.transform(values), [f"emb_pc{i}" for i in range(params.embedding_components)]
    scale = values[fit_rows].std(axis=0)
    values = values / np.where(scale > 0, scale, 1.0)
    reduced = frame.select(c.DATE, c.TICKER).with_columns(pl.Series(n, values[:, i]) for i, n in enumerate(names))
    return np.stack([wide_panel(reduced, dates, tickers, n) for n in names], axis=-1), names


def build_panel(
    returns: pl.DataFrame,
    forecasts: pl.DataFrame,
    regimes: pl.DataFrame,
    dates: pl.Series,
    fit_end: dt.date,
    params: PanelParams = PanelParams(),
    embeddings: pl.DataFrame | None = None,
) -> ObservationPanel:
    """returns: date, ticker, return (the engine's); forecasts: date, ticker and params.forecast_columns (e.g.
    stacked_alpha); regimes: date, regime_id (regime_labels); dates: the panel's calendar (common_dates);
    fit_end: the last date of the training span (fits of the panel's own transforms stop there);
    embeddings: optional date, ticker, emb_0 .. emb_{d-1}."""
    forecasts = _usable_forecasts(forecasts, dates, params)
    tickers = sorted(forecasts[c.TICKER].unique().to_list())
    returns = returns.filter(pl.col(c.DATE).is_in(dates.implode()) & pl.col(c.TICKER).is_in(tickers))
    scores = _zscores(forecasts, params.forecast_columns, params.z_clip)
    features = [wide_panel(scores, dates, tickers, col) for col in params.forecast_columns]
    names = list(params.forecast_columns)
    if embeddings is not None:
        embedded, embedding_names = _embedding_features(embeddings, dates, tickers, fit_end, params)
        features += list(np.moveaxis(embedded, -1, 0))
        names += embedding_names
    has_forecast = wide_panel(forecasts.select(c.DATE, c.TICKER, pl.lit(1.0).alias(_PRESENT)), dates, tickers, _PRESENT)
    has_bar = wide_panel(returns.filter(pl.col(RETURN).is_not_null()).with_columns(pl.lit(1.0).alias(_PRESENT)),
                         dates, tickers, _PRESENT)
    if params.use_regime:
        ids = dates.to_frame().join(regimes.select(c.DATE, REGIME_ID), on=c.DATE, how="left")[REGIME_ID]
        known = ids.is_not_null().to_numpy()
        market = np.where(known[:, None], np.eye(len(REGIME_NAMES))[ids.fill_null(0).to_numpy().astype(int)], 0.0)
        market_names = [f"regime_{name}" for name in REGIME_NAMES]
    else:
        market, market_names = np.zeros((dates.len(), 0)), []
    return ObservationPanel(
        dates=dates, tickers=tickers, returns=wide_panel(returns, dates, tickers, RETURN),
        eligible=(has_forecast > 0) & (has_bar > 0),
        asset_features=np.stack(features, axis=-1).astype(np.float32), market_features=market.astype(np.float32),
        asset_feature_names=names, market_feature_names=market_names,
    )


def lookahead_problems(
    returns: pl.DataFrame,
    forecasts: pl.DataFrame,
    regimes: pl.DataFrame,
    dates: pl.Series,
    fit_end: dt.date,
    params: PanelParams,
    cut_dates: list[dt.date],
    embeddings: pl.DataFrame | None = None,
) -> list[str]:
    """Rebuild the panel from inputs cut after each of `cut_dates` (>= fit_end) and compare every observation
    row up to the cut with the full panel's: a difference means an observation used a later date's data."""
    full = build_panel(returns, forecasts, regimes, dates, fit_end, params, embeddings)
    problems = []
    for cut in cut_dates:
        upto = pl.col(c.DATE) <= cut
        cut_panel = build_panel(returns.filter(upto), forecasts.filter(upto), regimes.filter(upto), dates.filter(dates <= cut),
                                fit_end, params, None if embeddings is None else embeddings.filter(upto))
        rows = cut_panel.dates.len()
        columns = [full.tickers.index(t) for t in cut_panel.tickers]
        same = (np.array_equal(full.asset_features[:rows][:, columns], cut_panel.asset_features)
                and np.array_equal(full.market_features[:rows], cut_panel.market_features)
                and np.array_equal(full.eligible[:rows][:, columns], cut_panel.eligible)
                and not full.eligible[:rows][:, [i for i in range(full.n_assets) if i not in columns]].any())
        if not same:
            problems.append(f"observations up to {cut} change when the data after {cut} is removed")
    return problems
