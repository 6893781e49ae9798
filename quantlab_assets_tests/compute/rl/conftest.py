"""A small seeded market for the RL tests: 12 instruments on business days 2016-2019, a forecast that knows a
little of the next day's return (so there is something to learn), regime labels, late listings and gaps."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl
import pytest

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.rl.panel import ObservationPanel, build_panel, common_dates, split_spans

VALIDATION_END = dt.date(2018, 12, 31)
VALIDATION_DAYS = 126


@dataclass(frozen=True)
class SmallMarket:
    returns: pl.DataFrame
    alpha: pl.DataFrame
    regimes: pl.DataFrame
    dates: pl.Series
    spans: dict[str, tuple[int, int]]

    def panel(self, **params: object) -> ObservationPanel:
        from quantlab_assets.compute.rl.panel import PanelParams

        return build_panel(self.returns, self.alpha, self.regimes, self.dates, self.dates[self.spans["train"][1]],
                           PanelParams(**params))


def small_market_frames(n_assets: int = 12, seed: int = 7) -> SmallMarket:
    rng = np.random.default_rng(seed)
    days = pl.date_range(dt.date(2016, 1, 1), dt.date(2019, 12, 31), "1d", eager=True)
    days = days.filter(days.dt.weekday() <= 5)
    tickers = [f"A{i:02d}" for i in range(n_assets)]
    t, n = days.len(), n_assets
    r = rng.normal(0.0003, 0.012, (t, n)) + rng.normal(0, 0.008, (t, 1))
    grid = pl.DataFrame({c.DATE: np.repeat(days.to_numpy(), n), c.TICKER: tickers * t, "return": r.ravel()})
    # A01 lists in mid-2017, A02 has no bar on some days: ineligible there.
    grid = grid.filter(~((pl.col(c.TICKER) == "A01") & (pl.col(c.DATE) < dt.date(2017, 6, 1))))
    grid = grid.with_columns(pl.when((pl.col(c.TICKER) == "A02") & (pl.int_range(pl.len()) % 37 == 0))
                             .then(None).otherwise(pl.col("return")).alias("return"))
    nxt = grid.sort(c.TICKER, c.DATE).with_columns(pl.col("return").shift(-2).over(c.TICKER).alias("_next"))
    alpha = nxt.filter(pl.col(c.DATE) >= dt.date(2016, 3, 1)).select(
        c.DATE, c.TICKER,
        (pl.col("_next").fill_null(0.0) * 2e4 + pl.Series(rng.normal(0, 60, nxt.filter(pl.col(c.DATE) >= dt.date(2016, 3, 1)).height)))
        .clip(-1000, 1000).alias("alpha_combined")).with_columns(pl.col("alpha_combined").alias("alpha_21d"))
    regimes = pl.DataFrame({c.DATE: days.filter(days >= dt.date(2016, 2, 1))}).with_columns(
        pl.Series("regime_id", (np.arange(days.filter(days >= dt.date(2016, 2, 1)).len()) // 60) % 5, dtype=pl.Int8))
    returns = grid.select(c.DATE, c.TICKER, "return")
    dates = common_dates(returns, alpha, regimes)
    return SmallMarket(returns, alpha, regimes, dates, split_spans(dates, VALIDATION_END, VALIDATION_DAYS))


@pytest.fixture(scope="session")
def market() -> SmallMarket:
    return small_market_frames()
