"""The base models and the stack against the synthetic market's price-signal oracle: raw vs per-date inputs.

On the default synthetic market (or a shorter one), through the lab's own functions (`build_planted_market`:
cleaning as the cleaned_bars asset cleans, with membership marked; labels; features), `cv.make_folds`, `oof.fit_oof` per model and horizon, `stacking.stack_and_combine`, scored by
`metrics.score_predictions` and `canaries.oracle_rank_ic` (the planted expected return scored on exactly
the rows each model predicted, against the same raw label). Two variants of the models' inputs:

- raw: the seed's raw inputs (`BaseModelParams(per_date_trees=False)`);
- per_date: the lab's default, `base_models.model_view` (the trees' inputs and training label rank-gaussed
  per date), and Ridge per date too (`rank_gauss_per_date` on its inputs and label) to see whether it helps.

Predictions are always scored against the raw label. It also prints the price signal's oracle rank IC
over the whole market and its largest rank correlation with any feature column.

    .venv/bin/python benchmarks/planted_signal_models.py                      # default market, seed trees: ~40 CPU-min
    .venv/bin/python benchmarks/planted_signal_models.py --start 2015-01-02 --end 2018-12-31 --trees 20   # smoke run

`benchmarks/peer_qlib.py` imports `build_planted_market`, `base_model_params` and `oof_predictions`.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
from dataclasses import dataclass

import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.cleaning import clean_bars
from quantlab_assets.compute.data.membership import mark_members, split_after_delisting
from quantlab_assets.compute.data.raw import as_raw_frame
from quantlab_assets.compute.data.synthetic import (
    SyntheticMarket,
    SyntheticMarketParams,
    generate_synthetic_market,
    planted_oracle_rank_ic,
)
from quantlab_assets.compute.features.compute import compute_features
from quantlab_assets.compute.features.preprocessing import rank_gauss_per_date
from quantlab_assets.compute.labels.compute import compute_labels
from quantlab_assets.compute.models import canaries, cv, oof
from quantlab_assets.compute.models.base_models import MODELS, RIDGE, BaseModelParams, LightGBMParams, XGBoostParams
from quantlab_assets.compute.models.metrics import LABEL, score_predictions
from quantlab_assets.compute.models.stacking import stack_and_combine

HORIZONS = (21, 63)
# The default market's last day: the end the figures in docs/studies.md were measured to.
DEFAULT_END = dt.date(2024, 11, 29)


@dataclass(frozen=True)
class PlantedMarket:
    """The synthetic market after the lab's data steps: bars cleaned as the cleaned_bars asset cleans them
    (rows after a delisting quarantined, members marked), features, labels, the cross-validation folds,
    and the price signal's oracle as (date, ticker, planted_signal) for `canaries.oracle_rank_ic`."""

    market: SyntheticMarket
    bars: pl.DataFrame
    features: pl.DataFrame
    labels: pl.DataFrame
    folds: pl.DataFrame
    price_oracle: pl.DataFrame


def build_planted_market(params: SyntheticMarketParams) -> PlantedMarket:
    """Generate the market of `params` (start .. end) and run it through the lab's data functions."""
    window = (params.start, params.end)
    market = generate_synthetic_market(params)
    raw = as_raw_frame(market.bars, source="synthetic", source_file="synthetic")
    raw, _after_delisting = split_after_delisting(raw, market.universe, window)
    cleaned = clean_bars(raw, market.universe[c.TICKER], window=window, as_of=params.end).cleaned
    bars = mark_members(cleaned, market.universe, params.end)
    labels = compute_labels(bars, market.universe)
    return PlantedMarket(
        market=market,
        bars=bars,
        features=compute_features(bars, market.universe).frame,
        labels=labels,
        folds=cv.make_folds(labels, cv.CvParams()),
        price_oracle=market.oracle.select(c.DATE, c.TICKER, pl.col(c.PLANTED_EXPECTED_RETURN).alias(c.PLANTED_SIGNAL)),
    )


def base_model_params(trees: int | None) -> BaseModelParams:
    """The lab's default model parameters, with `trees` boosting rounds for both trees when given."""
    if trees is None:
        return BaseModelParams()
    return BaseModelParams(xgboost=XGBoostParams(n_estimators=trees), lightgbm=LightGBMParams(n_estimators=trees))


