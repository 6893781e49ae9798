"""compute_features: every registered feature of a cleaned-bars panel, in one lazy polars query.

The query, in order (one `collect` at the end):

1. keep the bar columns features read; sort by (ticker, date) once, on an integer key;
2. helper columns (base.py): instrument number and row position, return index, gap, dollar volume,
   the benchmark's return of the row's date;
3. per-instrument features: `series` features (windows per instrument, windows.py; the drawdown
   kernels on whole columns), then `row` features combining them, then the rolling z-score variants;
4. keep the rows of each date's cross-section only: tradable members (compute/data/membership.py);
   per-instrument windows above read every bar, including the history before a listing;
5. drop what later steps do not read and sort by (date, ticker), the output order;
6. market features (aggregates over each date, and series over dates broadcast back to rows),
   cross-sectional features (`.over(date)`), then the winsorised industry z-score variants, all over
   those rows: an index, or a name not yet listed, never enters a rank, a z-score or the breadth;
7. select date, ticker and the output columns.

The output holds the cross-section's rows only (tradable members): every model, alpha and portfolio
built on features inherits the membership. The benchmark's own bars feed the benchmark return (step 2).

No look-ahead by construction: every per-instrument window is trailing, every cross-sectional or market
aggregate reads one date, and market series are trailing over dates. lookahead.py tests it.

Speed (500 instruments x 5,000 days, 2.3 M rows): the two integer-key sorts, per-instrument windows on
sorted slices, one numpy pass for all drawdown windows, and no window expression evaluated twice
(shared quantities are hidden features; polars does not share window expressions between columns).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.membership import IN_CROSS_SECTION, cross_section_expr
from quantlab_assets.compute.features import (  # noqa: F401 - importing a family registers its features
    cross_asset,
    microstructure,
    price,
    regime,
    technical,
)
from quantlab_assets.compute.features.base import (
    DATE_INDEX,
    FIRST_OF_DATE,
    TICKER_ID,
    date_key_exprs,
    date_order_key,
    index_exprs,
    instrument_key_exprs,
    instrument_order_key,
    price_exprs,
    ticker_id_expr,
)
from quantlab_assets.compute.features.benchmark import (
    BENCHMARK_RETURN,
    benchmark_return_expr,
    benchmark_returns,
    benchmark_source,
)
from quantlab_assets.compute.features.preprocessing import (
    INDUSTRY_Z_SUFFIX,
    ROLLING_Z_SUFFIX,
    ROLLING_Z_WINDOW,
    WINSOR_QUANTILES,
    Step,
    industry_group_expr,
    industry_z_steps,
    rolling_z_steps,
)
from quantlab_assets.compute.features.registry import REGISTRY, FeatureRegistry, FeatureSpec

# Bar columns the helper columns and features read (open and volume may be null: close-only sources).
INPUT_COLUMNS = (c.DATE, c.TICKER, c.OPEN, c.CLOSE, c.VOLUME, c.LOG_RETURN)

# Seed 004's Model 2 features (momentum 12-1, 1-month reversal, MA gaps 20/50/200, RSI, realised vol,
# drawdown statistics, volume ratios, turnover, Amihud): these get the winsorised industry z-score.
INDUSTRY_Z_FEATURES = (
    "mom_12_1", "reversal_1m", "ma_gap_20", "ma_gap_50", "ma_gap_200", "rsi_14", "vol_21d", "dd_252d",
    "days_since_high_252d", "volume_ratio_5d_63d", "volume_ratio_21d_63d", "turnover_21d", "amihud_21d",
)
# Short-window features (lookback <= 21 rows), normalised against the instrument's own past year: with
# the 252-row z-score window their lookback stays within 272 rows. Longer windows are normalised
# cross-sectionally only (`__wz`).
ROLLING_Z_FEATURES = ("ret_1d", "ret_5d", "ret_21d", "vol_21d", "amihud_21d", "log_dollar_volume_21d")
# The most history (trading days, t included) that anything computed per month partition may read:
# the partition lookback in months (defs/partitions.py) is derived from it, and the features' own
# lookback (FEATURE_LOOKBACK_DAYS) must stay within it.
MAX_LOOKBACK_DAYS = 273


@dataclass(frozen=True)
class FeatureParams:
    """What to compute. Feature windows are the seeds' and live with each feature (registry)."""

    # Raw features to output (None: every registered feature). Features they read are computed too.
    features: tuple[str, ...] | None = None
    # Features that also get `<name>__wz` (winsorised per date, then z-scored within industry and date).
    industry_z_features: tuple[str, ...] = INDUSTRY_Z_FEATURES
    winsor_quantiles: tuple[float, float] = WINSOR_QUANTILES
    # Features that also get `<name>__rz` (z-score over the instrument's last `rolling_z_window` rows).
    rolling_z_features: tuple[str, ...] = ROLLING_Z_FEATURES
    rolling_z_window: int = ROLLING_Z_WINDOW


