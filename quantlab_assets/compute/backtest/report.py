"""The self-contained HTML backtest report of a strategy set (seed 003's six sections, Plotly + Jinja2).

One file: plotly.js is embedded once (first figure), every figure is a div with a stable id
(`FIGURE_IDS`), every section an element with a stable id (`SECTION_IDS`), so a test (or a reader's
browser search) can find each. Regime figures exist only when regime labels are given; the section
then says that they were not materialised.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import jinja2
import numpy as np
import plotly.graph_objects as go
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.backtest.comparison import COMPARISON_COLUMNS, DIFFERENCE, best_candidate_verdict
from quantlab_assets.compute.backtest.engine import BacktestParams
from quantlab_assets.compute.backtest.metrics import expected_max_sharpe, periods_per_year, regime_breakdown
from quantlab_assets.compute.backtest.overfitting import OverfittingAssessment
from quantlab_assets.compute.backtest.trials import KIND_LABELS
from quantlab_assets.compute.portfolio.names import (
    AUDITED,
    BUY_AND_HOLD,
    EQUAL,
    LONG_SHORT,
    QP,
    RECKLESS,
    SNIPER,
    TOP_N,
    TOPK_DROPOUT,
)
from quantlab_assets.compute.regimes.labels import REGIME_NAMES

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
# Plotly's date axis counts milliseconds: a bar's width on it (its `x` when horizontal) is a duration in ms.
MILLISECONDS_PER_DAY = 86_400_000
# The holding-period axis ends at this quantile of the closed trades' holding periods: one position held
# for years would otherwise stretch the axis to thousands of days and squeeze every other trade into the
# first bin. The trades beyond are counted in the title.
HOLDING_AXIS_QUANTILE = 0.99
HOLDING_BINS = 60
# A win rate, its interval or a profit factor of fewer closed trades is shown as "n/a (k trades)": at 20
# trades a 50 % win rate's exact 95 % interval is already 27 % .. 73 %; below that the number says more
# about the few trades than about the strategy (one losing trade reads as a 0.00 % win rate).
MIN_TRADES_FOR_STATISTICS = 20
TRADE_STATISTICS = ("win_rate", "win_rate_ci_low", "win_rate_ci_high", "profit_factor")
# Regime colours say what the regime means: bull regimes green, Bear orange, Crisis red, Transition grey.
REGIME_COLOURS = dict(zip(REGIME_NAMES, ("#2ca02c", "#98df8a", "#ff7f0e", "#b2182b", "#9e9e9e"), strict=True))
OTHER_REGIME_COLOURS = ("#1f77b4", "#9467bd", "#8c564b", "#e377c2")  # labels of another regime model
# What a reader sees for each metric and strategy key (tables, legends, menus).
READABLE_LABELS = {
    "days": "Days", "years": "Years", "periods_per_year": "Trading days per year", "total_return": "Total return", "cagr": "CAGR",
    "annual_volatility": "Annual volatility", "sharpe": "Sharpe ratio", "sortino": "Sortino ratio",
    "max_drawdown": "Maximum drawdown", "calmar": "Calmar ratio", "turnover_daily": "Turnover, daily mean",
    "turnover_annual": "Turnover, annual", "hit_rate_days": "Share of positive days", "var_95": "VaR 95 %",
    "cvar_95": "CVaR 95 %", "sharpe_ci_low": "Sharpe, 95 % low", "sharpe_ci_high": "Sharpe, 95 % high",
    "sharpe_ci_undefined_share": "Sharpe, undefined bootstrap share", "psr": "PSR", "dsr": "DSR",
    "n_trials": "Trials counted (N of the DSR)", "min_track_record_days": "Minimum track record (days)",
    "min_track_record_years": "Minimum track record (years)", "trades": "Trades", "closed_trades": "Closed trades",
    "win_rate": "Win rate", "win_rate_ci_low": "Win rate, 95 % low", "win_rate_ci_high": "Win rate, 95 % high",
    "profit_factor": "Profit factor", "avg_holding_days": "Mean holding period (days)",
    QP: "QP optimal", TOP_N: "Top-n, equal weight", EQUAL: "Equal weight", BUY_AND_HOLD: "Buy and hold (benchmark)",
    SNIPER: "Sniper", AUDITED: "Audited", RECKLESS: "Reckless",
    LONG_SHORT: "Long-short, dollar and beta neutral", TOPK_DROPOUT: "Top-k with dropout",
    "sharpe_minus_equal_weight": "Sharpe minus equal weight's", "sharpe_minus_equal_weight_ci_low": "Difference, 95 % low",
    "sharpe_minus_equal_weight_ci_high": "Difference, 95 % high", "verdict_vs_equal_weight": "Against equal weight",
}
KEY_METRICS = ("cagr", "sharpe", "sharpe_ci_low", "sharpe_ci_high", "psr", "dsr", "max_drawdown", "turnover_annual")
PERCENT_METRICS = {"total_return", "cagr", "annual_volatility", "max_drawdown", "var_95", "cvar_95",
                   "hit_rate_days", "win_rate", "win_rate_ci_low", "win_rate_ci_high"}


def readable_label(name: str) -> str:
    """What a reader sees for a metric or strategy key: its label, or the key in words ('top_2' -> 'Top 2')."""
    return READABLE_LABELS.get(name) or name.replace("_", " ").capitalize()


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
        {"label": readable_label(name), "method": "update",
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
    annualise = math.sqrt(periods_per_year(daily["date"]))
    if sharpe:
        return (r.rolling_mean(days) / std * annualise).fill_nan(None)
    return std * annualise


def report_figures(runs: list[StrategyRun], benchmark: str | None, regimes: pl.DataFrame | None,
                   sectors: dict[str, str] | None) -> dict[str, go.Figure]:
    """Every figure of the report by its div id (FIGURE_IDS); the regime figures only when regimes are given."""
    names = [run.name for run in runs]
    figures: dict[str, go.Figure] = {}

    equity = go.Figure()
    for run in runs:
        style = {"dash": "dash", "color": "black"} if run.name == benchmark else {}
        equity.add_scatter(x=run.daily[c.DATE], y=run.daily["equity"], name=readable_label(run.name), line=style)
    figures["fig-equity"] = equity.update_layout(
        title="Equity (net of costs)" + (f" vs {readable_label(benchmark)}" if benchmark else ""))

    heatmap = go.Figure()
    for run in runs:
        monthly = _monthly_returns(run.daily)
        grid = np.full((monthly["year"].n_unique(), 12), np.nan)
        years = monthly["year"].unique().sort().to_list()
        grid[[years.index(y) for y in monthly["year"]], (monthly["month"] - 1).to_list()] = monthly["return"].to_numpy() * 100
        heatmap.add_heatmap(z=grid, x=[f"{m:02d}" for m in range(1, 13)], y=years, colorscale="RdYlGn", zmid=0,
                            name=readable_label(run.name), colorbar={"title": "%"})
    figures["fig-monthly-heatmap"] = _with_strategy_menu(heatmap, names, 1).update_layout(title="Monthly returns (%)")

    figures["fig-rolling-sharpe"] = _lines(runs, lambda run: _rolling(run.daily, ROLLING_SHARPE_DAYS, sharpe=True),
                                           "Rolling 12-month Sharpe")
    figures["fig-drawdown"] = _lines(runs, lambda run: _drawdown(run.daily) * 100, "Drawdown (%)")
    figures["fig-rolling-volatility"] = _lines(runs, lambda run: _rolling(run.daily, ROLLING_VOL_DAYS, sharpe=False) * 100,
                                               "Rolling 3-month volatility (annualised, %)")
    distribution = go.Figure()
    for run in runs:
        distribution.add_histogram(x=run.daily["net_return"] * 100, name=readable_label(run.name), opacity=0.6, nbinsx=80)
    figures["fig-return-distribution"] = distribution.update_layout(barmode="overlay", title="Daily returns (%)")

    concentration = go.Figure()
    for run in runs:
        label = readable_label(run.name)
        concentration.add_scatter(x=run.daily[c.DATE], y=run.daily["n_positions"], name=f"{label}: positions")
        concentration.add_scatter(x=run.daily[c.DATE], y=run.daily["max_weight"] * 100, name=f"{label}: largest weight %")
        concentration.add_scatter(x=run.daily[c.DATE], y=1 / run.daily["hhi"].replace(0, None),
                                  name=f"{label}: effective names (1/HHI)")
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
            exposure.add_scatter(x=by_sector[c.DATE], y=values, name=f"{readable_label(run.name)}: {sector}",
                                 stackgroup=run.name)
    figures["fig-sector-exposure"] = _with_strategy_menu(exposure, names, max(1, len(sector_names))).update_layout(
        title="Sector exposure (%)" if sectors else "Sector exposure (%): no sectors known")
    figures["fig-turnover"] = _lines(runs, lambda run: run.daily["turnover"].rolling_sum(21) * 100,
                                     "Turnover, trailing 21 days (% of equity)")

    trades = go.Figure()
    for run in runs:
        monthly = run.trades.group_by(pl.col("entry_date").dt.truncate("1mo").alias("month")).len().sort("month")
        trades.add_bar(x=monthly["month"], y=monthly["len"], name=readable_label(run.name))
    figures["fig-trades-per-month"] = trades.update_layout(title="Trades opened per month")
    figures["fig-holding-period"] = _holding_periods(runs)

    if regimes is not None:
        figures.update(_regime_figures(runs, regimes))
    return figures


def _lines(runs: list[StrategyRun], values, title: str) -> go.Figure:
    figure = go.Figure()
    for run in runs:
        figure.add_scatter(x=run.daily[c.DATE], y=values(run), name=readable_label(run.name))
    return figure.update_layout(title=title)


def _holding_periods(runs: list[StrategyRun]) -> go.Figure:
    """Histogram of the closed trades' holding periods (like the metrics' mean holding period: a trade open
    at the end has no holding period yet), the axis ending at HOLDING_AXIS_QUANTILE of them."""
    closed = {run.name: run.trades.filter(pl.col("closed"))["holding_days"] for run in runs}
    pooled = pl.concat(list(closed.values())) if closed else pl.Series("holding_days", [], dtype=pl.Int64)
    figure = go.Figure()
    if pooled.is_empty():
        return figure.update_layout(title="Holding period (trading days): no closed trades")
    cap = int(pooled.quantile(HOLDING_AXIS_QUANTILE, interpolation="higher"))
    # Bins of whole days, centred on integers (holding periods are counts of trading days).
    bins = {"start": 0.5, "end": cap + 0.5, "size": max(1, math.ceil(cap / HOLDING_BINS))}
    for name, days in closed.items():
        figure.add_histogram(x=days, name=readable_label(name), opacity=0.6, xbins=bins, autobinx=False)
    beyond = int((pooled > cap).sum())
    figure.update_xaxes(range=[0, cap + 0.5])
    title = "Holding period of closed trades (trading days)"
    if beyond:
        title += f"; {beyond} trade{'' if beyond == 1 else 's'} longer than {cap} days beyond the axis"
    return figure.update_layout(barmode="overlay", title=title)


def _regime_spans(regimes: pl.DataFrame) -> pl.DataFrame:
    """Consecutive dates with one label: regime, start, until (the next spell's start; the day after the
    last date for the last spell), so that the spells tile the period, weekends and holidays included."""
    return (
        regimes.sort(c.DATE)
        .with_columns((pl.col("regime") != pl.col("regime").shift(1)).fill_null(True).cum_sum().alias("_span"))
        .group_by("_span", maintain_order=True)
        .agg(pl.col("regime").first(), pl.col(c.DATE).min().alias("start"), pl.col(c.DATE).max().alias("end"))
        .with_columns(pl.col("start").shift(-1).fill_null(pl.col("end") + pl.duration(days=1)).alias("until"))
    )


def regime_colours(labels: list[str]) -> dict[str, str]:
    """REGIME_COLOURS for the lab's labels; labels of another regime model get the other colours in turn."""
    others = iter([label for label in labels if label not in REGIME_COLOURS])
    extra = {label: OTHER_REGIME_COLOURS[i % len(OTHER_REGIME_COLOURS)] for i, label in enumerate(others)}
    return {label: REGIME_COLOURS.get(label) or extra[label] for label in labels}


