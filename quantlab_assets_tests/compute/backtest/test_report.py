"""The HTML report: every section of seed 003 and every figure present, self-contained, honest about regimes."""

import datetime as dt
from html.parser import HTMLParser

import numpy as np
import polars as pl
import pytest

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.backtest.comparison import best_candidate_verdict, versus_equal_weight
from quantlab_assets.compute.backtest.engine import RETURN, SIGNAL_DATE, WEIGHT, BacktestParams, CostParams, run_backtest
from quantlab_assets.compute.backtest.metrics import MetricParams, compute_metrics
from quantlab_assets.compute.backtest.report import (
    FIGURE_IDS,
    HOLDING_AXIS_QUANTILE,
    MILLISECONDS_PER_DAY,
    MIN_TRADES_FOR_STATISTICS,
    READABLE_LABELS,
    REGIME_COLOURS,
    SECTION_IDS,
    StrategyRun,
    execution_note,
    readable_label,
    regime_colours,
    render_report,
    report_figures,
    report_preview_markdown,
    run_page_url,
)
from quantlab_assets.compute.backtest.trades import round_trips
from quantlab_assets.compute.regimes.labels import REGIME_NAMES


class _Ids(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.scripts_with_src: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id"):
            self.ids.append(found["id"])
        if tag == "script" and found.get("src"):
            self.scripts_with_src.append(found["src"])


@pytest.fixture(scope="module")
def runs() -> tuple[list[StrategyRun], pl.DataFrame, dict[str, str]]:
    rng = np.random.default_rng(4)
    n_days, tickers = 400, [f"X{i}" for i in range(8)]
    dates = pl.Series(c.DATE, [dt.date(2022, 1, 3) + dt.timedelta(days=i) for i in range(n_days)], dtype=pl.Date)
    grid = pl.DataFrame({c.DATE: dates.gather(np.repeat(np.arange(n_days), 8)), c.TICKER: tickers * n_days})
    returns = grid.with_columns(pl.Series(RETURN, rng.normal(3e-4, 0.012, grid.height)))
    strategies = {
        "top_2": grid.with_columns(pl.Series("s", rng.random(grid.height)))
        .filter(pl.col("s").rank("ordinal", descending=True).over(c.DATE) <= 2)
        .filter(pl.col(c.DATE).dt.weekday() == 1)
        .select(c.DATE, c.TICKER, pl.lit(0.5).alias(WEIGHT), pl.col(c.DATE).alias(SIGNAL_DATE)),
        "buy_and_hold": grid.filter(pl.col(c.DATE) == dates[0]).select(
            c.DATE, c.TICKER, pl.lit(1 / 8).alias(WEIGHT), pl.col(c.DATE).alias(SIGNAL_DATE)),
    }
    out, rows = [], []
    for name, weights in strategies.items():
        result = run_backtest(returns, weights)
        trades = round_trips(result.arrays.weights, result.returns, result.daily[c.DATE], result.tickers)
        out.append(StrategyRun(name, result.daily, result.weights, trades))
        rows.append({"strategy": name, **compute_metrics(result.daily, trades, MetricParams(bootstrap_reps=50, n_trials=2))})
    sectors = {t: ("Tech" if i < 4 else "Energy") for i, t in enumerate(tickers)}
    return out, pl.DataFrame(rows), sectors


def test_every_section_and_figure_is_present_and_self_contained(runs) -> None:
    strategy_runs, metrics, sectors = runs
    dates = strategy_runs[0].daily[c.DATE]
    regimes = pl.DataFrame({c.DATE: dates, "regime": np.where(np.arange(dates.len()) < 200, "Low-Vol Bull", "Bear")})
    html = render_report(strategy_runs, metrics, title="test", benchmark="buy_and_hold", regimes=regimes, sectors=sectors)
    parser = _Ids()
    parser.feed(html)
    for section in SECTION_IDS:
        assert section in parser.ids
        for figure in FIGURE_IDS[section]:
            assert figure in parser.ids, figure
    assert parser.scripts_with_src == []  # plotly.js inline, no CDN
    assert html.count("Plotly.newPlot") == sum(len(v) for v in FIGURE_IDS.values())
    for label in ("Executive summary", "Monthly returns", "Rolling 12-month Sharpe", "Low-Vol Bull", "VaR", "CVaR",
                  "Profit factor", "Win rate", "Sector exposure", "DSR", "PSR"):
        assert label in html, label


def test_without_regimes_the_report_says_so(runs) -> None:
    strategy_runs, metrics, _ = runs
    html = render_report(strategy_runs, metrics, title="test")
    parser = _Ids()
    parser.feed(html)
    assert "no-regimes" in parser.ids and "fig-regime-equity" not in parser.ids
    assert all(section in parser.ids for section in SECTION_IDS)


def test_the_comparison_with_equal_weight_is_shown_where_the_metrics_carry_it(runs) -> None:
    strategy_runs, metrics, _ = runs
    daily = {run.name: run.daily for run in strategy_runs} | {"equal_weight": strategy_runs[1].daily}
    compared = metrics.join(versus_equal_weight(daily, MetricParams(bootstrap_reps=50)), on="strategy", how="left")
    html = render_report(strategy_runs, compared, title="test")
    parser = _Ids()
    parser.feed(html)
    assert {"versus-equal-weight", "best-versus-equal-weight"} <= set(parser.ids)
    # Equal weight is buy_and_hold's twin here: the best candidate's difference is 0 on every resample.
    sentence = best_candidate_verdict(compared, label=readable_label)
    assert sentence in html and sentence.startswith("The best candidate, Buy and hold")
    assert "[0.00, 0.00]: it does not beat equal weight (the interval holds 0)" in sentence
    assert "Sharpe minus equal weight&#39;s" in html
    assert "versus-equal-weight" not in render_report(strategy_runs, metrics, title="test")


def test_the_report_states_the_execution_model_each_strategy_used(runs) -> None:
    strategy_runs, metrics, _ = runs
    cheap = BacktestParams(costs=CostParams(2.5, 0, 1), delay=0, rebalance="weekly", borrow_fee_bps=30)
    same = render_report(strategy_runs, metrics, title="test", execution={"top_2": cheap, "buy_and_hold": cheap})
    assert ("Execution: commission 2.5 bp + slippage 0 bp + spread 1 bp on traded notional; 0-bar execution delay; "
            "weekly rebalancing; borrow fee 30 bp a year on short notional.") in same
    assert "10 bp" not in same
    mixed = execution_note({"top_2": cheap, "buy_and_hold": BacktestParams(), "equal_weight": None})
    assert mixed == ("Execution: Top 2: commission 2.5 bp + slippage 0 bp + spread 1 bp on traded notional; 0-bar "
                     "execution delay; weekly rebalancing; borrow fee 30 bp a year on short notional | Buy and hold: "
                     "commission 10 bp + slippage 5 bp + spread 5 bp on traded notional; 1-bar execution delay; daily "
                     "rebalancing; borrow fee 50 bp a year on short notional | Equal weight: parameters not recorded.")


class _Cells(HTMLParser):
    """The text of every table cell (th and td) of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[str] = []
        self._open = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("td", "th"):
            self._open = True
            self.cells.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th"):
            self._open = False

    def handle_data(self, data: str) -> None:
        if self._open:
            self.cells[-1] += data


def _spells(labels: list[str], dates: pl.Series) -> pl.DataFrame:
    return pl.DataFrame({c.DATE: dates, "regime": labels})


def test_regime_timeline_bars_are_as_wide_as_each_spell_on_the_date_axis(runs) -> None:
    strategy_runs, _, sectors = runs
    dates = strategy_runs[0].daily[c.DATE]  # consecutive calendar days
    n = dates.len()
    labels = ["Low-Vol Bull"] * 150 + ["Bear"] * 60 + ["Crisis"] * 40 + ["Low-Vol Bull"] * (n - 250)
    timeline = report_figures(strategy_runs, None, _spells(labels, dates), sectors)["fig-regime-timeline"]
    assert timeline.layout.xaxis.type == "date"
    # A date axis counts milliseconds: a bar of 150 spans 150 ms, which is why the chart looked empty.
    expected = {"Low-Vol Bull": ([150, n - 250], [dates[0], dates[250]]), "Bear": ([60], [dates[150]]),
                "Crisis": ([40], [dates[210]])}
    assert {trace.name for trace in timeline.data} == set(expected)
    for trace in timeline.data:
        days, starts = expected[trace.name]
        assert list(trace.x) == [d * MILLISECONDS_PER_DAY for d in days]
        assert all(width > 0 for width in trace.x)
        assert [dt.date.fromisoformat(str(b)[:10]) for b in trace.base] == starts


def test_regime_colours_mean_what_they_say(runs) -> None:
    strategy_runs, _, sectors = runs
    assert set(REGIME_COLOURS) == set(REGIME_NAMES)

    def rgb(colour: str) -> tuple[int, int, int]:
        return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)

    for bull in ("Low-Vol Bull", "High-Vol Bull"):
        red, green, _ = rgb(REGIME_COLOURS[bull])
        assert green > red, bull
    for bad in ("Bear", "Crisis"):
        red, green, _ = rgb(REGIME_COLOURS[bad])
        assert red > green, bad
    dates = strategy_runs[0].daily[c.DATE]
    labels = list(np.array(REGIME_NAMES)[np.arange(dates.len()) * len(REGIME_NAMES) // dates.len()])
    figures = report_figures(strategy_runs, None, _spells(labels, dates), sectors)
    bands = figures["fig-regime-equity"].layout.shapes
    assert [band.fillcolor for band in bands] == [REGIME_COLOURS[label] for label in REGIME_NAMES]
    assert {trace.name: trace.marker.color for trace in figures["fig-regime-timeline"].data} == REGIME_COLOURS
    # Labels of another regime model keep the lab's colours for the lab's labels and get distinct others.
    mixed = regime_colours(["Bear", "state_7", "state_9"])
    assert mixed["Bear"] == REGIME_COLOURS["Bear"] and len(set(mixed.values())) == 3
    assert not set(mixed.values()) & (set(REGIME_COLOURS.values()) - {REGIME_COLOURS["Bear"]})


def test_trade_statistics_of_too_few_trades_read_not_available(runs) -> None:
    strategy_runs, metrics, _ = runs
    few = metrics.with_columns(
        pl.when(pl.col("strategy") == "buy_and_hold").then(pl.lit(v)).otherwise(pl.col(k)).alias(k)
        for k, v in (("closed_trades", 1), ("win_rate", 0.0), ("profit_factor", 0.0), ("win_rate_ci_low", 0.0))
    )
    parser = _Cells()
    parser.feed(render_report(strategy_runs, few, title="test"))
    rows = {}
    for i, cell in enumerate(parser.cells):
        if cell in ("Win rate", "Profit factor", "Win rate, 95 % low"):
            rows.setdefault(cell, parser.cells[i + 1:i + 3])
    assert rows["Win rate"][1] == rows["Profit factor"][1] == rows["Win rate, 95 % low"][1] == "n/a (1 trade)"
    enough = metrics.filter(pl.col("strategy") == "top_2")["closed_trades"][0]
    assert enough >= MIN_TRADES_FOR_STATISTICS
    assert rows["Win rate"][0].endswith(" %") and rows["Profit factor"][0] != "n/a"


def test_every_metric_and_strategy_has_a_readable_label(runs) -> None:
    strategy_runs, metrics, _ = runs
    dates = strategy_runs[0].daily[c.DATE]
    regimes = _spells(["Bear"] * dates.len(), dates)
    assert set(metrics.columns) - {"strategy"} <= set(READABLE_LABELS)
    assert readable_label("equal_weight") == "Equal weight" and readable_label("top_2") == "Top 2"
    parser = _Cells()
    parser.feed(render_report(strategy_runs, metrics, title="test", regimes=regimes))
    assert parser.cells and not [cell for cell in parser.cells if "_" in cell]


def test_holding_period_axis_is_bounded_by_a_percentile(runs) -> None:
    strategy_runs, _, sectors = runs
    everything = pl.concat([run.trades["holding_days"] for run in strategy_runs])
    assert everything.max() > 300  # buy and hold: trades open over the whole period
    closed = pl.concat([run.trades.filter(pl.col("closed"))["holding_days"] for run in strategy_runs])
    figure = report_figures(strategy_runs, None, None, sectors)["fig-holding-period"]
    cap = closed.quantile(HOLDING_AXIS_QUANTILE, interpolation="higher")
    assert figure.layout.xaxis.range[1] == cap + 0.5 < 300
    assert all(trace.xbins.end == cap + 0.5 for trace in figure.data)
    assert sum(len(trace.x) for trace in figure.data) == closed.len()
    assert ("beyond the axis" in figure.layout.title.text) == bool((closed > cap).sum())

    # One closed position held for years ends beyond the axis and is counted in the title.
    daily = strategy_runs[0].daily
    trades = pl.DataFrame({c.TICKER: ["X0"] * 200, "entry_date": [daily[c.DATE][0]] * 200,
                           "exit_date": [daily[c.DATE][1]] * 200, "holding_days": [5] * 199 + [3000],
                           "pnl": [0.0] * 200, "closed": [True] * 200})
    outlier = report_figures([StrategyRun("qp_optimal", daily, strategy_runs[0].positions, trades)], None, None, sectors)
    holding = outlier["fig-holding-period"]
    assert holding.layout.xaxis.range[1] == 5.5
    assert "1 trade longer than 5 days" in holding.layout.title.text


def test_preview_shows_the_key_metrics_and_how_to_open_the_report(runs) -> None:
    _, metrics, _ = runs
    local = report_preview_markdown(metrics, "/data/reports/backtest_report/synthetic.html")
    lines = local.splitlines()
    assert lines[0] == "|  | Top 2 | Buy and hold |" and lines[1] == "| --- | --- | --- |"
    assert any(line.startswith("| Sharpe ratio | ") for line in lines)
    assert "file://" not in local and "python -m webbrowser /data/reports/backtest_report/synthetic.html" in local
    assert run_page_url("sqlite:///data/mlflow/mlflow.db", "abc") is None
    url = run_page_url("http://mlflow:5000/", "abc")
    assert url == "http://mlflow:5000/#/runs/abc"
    assert f"[the report's run]({url})" in report_preview_markdown(metrics, "/r.html", url)
