"""The self-contained HTML backtest report of a strategy set (seed 003's six sections, Plotly + Jinja2).

One file: plotly.js is embedded once (first figure), every figure is a div with a stable id
(`FIGURE_IDS`), every section an element with a stable id (`SECTION_IDS`), so a test (or a reader's
browser search) can find each. Regime figures exist only when regime labels are given; the section
then says that they were not materialised.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jinja2
import numpy as np
import plotly.graph_objects as go
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.backtest.metrics import PERIODS_PER_YEAR, regime_breakdown

SECTION_IDS = ("executive-summary", "performance", "regime-analysis", "risk-analysis", "portfolio-analysis", "trade-analysis")
FIGURE_IDS = {
    "executive-summary": ("fig-equity",),
    "performance": ("fig-monthly-heatmap", "fig-rolling-sharpe"),
    "regime-analysis": ("fig-regime-equity", "fig-regime-timeline"),
    "risk-analysis": ("fig-drawdown", "fig-rolling-volatility", "fig-return-distribution"),
    "portfolio-analysis": ("fig-concentration", "fig-sector-exposure", "fig-turnover"),
    "trade-analysis": ("fig-trades-per-month", "fig-holding-period"),
}
ROLLING_SHARPE_DAYS = 252
ROLLING_VOL_DAYS = 63
TEMPLATE = "backtest_report.html.j2"
KEY_METRICS = ("cagr", "sharpe", "sharpe_ci_low", "sharpe_ci_high", "psr", "dsr", "max_drawdown", "turnover_annual")
PERCENT_METRICS = {"total_return", "cagr", "annual_volatility", "max_drawdown", "var_95", "cvar_95",
                   "hit_rate_days", "win_rate", "win_rate_ci_low", "win_rate_ci_high"}


@dataclass(frozen=True)
class StrategyRun:
    """One strategy's backtest: daily (engine columns), positions (date, ticker, weight), trades (round trips)."""

    name: str
    daily: pl.DataFrame
    positions: pl.DataFrame
    trades: pl.DataFrame


def _figure_html(figure: go.Figure, div_id: str, first: bool) -> str:
    figure.update_layout(template="plotly_white", height=380, margin={"l": 50, "r": 20, "t": 40, "b": 40})
    return figure.to_html(full_html=False, include_plotlyjs=first, div_id=div_id)