def _regime_figures(runs: list[StrategyRun], regimes: pl.DataFrame) -> dict[str, go.Figure]:
    present = set(regimes["regime"].cast(pl.String).unique().to_list())
    # The lab's labels in their order (bull to crisis), then any others.
    labels = [name for name in REGIME_NAMES if name in present] + sorted(present - set(REGIME_NAMES))
    colour = regime_colours(labels)
    spans = _regime_spans(regimes.with_columns(pl.col("regime").cast(pl.String)))
    overlay = go.Figure()
    for run in runs:
        overlay.add_scatter(x=run.daily[c.DATE], y=run.daily["equity"], name=readable_label(run.name))
    for span in spans.iter_rows(named=True):
        overlay.add_vrect(x0=span["start"], x1=span["until"], fillcolor=colour[span["regime"]], opacity=0.15, line_width=0)
    for label in labels:  # legend entries for the bands
        overlay.add_scatter(x=[None], y=[None], mode="markers", marker={"color": colour[label], "size": 12}, name=label)
    timeline = go.Figure()
    for label in labels:
        mine = spans.filter(pl.col("regime") == label)
        widths = ((mine["until"] - mine["start"]).dt.total_days() * MILLISECONDS_PER_DAY).to_list()
        timeline.add_bar(x=widths, base=mine["start"].to_list(),
                         y=[label] * mine.height, orientation="h", name=label, marker_color=colour[label])
    timeline.update_xaxes(type="date")
    return {"fig-regime-equity": overlay.update_layout(title="Equity with regime bands"),
            "fig-regime-timeline": timeline.update_layout(title="Regime transitions", showlegend=False)}


