"""The HTML report: every section of seed 003 and every figure present, self-contained, honest about regimes."""

import datetime as dt
from html.parser import HTMLParser

import numpy as np
import polars as pl
import pytest

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.backtest.engine import RETURN, SIGNAL_DATE, WEIGHT, run_backtest
from quantlab_assets.compute.backtest.metrics import MetricParams, compute_metrics
from quantlab_assets.compute.backtest.report import FIGURE_IDS, SECTION_IDS, StrategyRun, render_report
from quantlab_assets.compute.backtest.trades import round_trips


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
                  "profit_factor", "win_rate", "Sector exposure", "dsr", "psr"):
        assert label in html, label


def test_without_regimes_the_report_says_so(runs) -> None:
    strategy_runs, metrics, _ = runs
    html = render_report(strategy_runs, metrics, title="test")
    parser = _Ids()
    parser.feed(html)
    assert "no-regimes" in parser.ids and "fig-regime-equity" not in parser.ids
    assert all(section in parser.ids for section in SECTION_IDS)
