"""The base models and the stack against the synthetic market's price-signal oracle: raw vs per-date inputs.

On the default synthetic market (or a shorter one), through the lab's own functions: cleaning, labels,
features, `cv.make_folds`, `oof.fit_oof` per model and horizon, `stacking.stack_and_combine`, scored by
`metrics.score_predictions` and `canaries.oracle_rank_ic` (the planted expected return scored on exactly
the rows each model predicted, against the same raw label). Two variants of the models' inputs:

- raw: the seed's raw inputs (`BaseModelParams(per_date_trees=False)`);
- per_date: the lab's default, `base_models.model_view` (the trees' inputs and training label rank-gaussed
  per date), and Ridge per date too (`rank_gauss_per_date` on its inputs and label) to see whether it helps.

Predictions are always scored against the raw label. It also prints the price signal's oracle rank IC
over the whole market and its largest rank correlation with any feature column.

    .venv/bin/python benchmarks/planted_signal_models.py                      # default market, seed trees: ~40 CPU-min
    .venv/bin/python benchmarks/planted_signal_models.py --start 2015-01-02 --end 2018-12-31 --trees 20   # smoke run
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt

import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.cleaning import clean_bars
from quantlab_assets.compute.data.raw import as_raw_frame
from quantlab_assets.compute.data.synthetic import SyntheticMarketParams, generate_synthetic_market, planted_oracle_rank_ic
from quantlab_assets.compute.features.compute import compute_features
from quantlab_assets.compute.features.preprocessing import rank_gauss_per_date
from quantlab_assets.compute.labels.compute import compute_labels
from quantlab_assets.compute.models import canaries, cv, oof
from quantlab_assets.compute.models.base_models import MODELS, RIDGE, BaseModelParams, LightGBMParams, XGBoostParams
from quantlab_assets.compute.models.metrics import LABEL, score_predictions
from quantlab_assets.compute.models.stacking import stack_and_combine

HORIZONS = (21, 63)


def model_input_view(design: oof.DesignPanel, model: str, variant: str) -> oof.DesignPanel:
    """Ridge per date too in the per_date variant; the trees get their view from fit_oof itself."""
    if variant == "per_date" and model == RIDGE:
        return design.with_frame(rank_gauss_per_date(design.frame, [*design.inputs, LABEL]))
    return design


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=dt.date.fromisoformat, default=SyntheticMarketParams().start)
    parser.add_argument("--end", type=dt.date.fromisoformat, default=dt.date(2024, 11, 29))
    parser.add_argument("--trees", type=int, default=None, help="trees per boosted model (default: the seed's 400)")
    args = parser.parse_args()
    market_params = SyntheticMarketParams(start=args.start, end=args.end)
    params = BaseModelParams()
    if args.trees is not None:
        params = BaseModelParams(xgboost=XGBoostParams(n_estimators=args.trees), lightgbm=LightGBMParams(n_estimators=args.trees))

    market = generate_synthetic_market(market_params)
    raw = as_raw_frame(market.bars, source="synthetic", source_file="synthetic")
    bars = clean_bars(raw, market.universe[c.TICKER], window=(args.start, args.end), as_of=args.end).cleaned
    features, labels = compute_features(bars, market.universe).frame, compute_labels(bars, market.universe)
    folds = cv.make_folds(labels, cv.CvParams())
    oracle = market.oracle.select(c.DATE, c.TICKER, pl.col(c.PLANTED_EXPECTED_RETURN).alias(c.PLANTED_SIGNAL))
    for horizon in (1, *HORIZONS):
        print(f"price signal oracle rank IC {horizon}d, whole market: "
              f"{planted_oracle_rank_ic(market, c.PLANTED_EXPECTED_RETURN, horizon):.4f}")
    inputs = oof.feature_columns(features)
    with_signal = features.join(oracle, on=[c.DATE, c.TICKER])
    daily = with_signal.group_by(c.DATE).agg(pl.corr(c.PLANTED_SIGNAL, name, method="spearman").alias(name) for name in inputs)
    mean_corr = daily.select(pl.col(name).filter(pl.col(name).is_not_nan()).mean() for name in inputs).row(0, named=True)
    closest = max((name for name in inputs if mean_corr[name] is not None), key=lambda name: abs(mean_corr[name]))
    print(f"largest mean daily rank correlation with a feature: {closest} {mean_corr[closest]:+.3f}")

    def scored(name: str, predictions: pl.DataFrame) -> None:
        rank_ic, ceiling = score_predictions(predictions)["rank_ic"][0], canaries.oracle_rank_ic(predictions, oracle)
        print(f"  {name:<28} rank IC {rank_ic:+.4f}  oracle on its rows {ceiling:.4f}  share {rank_ic / ceiling:+.2f}", flush=True)

    for variant in ("raw", "per_date"):
        print(f"{variant}:")
        by_horizon: dict[int, dict[str, pl.DataFrame]] = {}
        for horizon in HORIZONS:
            design = oof.design_panel(features, labels, horizon)
            raw_label = design.frame.select(c.DATE, c.TICKER, LABEL)
            by_horizon[horizon] = {}
            for model in MODELS:
                variant_params = dataclasses.replace(params, per_date_trees=variant == "per_date")
                fitted = oof.fit_oof(model_input_view(design, model, variant), folds, model, horizon, variant_params)
                predictions = fitted.predictions.drop(LABEL).join(raw_label, on=[c.DATE, c.TICKER])
                by_horizon[horizon][model] = predictions
                scored(f"{model} {horizon}d", predictions)
        stacks = {"stack": by_horizon}
        if variant == "per_date":
            # The stack with Ridge on raw inputs (the trees per date): the lab's choice.
            raw_ridge = {h: {**models, RIDGE: oof.fit_oof(oof.design_panel(features, labels, h), folds, RIDGE, h, params)
                             .predictions} for h, models in by_horizon.items()}
            stacks["stack, ridge raw"] = raw_ridge
        for name, members in stacks.items():
            result = stack_and_combine(members, folds, features)
            for horizon, frame in result.per_horizon.items():
                scored(f"{name} {horizon}d", frame)


if __name__ == "__main__":
    main()