def _format(name: str, value: object, closed_trades: int | None = None) -> str:
    if name in TRADE_STATISTICS and closed_trades is not None and closed_trades < MIN_TRADES_FOR_STATISTICS:
        return f"n/a ({closed_trades} trade{'' if closed_trades == 1 else 's'})"
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value * 100:.2f} %" if name in PERCENT_METRICS else f"{value:.3f}"
    return str(value)


def _table(metrics: pl.DataFrame, keys: tuple[str, ...] | None = None) -> dict[str, list]:
    """Rows of (label, formatted values...) for a template table: metrics as rows, strategies as columns;
    trade statistics of too few closed trades read "n/a (k trades)"."""
    columns = [col for col in (keys or metrics.columns) if col in metrics.columns and col != "strategy"]
    closed = metrics["closed_trades"].to_list() if "closed_trades" in metrics.columns else [None] * metrics.height
    return {
        "header": ["", *(readable_label(name) for name in metrics["strategy"])],
        "rows": [[readable_label(col), *(_format(col, v, k) for v, k in zip(metrics[col].to_list(), closed, strict=True))]
                 for col in columns],
    }


def equal_weight_comparison(metrics: pl.DataFrame) -> dict[str, object] | None:
    """The report's comparison with equal weight (compute/backtest/comparison.py): the table of each strategy's
    Sharpe difference with its paired interval and verdict, and the sentence on the best candidate; None
    where the metrics carry no comparison."""
    if DIFFERENCE not in metrics.columns:
        return None
    return {"table": _table(metrics, ("sharpe", *COMPARISON_COLUMNS)),
            "verdict": best_candidate_verdict(metrics, label=readable_label)}