def _with_strategy_menu(figure: go.Figure, names: list[str], traces_per_strategy: int) -> go.Figure:
    """A dropdown that shows one strategy's traces at a time (the first initially)."""
    for i, trace in enumerate(figure.data):
        trace.visible = i < traces_per_strategy
    buttons = [
        {"label": name, "method": "update",
         "args": [{"visible": [j // traces_per_strategy == k for j in range(len(figure.data))]}]}
        for k, name in enumerate(names)
    ]
    figure.update_layout(updatemenus=[{"buttons": buttons, "x": 1.0, "y": 1.18, "xanchor": "right"}])
    return figure


def _monthly_returns(daily: pl.DataFrame) -> pl.DataFrame:
    return (
        daily.group_by(pl.col(c.DATE).dt.year().alias("year"), pl.col(c.DATE).dt.month().alias("month"))
        .agg(((1 + pl.col("net_return")).product() - 1).alias("return"))
        .sort("year", "month")
    )


def _drawdown(daily: pl.DataFrame) -> pl.Series:
    return daily["equity"] / daily["equity"].cum_max() - 1


def _rolling(daily: pl.DataFrame, days: int, sharpe: bool) -> pl.Series:
    r = daily["net_return"]
    std = r.rolling_std(days)
    if sharpe:
        return (r.rolling_mean(days) / std * math.sqrt(PERIODS_PER_YEAR)).fill_nan(None)
    return std * math.sqrt(PERIODS_PER_YEAR)


def _figures(runs: list[StrategyRun], benchmark: str | None, regimes: pl.DataFrame | None,
             sectors: dict[str, str] | None) -> dict[str, go.Figure]:
    names = [run.name for run in runs]
    figures: dict[str, go.Figure] = {}

    equity = go.Figure()
    for run in runs:
        style = {"dash": "dash", "color": "black"} if run.name == benchmark else {}
        equity.add_scatter(x=run.daily[c.DATE], y=run.daily["equity"], name=run.name, line=style)
    figures["fig-equity"] = equity.update_layout(title="Equity (net of costs)" + (f" vs {benchmark}" if benchmark else ""))

    heatmap = go.Figure()
    for run in runs:
        monthly = _monthly_returns(run.daily)
        grid = np.full((monthly["year"].n_unique(), 12), np.nan)
        years = monthly["year"].unique().sort().to_list()
        grid[[years.index(y) for y in monthly["year"]], (monthly["month"] - 1).to_list()] = monthly["return"].to_numpy() * 100
        heatmap.add_heatmap(z=grid, x=[f"{m:02d}" for m in range(1, 13)], y=years, colorscale="RdYlGn", zmid=0,
                            name=run.name, colorbar={"title": "%"})
    figures["fig-monthly-heatmap"] = _with_strategy_menu(heatmap, names, 1).update_layout(title="Monthly returns (%)")

    figures["fig-rolling-sharpe"] = _lines(runs, lambda run: _rolling(run.daily, ROLLING_SHARPE_DAYS, sharpe=True),
                                           "Rolling 12-month Sharpe")
    figures["fig-drawdown"] = _lines(runs, lambda run: _drawdown(run.daily) * 100, "Drawdown (%)")
    figures["fig-rolling-volatility"] = _lines(runs, lambda run: _rolling(run.daily, ROLLING_VOL_DAYS, sharpe=False) * 100,
                                               "Rolling 3-month volatility (annualised, %)")
    distribution = go.Figure()
    for run in runs:
        distribution.add_histogram(x=run.daily["net_return"] * 100, name=run.name, opacity=0.6, nbinsx=80)
    figures["fig-return-distribution"] = distribution.update_layout(barmode="overlay", title="Daily returns (%)")

    concentration = go.Figure()
    for run in runs:
        concentration.add_scatter(x=run.daily[c.DATE], y=run.daily["n_positions"], name=f"{run.name}: positions")
        concentration.add_scatter(x=run.daily[c.DATE], y=run.daily["max_weight"] * 100, name=f"{run.name}: largest weight %")
        concentration.add_scatter(x=run.daily[c.DATE], y=1 / run.daily["hhi"].replace(0, None), name=f"{run.name}: effective names (1/HHI)")
    figures["fig-concentration"] = _with_strategy_menu(concentration, names, 3).update_layout(title="Position concentration")

    exposure = go.Figure()
    sector_names = sorted(set(sectors.values())) if sectors else []
    for run in runs:
        by_sector = (
            run.positions.with_columns(pl.col(c.TICKER).replace_strict(sectors or {}, default="unknown").alias(c.SECTOR))
            .group_by(c.DATE, c.SECTOR).agg(pl.col("weight").sum())
            .pivot(on=c.SECTOR, index=c.DATE, values="weight").sort(c.DATE).fill_null(0.0)
        )
        for sector in sector_names or ["unknown"]:
            values = by_sector[sector] * 100 if sector in by_sector.columns else pl.Series([0.0] * by_sector.height)
            exposure.add_scatter(x=by_sector[c.DATE], y=values, name=f"{run.name}: {sector}", stackgroup=run.name)
    figures["fig-sector-exposure"] = _with_strategy_menu(exposure, names, max(1, len(sector_names))).update_layout(
        title="Sector exposure (%)" if sectors else "Sector exposure (%): no sectors known")
    figures["fig-turnover"] = _lines(runs, lambda run: run.daily["turnover"].rolling_sum(21) * 100,
                                     "Turnover, trailing 21 days (% of equity)")

    trades = go.Figure()
    for run in runs:
        monthly = run.trades.group_by(pl.col("entry_date").dt.truncate("1mo").alias("month")).len().sort("month")
        trades.add_bar(x=monthly["month"], y=monthly["len"], name=run.name)
    figures["fig-trades-per-month"] = trades.update_layout(title="Trades opened per month")
    holding = go.Figure()
    for run in runs:
        holding.add_histogram(x=run.trades["holding_days"], name=run.name, opacity=0.6, nbinsx=60)
    figures["fig-holding-period"] = holding.update_layout(barmode="overlay", title="Holding period (trading days)")

    if regimes is not None:
        figures.update(_regime_figures(runs, regimes))
    return figures


def _lines(runs: list[StrategyRun], values, title: str) -> go.Figure:
    figure = go.Figure()
    for run in runs:
        figure.add_scatter(x=run.daily[c.DATE], y=values(run), name=run.name)
    return figure.update_layout(title=title)


def _regime_spans(regimes: pl.DataFrame) -> pl.DataFrame:
    """Consecutive dates with one label: regime, start, end."""
    return (
        regimes.sort(c.DATE)
        .with_columns((pl.col("regime") != pl.col("regime").shift(1)).fill_null(True).cum_sum().alias("_span"))
        .group_by("_span", maintain_order=True)
        .agg(pl.col("regime").first(), pl.col(c.DATE).min().alias("start"), pl.col(c.DATE).max().alias("end"))
    )


def _regime_figures(runs: list[StrategyRun], regimes: pl.DataFrame) -> dict[str, go.Figure]:
    labels = regimes["regime"].unique().sort().to_list()
    palette = ["#2ca02c", "#98df8a", "#d62728", "#7f0000", "#ff7f0e", "#1f77b4", "#9467bd"]
    colour = {label: palette[i % len(palette)] for i, label in enumerate(labels)}
    spans = _regime_spans(regimes)
    overlay = go.Figure()
    for run in runs:
        overlay.add_scatter(x=run.daily[c.DATE], y=run.daily["equity"], name=run.name)
    for span in spans.iter_rows(named=True):
        overlay.add_vrect(x0=span["start"], x1=span["end"], fillcolor=colour[span["regime"]], opacity=0.15, line_width=0)
    for label in labels:  # legend entries for the bands
        overlay.add_scatter(x=[None], y=[None], mode="markers", marker={"color": colour[label], "size": 12}, name=label)
    timeline = go.Figure()
    for label in labels:
        mine = spans.filter(pl.col("regime") == label)
        timeline.add_bar(x=[(e - s).days + 1 for s, e in zip(mine["start"], mine["end"])], base=mine["start"].to_list(),
                         y=[label] * mine.height, orientation="h", name=label, marker_color=colour[label])
    timeline.update_xaxes(type="date")
    return {"fig-regime-equity": overlay.update_layout(title="Equity with regime bands"),
            "fig-regime-timeline": timeline.update_layout(title="Regime transitions", showlegend=False)}


def _format(name: str, value: object) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value * 100:.2f} %" if name in PERCENT_METRICS else f"{value:.3f}"
    return str(value)


def _table(frame: pl.DataFrame, first_column: str) -> dict[str, list]:
    """Rows of (label, formatted values...) for a template table: metrics as rows, strategies as columns."""
    columns = [col for col in frame.columns if col != first_column]
    return {
        "header": [first_column, *frame[first_column].to_list()],
        "rows": [[col, *(_format(col, v) for v in frame[col].to_list())] for col in columns],
    }


def render_report(
    runs: list[StrategyRun],
    metrics: pl.DataFrame,
    *,
    title: str,
    benchmark: str | None = None,
    regimes: pl.DataFrame | None = None,
    sectors: dict[str, str] | None = None,
    notes: list[str] | None = None,
) -> str:
    """The report as one HTML string. metrics: one row per strategy (column `strategy`), compute_metrics' keys."""
    figures = _figures(runs, benchmark, regimes, sectors)
    html, first = {}, True
    for section in SECTION_IDS:
        for div_id in FIGURE_IDS[section]:
            if div_id in figures:
                html[div_id] = _figure_html(figures[div_id], div_id, first)
                first = False
    regime_tables = None
    if regimes is not None:
        regime_tables = {run.name: regime_breakdown(run.daily, regimes).to_dicts() for run in runs}
    first_day, last_day = runs[0].daily[c.DATE].min(), runs[0].daily[c.DATE].max()
    environment = jinja2.Environment(loader=jinja2.PackageLoader("quantlab_assets.compute.backtest", "templates"),
                                     autoescape=jinja2.select_autoescape(["html", "j2"]))
    return environment.get_template(TEMPLATE).render(
        title=title,
        period=f"{first_day} .. {last_day}",
        strategies=[run.name for run in runs],
        benchmark=benchmark,
        key_metrics=_table(metrics.select("strategy", *[k for k in KEY_METRICS if k in metrics.columns]), "strategy"),
        all_metrics=_table(metrics, "strategy"),
        regime_tables=regime_tables,
        figures=html,
        figure_ids=FIGURE_IDS,
        sections=SECTION_IDS,
        notes=notes or [],
        trade_table=_table(metrics.select("strategy", *[k for k in ("trades", "closed_trades", "avg_holding_days", "win_rate",
                                                                   "win_rate_ci_low", "win_rate_ci_high", "profit_factor")
                                                      if k in metrics.columns]), "strategy"),
        risk_table=_table(metrics.select("strategy", *[k for k in ("var_95", "cvar_95", "annual_volatility", "max_drawdown")
                                                     if k in metrics.columns]), "strategy"),
    )
