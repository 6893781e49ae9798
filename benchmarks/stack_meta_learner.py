"""The stack's meta-learner and calibrator, the lab's against seed 004's, on a stored run's out-of-fold predictions.

Reads the six `oof_predictions`, the `labels` months and the `cv_folds` of one universe from a data directory
(command 1's: `./dagster_home/data`), stacks them three times with `stacking.stack_and_combine`: the lab's
default (non-negative meta-learner weights, centred isotonic calibration), with seed 004's isotonic step
function (`centred_calibration` false), and with seed 004's unconstrained Ridge (`meta_positive` false), and
prints, per horizon, the out-of-fold rank IC of each stack and of each member per walk-forward fold, with the
meta-learner's weights per fold. Nothing is refitted but the stack: a few seconds.

    .venv/bin/python benchmarks/stack_meta_learner.py --data-dir dagster_home/data --universe synthetic
"""

from __future__ import annotations

import numpy as np
import polars as pl

from quantlab_assets.compute.models import cv, stacking
from quantlab_assets.compute.models.base_models import MODELS
from quantlab_assets.compute.models.metrics import score_predictions
from quantlab_assets.compute.storage import read_parquet_file, read_parquet_files
from quantlab_assets.defs.partitions import MODEL_HORIZONS

from harness import stored_run


def _rank_ic_by_fold(frame: pl.DataFrame) -> dict[int | None, float | None]:
    by_fold = score_predictions(frame, by=[cv.FOLD_ID]).sort(cv.FOLD_ID)
    return {None: score_predictions(frame)["rank_ic"][0], **dict(zip(by_fold[cv.FOLD_ID], by_fold["rank_ic"]))}


def _cell(value: float | None) -> str:
    return f"{value:+.4f}" if value is not None else "   null"


def main() -> None:
    layout, universe_name = stored_run(__doc__.split("\n\n")[0])
    oof: dict[int, dict[str, pl.DataFrame]] = {}
    for horizon in MODEL_HORIZONS:
        oof[horizon] = {model: read_parquet_file(layout.keyed_file("oof_predictions", universe_name, f"{model}_{horizon}d"))
                        for model in MODELS}
    labels = read_parquet_files(sorted((layout.asset_dir("labels") / universe_name).glob("*.parquet")))
    folds = read_parquet_file(layout.partition_file("cv_folds", universe_name))
    variants = {"stack, the lab's": stacking.StackParams(),
                "stack, step calibrator": stacking.StackParams(centred_calibration=False),
                "stack, unconstrained": stacking.StackParams(meta_positive=False)}
    stacks = {name: stacking.stack_and_combine(oof, folds, labels, params=params) for name, params in variants.items()}
    for horizon in sorted(oof):
        rows = {f"{model} (member)": _rank_ic_by_fold(oof[horizon][model]) for model in MODELS}
        for name, result in stacks.items():
            rows[name] = _rank_ic_by_fold(result.per_horizon[horizon])
        folds_seen = sorted({f for scores in rows.values() for f in scores if f is not None})
        print(f"\n{horizon}d: out-of-fold rank IC, all folds and per walk-forward fold")
        print(f"  {'':24s} {'all':>8s} " + " ".join(f"{'fold ' + str(f):>8s}" for f in folds_seen))
        for name, scores in rows.items():
            print(f"  {name:24s} {_cell(scores[None]):>8s} " + " ".join(f"{_cell(scores.get(f)):>8s}" for f in folds_seen))
        for name in ("stack, the lab's", "stack, unconstrained"):
            weights = "; ".join(f"fold {fit.fold_id}: " + ", ".join(f"{w:.1f}" for w in fit.meta.coef_)
                                for fit in stacks[name].fits if fit.horizon == horizon)
            print(f"  meta weights ({', '.join(MODELS)}), {name}: {weights}")
        levels = ", ".join(f"{np.unique(fit.calibrator.levels).size}" for fit in stacks["stack, step calibrator"].fits
                           if fit.horizon == horizon)
        print(f"  distinct alphas of the step calibrator per fold: {levels}")


if __name__ == "__main__":
    main()