def execution_note(used: Mapping[str, BacktestParams | None]) -> str:
    """The execution model each strategy was backtested with, from the parameters it used (None: not
    recorded): one sentence when every strategy used the same, else one clause per set of strategies."""
    strategies_by_model: dict[str, list[str]] = {}
    for strategy, params in used.items():
        model = params.describe() if params is not None else "parameters not recorded"
        strategies_by_model.setdefault(model, []).append(readable_label(strategy))
    if len(strategies_by_model) == 1:
        return f"Execution: {next(iter(strategies_by_model))}."
    return "Execution: " + " | ".join(f"{', '.join(names)}: {model}" for model, names in strategies_by_model.items()) + "."


def render_report(
    runs: list[StrategyRun],
    metrics: pl.DataFrame,
    *,
    title: str,
    benchmark: str | None = None,
    regimes: pl.DataFrame | None = None,
    sectors: dict[str, str] | None = None,
    execution: Mapping[str, BacktestParams | None] | None = None,
    notes: list[str] | None = None,
    overfitting: str = "",
    live_record: pl.DataFrame | None = None,
) -> str:
    """The report as one HTML string. metrics: one row per strategy (column `strategy`), compute_metrics' keys.
    execution: the backtest parameters each strategy used, stated first among the notes. overfitting: section
    7's HTML (overfitting_section), empty without it. live_record: the desk's live track record summary (see
    live_track_record_section), None when not materialised."""
    figures = report_figures(runs, benchmark, regimes, sectors)
    html, first = {}, True
    for section in SECTION_IDS:
        for div_id in FIGURE_IDS[section]:
            if div_id in figures:
                html[div_id] = _figure_html(figures[div_id], div_id, first)
                first = False
    regime_tables = None
    if regimes is not None:
        regime_tables = {readable_label(run.name): regime_breakdown(run.daily, regimes).to_dicts() for run in runs}
    first_day, last_day = runs[0].daily[c.DATE].min(), runs[0].daily[c.DATE].max()
    environment = jinja2.Environment(loader=jinja2.PackageLoader("quantlab_assets.compute.backtest", "templates"),
                                     autoescape=jinja2.select_autoescape(["html", "j2"]))
    return environment.get_template(TEMPLATE).render(
        title=title,
        period=f"{first_day} .. {last_day}",
        strategies=[readable_label(run.name) for run in runs],
        benchmark=readable_label(benchmark) if benchmark else None,
        key_metrics=_table(metrics, KEY_METRICS),
        all_metrics=_table(metrics),
        regime_tables=regime_tables,
        figures=html,
        figure_ids=FIGURE_IDS,
        sections=SECTION_IDS,
        notes=([execution_note(execution)] if execution else []) + (notes or []),
        trade_table=_table(metrics, ("trades", "closed_trades", "avg_holding_days", *TRADE_STATISTICS)),
        risk_table=_table(metrics, ("var_95", "cvar_95", "annual_volatility", "max_drawdown")),
        min_trades=MIN_TRADES_FOR_STATISTICS,
        comparison=equal_weight_comparison(metrics),
        overfitting=overfitting,
        live_section=live_track_record_section(live_record, metrics),
    )