@dataclass(frozen=True)
class FeaturePlan:
    """The specs to evaluate (outputs and their inputs) and the output columns, in order."""

    specs: tuple[FeatureSpec, ...]
    outputs: tuple[str, ...]
    industry_z: tuple[str, ...]
    rolling_z: tuple[str, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return (
            *self.outputs,
            *(name + INDUSTRY_Z_SUFFIX for name in self.industry_z),
            *(name + ROLLING_Z_SUFFIX for name in self.rolling_z),
        )

    def scoped(self, *scopes: str) -> list[FeatureSpec]:
        return [spec for spec in self.specs if spec.scope in scopes]


def plan_features(registry: FeatureRegistry = REGISTRY, params: FeatureParams = FeatureParams()) -> FeaturePlan:
    """Resolve `params` against `registry`; raises on unknown or ineligible variant names."""
    outputs = tuple(params.features) if params.features is not None else tuple(registry.output_names)
    hidden = [name for name in outputs if name in registry and registry[name].hidden]
    if hidden:
        raise ValueError(f"hidden intermediates {hidden} are not outputs")
    specs = tuple(registry.closure(outputs))
    for variant, names in (("industry z-score", params.industry_z_features), ("rolling z-score", params.rolling_z_features)):
        for name in names:
            if name not in registry:
                raise ValueError(f"{variant} variant of unknown feature {name!r}")
            if not registry[name].normalisable:
                raise ValueError(f"{name!r} is a market-wide or already normalised feature: no {variant} variant")
    for name in params.rolling_z_features:
        if registry[name].scope not in ("series", "row"):
            raise ValueError(f"rolling z-score needs a per-instrument feature, {name!r} is {registry[name].scope}")
    chosen = set(outputs)
    return FeaturePlan(
        specs=specs,
        outputs=tuple(name for name in registry.names if name in chosen),
        industry_z=tuple(name for name in params.industry_z_features if name in chosen),
        rolling_z=tuple(name for name in params.rolling_z_features if name in chosen),
    )


def feature_lookback_days(registry: FeatureRegistry = REGISTRY, params: FeatureParams = FeatureParams()) -> int:
    """Trading days of history (including t) the features at t read: the partition lookback."""
    plan = plan_features(registry, params)
    raw = max((spec.lookback for spec in plan.specs), default=1)
    rolling = max((registry[name].lookback + params.rolling_z_window - 1 for name in plan.rolling_z), default=1)
    return max(raw, rolling)


FEATURE_LOOKBACK_DAYS: int = feature_lookback_days()
if FEATURE_LOOKBACK_DAYS > MAX_LOOKBACK_DAYS:  # pragma: no cover - guards the registry's contents
    raise RuntimeError(f"registered features need {FEATURE_LOOKBACK_DAYS} days of history, more than {MAX_LOOKBACK_DAYS}")


@dataclass(frozen=True)
class FeatureDiagnostics:
    """Figures for the asset's metadata."""

    feature_count: int
    rows: int
    instruments: int
    compute_seconds: float
    benchmark_source: str
    # Dates of the panel without a benchmark return (cross-asset windows holding one are null).
    benchmark_missing_dates: int
    lookback_days: int
    null_share: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class FeatureResult:
    """frame: date, ticker and the feature columns, one row per bar of a tradable member, sorted by (date, ticker)."""

    frame: pl.DataFrame
    diagnostics: FeatureDiagnostics


def _levels(specs: Sequence[FeatureSpec]) -> list[list[FeatureSpec]]:
    """Group specs so each group reads only columns of earlier groups (or of earlier query steps)."""
    level: dict[str, int] = {}
    for spec in specs:  # registry order: inputs come first
        level[spec.name] = 1 + max((level[name] for name in spec.inputs if name in level), default=-1)
    depth = max(level.values(), default=-1) + 1
    return [[spec for spec in specs if level[spec.name] == index] for index in range(depth)]


def _columns_read(exprs: Sequence[pl.Expr]) -> set[str]:
    return {name for expr in exprs for name in expr.meta.root_names()}


def _built(spec: FeatureSpec, *inputs: pl.Expr) -> pl.Expr:
    """The spec's expression; output features are Float64 (hidden intermediates keep their type)."""
    expr = spec.build(*inputs)
    return expr if spec.hidden else expr.cast(pl.Float64)


def _apply(frame: pl.LazyFrame, steps: Sequence[Step]) -> pl.LazyFrame:
    for step in steps:
        frame = frame.with_columns(step.exprs)
        if step.drop:
            frame = frame.drop(step.drop)
    return frame


def feature_query(
    bars: pl.LazyFrame,
    plan: FeaturePlan,
    *,
    tickers: Sequence[str],
    benchmark: pl.Expr,
    industry_group: pl.Expr,
    params: FeatureParams = FeatureParams(),
) -> pl.LazyFrame:
    """The lazy query of the module docstring; collect it with engine="in-memory" (see compute_features).

    `bars` holds INPUT_COLUMNS and IN_CROSS_SECTION. `tickers`: every ticker of `bars`, sorted and unique.
    `benchmark` aggregates one date's rows to the benchmark's log return (benchmark.py); `industry_group` numbers the row's (date, industry)
    (preprocessing.industry_group_expr).
    """
    frame = bars.select(*INPUT_COLUMNS, IN_CROSS_SECTION).with_columns(ticker_id_expr(tickers))
    frame = frame.sort(instrument_order_key())
    frame = frame.with_columns(instrument_key_exprs())
    frame = frame.with_columns(price_exprs(benchmark.over(c.DATE)))
    frame = frame.with_columns(index_exprs())
    for group in _levels(plan.scoped("series", "row")):
        frame = frame.with_columns(_built(spec).alias(spec.name) for spec in group)
    frame = _apply(frame, rolling_z_steps(plan.rolling_z, params.rolling_z_window))

    # Per date from here on. Keep only what the rest of the query reads, so the sort moves less data.
    market = plan.scoped("market")
    market_series = plan.scoped("market_series")
    cross_section = plan.scoped("cross_section")
    read_later = _columns_read([spec.build() for spec in market + cross_section])
    read_later |= {name for spec in market + market_series + cross_section for name in spec.inputs}
    carried = [
        name
        for name in frame.collect_schema().names()
        if name in (c.DATE, c.TICKER, TICKER_ID) or name in plan.columns or name in read_later
    ]
    frame = frame.filter(pl.col(IN_CROSS_SECTION)).select(carried).sort(date_order_key())
    if TICKER_ID not in read_later:
        frame = frame.drop(TICKER_ID)

    frame = frame.with_columns(date_key_exprs())
    if market or market_series:
        frame = frame.with_columns(_built(spec).over(c.DATE).alias(spec.name) for spec in market)
        for group in _levels(market_series):
            frame = frame.with_columns(
                _built(spec, *(pl.col(name).filter(pl.col(FIRST_OF_DATE)) for name in spec.inputs))
                .gather(pl.col(DATE_INDEX))
                .alias(spec.name)
                for spec in group
            )
    for group in _levels(cross_section):
        frame = frame.with_columns(_built(spec).over(c.DATE).alias(spec.name) for spec in group)
    if plan.industry_z:
        frame = frame.with_columns(industry_group)
        frame = _apply(frame, industry_z_steps(plan.industry_z, params.winsor_quantiles))
    return frame.select(c.DATE, c.TICKER, *plan.columns)


def compute_features(
    bars: pl.DataFrame,
    universe: pl.DataFrame,
    *,
    benchmark: str | None = None,
    params: FeatureParams = FeatureParams(),
    registry: FeatureRegistry = REGISTRY,
) -> FeatureResult:
    """Features of cleaned bars (CLEANED_COLUMNS; at least date, ticker, open, close, volume, log_return).

    `universe` maps tickers to industries (ticker, industry) and says which are tradable; a bars column
    `is_member` says which rows are members (membership.py). `benchmark` is the universe's benchmark
    ticker, or None for the equal-weighted market proxy (benchmark.py). The frame has one row per input
    bar of a tradable member, sorted by (date, ticker): date, ticker, then the raw features in registry order, then the
    `__wz` and `__rz` variants. Rows before an instrument has a full window hold nulls.
    """
    started = time.perf_counter()
    missing = [name for name in INPUT_COLUMNS if name not in bars.columns]
    if missing:
        raise ValueError(f"compute_features needs bar columns {missing}")
    plan = plan_features(registry, params)
    source = benchmark_source(benchmark)
    query = feature_query(
        bars.lazy().with_columns(cross_section_expr(bars.columns, universe)),
        plan,
        tickers=bars.get_column(c.TICKER).drop_nulls().unique().sort().to_list(),
        benchmark=benchmark_return_expr(source),
        industry_group=industry_group_expr(universe),
        params=params,
    )
    # The in-memory engine (polars 2 defaults to streaming): the numpy kernels get whole columns in one
    # call, and per-date means are summed in one fixed order, so the output is bit-for-bit reproducible
    # (the streaming engine's benchmark means differ in the last bit, and so do cross-asset features).
    frame = query.collect(engine="in-memory")
    elapsed = time.perf_counter() - started
    columns = list(plan.columns)
    null_counts = frame.select(pl.col(columns).null_count()).row(0, named=True) if columns else {}
    rows = frame.height
    diagnostics = FeatureDiagnostics(
        feature_count=len(columns),
        rows=rows,
        instruments=frame[c.TICKER].n_unique(),
        compute_seconds=elapsed,
        benchmark_source=source,
        benchmark_missing_dates=benchmark_returns(bars, universe, benchmark)[BENCHMARK_RETURN].null_count(),
        lookback_days=feature_lookback_days(registry, params),
        null_share={name: (null_counts[name] / rows if rows else 0.0) for name in columns},
    )
    return FeatureResult(frame=frame, diagnostics=diagnostics)