def model_input_view(design: oof.DesignPanel, model: str, variant: str) -> oof.DesignPanel:
    """Ridge per date too in the per_date variant; the trees get their view from fit_oof itself."""
    if variant == "per_date" and model == RIDGE:
        return design.with_frame(rank_gauss_per_date(design.frame, [*design.inputs, LABEL]))
    return design


def oof_predictions(panel: PlantedMarket, model: str, horizon: int, params: BaseModelParams,
                    variant: str = "raw") -> pl.DataFrame:
    """`model`'s out-of-fold predictions of `horizon` (oof.fit_oof) with the design panel's untransformed
    label, whatever view of the rows the model was fitted on."""
    design = oof.design_panel(panel.features, panel.labels, horizon)
    raw_label = design.frame.select(c.DATE, c.TICKER, LABEL)
    fitted = oof.fit_oof(model_input_view(design, model, variant), panel.folds, model, horizon, params)
    return fitted.predictions.drop(LABEL).join(raw_label, on=[c.DATE, c.TICKER])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=dt.date.fromisoformat, default=SyntheticMarketParams().start)
    parser.add_argument("--end", type=dt.date.fromisoformat, default=DEFAULT_END)
    parser.add_argument("--n-instruments", type=int, default=SyntheticMarketParams().n_instruments)
    parser.add_argument("--trees", type=int, default=None, help="trees per boosted model (default: the seed's 400)")
    args = parser.parse_args()
    params = base_model_params(args.trees)
    panel = build_planted_market(SyntheticMarketParams(start=args.start, end=args.end, n_instruments=args.n_instruments))
    for horizon in (1, *HORIZONS):
        print(f"price signal oracle rank IC {horizon}d, whole market: "
              f"{planted_oracle_rank_ic(panel.market, c.PLANTED_EXPECTED_RETURN, horizon):.4f}")
    inputs = oof.feature_columns(panel.features)
    with_signal = panel.features.join(panel.price_oracle, on=[c.DATE, c.TICKER])
    daily = with_signal.group_by(c.DATE).agg(pl.corr(c.PLANTED_SIGNAL, name, method="spearman").alias(name) for name in inputs)
    mean_corr = daily.select(pl.col(name).filter(pl.col(name).is_not_nan()).mean() for name in inputs).row(0, named=True)
    closest = max((name for name in inputs if mean_corr[name] is not None), key=lambda name: abs(mean_corr[name]))
    print(f"largest mean daily rank correlation with a feature: {closest} {mean_corr[closest]:+.3f}")

    def scored(name: str, predictions: pl.DataFrame) -> None:
        rank_ic, ceiling = score_predictions(predictions)["rank_ic"][0], canaries.oracle_rank_ic(predictions, panel.price_oracle)
        print(f"  {name:<28} rank IC {rank_ic:+.4f}  oracle on its rows {ceiling:.4f}  share {rank_ic / ceiling:+.2f}", flush=True)

    for variant in ("raw", "per_date"):
        print(f"{variant}:")
        variant_params = dataclasses.replace(params, per_date_trees=variant == "per_date")
        by_horizon: dict[int, dict[str, pl.DataFrame]] = {}
        for horizon in HORIZONS:
            by_horizon[horizon] = {}
            for model in MODELS:
                predictions = oof_predictions(panel, model, horizon, variant_params, variant)
                by_horizon[horizon][model] = predictions
                scored(f"{model} {horizon}d", predictions)
        stacks = {"stack": by_horizon}
        if variant == "per_date":
            # The stack with Ridge on raw inputs (the trees per date): the lab's choice.
            raw_ridge = {h: {**models, RIDGE: oof_predictions(panel, RIDGE, h, params)} for h, models in by_horizon.items()}
            stacks["stack, ridge raw"] = raw_ridge
        for name, members in stacks.items():
            result = stack_and_combine(members, panel.folds, panel.labels)
            for horizon, frame in result.per_horizon.items():
                scored(f"{name} {horizon}d", frame)


if __name__ == "__main__":
    main()