def run_page_url(tracking_uri: str, run_id: str) -> str | None:
    """The MLflow UI's page of a run (its artifacts include the report, which the UI shows) when the
    tracking store is a server; None for a local store (SQLite, files), which no browser page serves."""
    if not tracking_uri.startswith(("http://", "https://")):
        return None
    return f"{tracking_uri.rstrip('/')}/#/runs/{run_id}"


def report_preview_markdown(metrics: pl.DataFrame, path: str, run_url: str | None = None) -> str:
    """The key metrics as a markdown table (Dagster renders it in the asset's metadata) and how to open
    the full report: a browser refuses a file:// link from an http page, so the path is to be pasted."""
    table = _table(metrics, KEY_METRICS)
    lines = ["| " + " | ".join(table["header"]) + " |", "|" + " --- |" * len(table["header"])]
    lines += ["| " + " | ".join(row) + " |" for row in table["rows"]]
    where = [f"Full report: `{path}`. Copy the path (the copy icon beside `path`) into the browser's address bar, "
             f"or run `python -m webbrowser {path}` on the machine that holds the data."]
    if run_url:
        where.append(f"On the MLflow server: [the report's run]({run_url}), artifact `report/`.")
    return "\n".join([*lines, "", *where])



# --- Section 7: trials counted, PBO and the CPCV paths (appended after the six sections) ------------------
OVERFITTING_TEMPLATE = "overfitting_section.html.j2"
PBO_FIGURE_ID = "fig-pbo-logits"


