"""A small synthetic market run through cleaning, labels and features: the panel the model tests fit on.

30 instruments x 3.6 years of business days (about 940), no late listings or delistings; cleaning keeps
an instrument once it has 252 days of history, so about 690 dates carry features and labels, enough
for 5 walk-forward folds with a 63-date embargo. Built once per session (a few seconds).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl
import pytest

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.cleaning import clean_bars
from quantlab_assets.compute.data.raw import as_raw_frame
from quantlab_assets.compute.data.synthetic import SyntheticMarket, SyntheticMarketParams, generate_synthetic_market
from quantlab_assets.compute.features.compute import compute_features
from quantlab_assets.compute.labels.compute import compute_labels
from quantlab_assets.compute.models import cv, oof
from quantlab_assets.compute.models.canaries import PLANTED_CANARY_INPUTS
from quantlab_assets.compute.models.base_models import MODELS, BaseModelParams, LightGBMParams, XGBoostParams

MODEL_MARKET_PARAMS = SyntheticMarketParams(
    seed=42, n_instruments=30, start=dt.date(2016, 1, 1), end=dt.date(2019, 8, 30), late_listing_share=0.0,
    delisting_share=0.0,
)


# Tests only: few shallow trees keep each fit under a second; production keeps the seed's 400 x depth 6.
FAST = BaseModelParams(xgboost=XGBoostParams(n_estimators=30, max_depth=3), lightgbm=LightGBMParams(n_estimators=30))


@dataclass(frozen=True)
class ModelPanel:
    market: SyntheticMarket
    bars: pl.DataFrame
    features: pl.DataFrame
    labels: pl.DataFrame


@pytest.fixture(scope="session")
def model_panel() -> ModelPanel:
    market = generate_synthetic_market(MODEL_MARKET_PARAMS)
    raw = as_raw_frame(market.bars, source="synthetic", source_file="synthetic(test)")
    bars = clean_bars(raw, market.universe[c.TICKER], window=(MODEL_MARKET_PARAMS.start, MODEL_MARKET_PARAMS.end),
                      as_of=MODEL_MARKET_PARAMS.end).cleaned
    features = compute_features(bars, market.universe).frame
    labels = compute_labels(bars, market.universe)
    return ModelPanel(market=market, bars=bars, features=features, labels=labels)


@pytest.fixture(scope="session")
def stacked_oof(model_panel: ModelPanel) -> tuple[dict[int, dict[str, pl.DataFrame]], pl.DataFrame, pl.DataFrame]:
    """OOF predictions {horizon: {model: frame}} of the canary features, the folds, and all features + the signal."""
    oracle = model_panel.market.oracle.select(c.DATE, c.TICKER, c.PLANTED_SIGNAL)
    features = model_panel.features.join(oracle, on=[c.DATE, c.TICKER], how="left")
    folds = cv.make_folds(model_panel.labels)
    canary = features.select(c.DATE, c.TICKER, *PLANTED_CANARY_INPUTS)
    predictions = {
        h: {m: oof.fit_oof(oof.design_panel(canary, model_panel.labels, h), folds, m, h, FAST).predictions for m in MODELS}
        for h in (21, 63)
    }
    return predictions, folds, features