def _sharpe_cell(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.2f}"


def overfitting_section(metrics: pl.DataFrame, assessment: OverfittingAssessment, horizon: int) -> str:
    """Section 7 as HTML: the trials the DSR counts (metrics: backtest_metrics' rows, with n_trials, the
    trials_<kind> counts, trial_sharpe_variance, candidate and trial_note), the PBO with the distribution of
    its logits, and the CPCV path-wise Sharpes (`overfitting.assess_overfitting`)."""
    first = metrics.row(0, named=True)
    periods = float(first["periods_per_year"])
    variance = first["trial_sharpe_variance"]
    n_trials = int(first["n_trials"])
    expected_max = None if variance is None else expected_max_sharpe(n_trials, variance) * math.sqrt(periods)
    excluded = [(readable_label(row["strategy"]), row["trial_note"]) for row in metrics.iter_rows(named=True) if not row["candidate"]]
    logit_figure = ""
    if assessment.pbo is not None:
        figure = go.Figure(go.Histogram(x=assessment.pbo.logits, nbinsx=40, name="logit"))
        figure.add_vline(x=0, line_dash="dash")
        figure.update_layout(title="Out-of-sample relative rank of the in-sample best (logit; left of 0: at or below the median)",
                             xaxis_title="logit of the relative rank", yaxis_title="splits")
        logit_figure = figure.to_html(full_html=False, include_plotlyjs=False, div_id=PBO_FIGURE_ID)
    paths = assessment.candidate_paths.pivot(on="path_id", index="strategy", values="sharpe").sort("strategy") \
        if assessment.candidate_paths.height else pl.DataFrame()
    path_ids = [col for col in paths.columns if col != "strategy"]
    groups = assessment.candidate_groups
    group_spans = groups.select("test_group", "start", "end").unique().sort("test_group").rows()
    selection_chosen = ", ".join(f"split {split}: {readable_label(name)}" for split, name in sorted(assessment.selection.items()))
    environment = jinja2.Environment(loader=jinja2.PackageLoader("quantlab_assets.compute.backtest", "templates"),
                                     autoescape=jinja2.select_autoescape(["html", "j2"]))
    return environment.get_template(OVERFITTING_TEMPLATE).render(
        n_trials=n_trials, counts=[(label, first.get(f"trials_{kind}", 0)) for kind, label in KIND_LABELS.items()],
        sharpe_sd=None if variance is None else math.sqrt(variance * periods), expected_max=expected_max,
        excluded=excluded, pbo=assessment.pbo, logit_figure=logit_figure, notes=assessment.notes, horizon=horizon,
        path_table={"header": ["Sharpe on CPCV path", *path_ids],
                    "rows": [[readable_label(row[0]), *map(_sharpe_cell, row[1:])] for row in paths.rows()]},
        group_table={"header": ["Sharpe on CPCV group", *(f"{g}: {s} .. {e}" for g, s, e in group_spans)],
                     "rows": [[readable_label(name), *map(_sharpe_cell, frame.sort("test_group")["sharpe"].to_list())]
                              for (name,), frame in groups.group_by("strategy", maintain_order=True)]},
        selection_table={"header": ["Selection path", *map(str, assessment.selection_paths["path_id"].to_list())],
                         "rows": [["Sharpe", *map(_sharpe_cell, assessment.selection_paths["sharpe"].to_list())],
                                  ["days", *map(str, assessment.selection_paths["days"].to_list())]]},
        selection_chosen=selection_chosen,
    )


# --- Section 8: the live track record beside the backtest ------------------------------------------------
LIVE_SECTION_ID = "live-track-record"
LIVE_LABELS = {
    "scored_days": "Scored days", "last_scored": "Last scored day", "cumulative_return": "Cumulative return (net)",
    "hit_rate": "Share of positive days", "sharpe": "Sharpe ratio (live)", "sharpe_ci_low": "Sharpe (live), 95 % low",
    "sharpe_ci_high": "Sharpe (live), 95 % high", "total_cost": "Costs paid", "backtest_sharpe": "Sharpe ratio (backtest)",
    "backtest_sharpe_ci_low": "Sharpe (backtest), 95 % low", "backtest_sharpe_ci_high": "Sharpe (backtest), 95 % high",
}
LIVE_PERCENT = {"cumulative_return", "hit_rate", "total_cost"}
LIVE_TEMPLATE = jinja2.Environment(autoescape=True).from_string(
    '<section id="{{ id }}">\n<h2>8. Live track record</h2>\n'
    '<p class="note">The lab\'s recorded daily decisions (the decision ledger), scored on the returns that arrived '
    'after them with the backtest\'s timing and costs: the out-of-sample record no backtest can fake. '
    'The live Sharpe ratio and its interval appear from {{ min_days }} scored days on.</p>\n'
    '{% if rows %}<table><tr>{% for h in header %}<th>{{ h }}</th>{% endfor %}</tr>'
    '{% for row in rows %}<tr>{% for v in row %}<td>{{ v }}</td>{% endfor %}</tr>{% endfor %}</table>'
    '{% else %}<p>No decision recorded yet: materialise target_portfolio, orders and decision_ledger, then '
    'live_track_record.</p>{% endif %}\n</section>\n')


def live_track_record_section(summary: pl.DataFrame | None, backtest_metrics: pl.DataFrame) -> str:
    """The section's HTML: per strategy of the live record, its live metrics beside its backtest's Sharpe ratio
    and interval. summary: compute/portfolio/desk.py's track record summary (None or empty: nothing yet)."""
    # Here, not at the top: the desk module imports the strategy set (cvxpy, scikit-learn), which a report
    # without a live record never needs.
    from quantlab_assets.compute.portfolio.desk import MIN_SCORED_DAYS_FOR_SHARPE

    if summary is None or summary.is_empty():
        return LIVE_TEMPLATE.render(id=LIVE_SECTION_ID, min_days=MIN_SCORED_DAYS_FOR_SHARPE, rows=[], header=[])
    backtest = backtest_metrics.select(
        "strategy", *(pl.col(k).alias(f"backtest_{k}") for k in ("sharpe", "sharpe_ci_low", "sharpe_ci_high")))
    table = summary.join(backtest, on="strategy", how="left").sort("strategy")
    columns = [k for k in LIVE_LABELS if k in table.columns]
    rows = [[LIVE_LABELS[k], *(_live_format(k, v) for v in table[k].to_list())] for k in columns]
    return LIVE_TEMPLATE.render(id=LIVE_SECTION_ID, min_days=MIN_SCORED_DAYS_FOR_SHARPE, rows=rows,
                                header=["", *(readable_label(name) for name in table["strategy"])])


def _live_format(name: str, value: object) -> str:
    if isinstance(value, float) and name in LIVE_PERCENT and math.isfinite(value):
        return f"{value * 100:.2f} %"
    return _format(name, value)
