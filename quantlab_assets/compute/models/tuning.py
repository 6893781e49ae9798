"""Hyper-parameter search for the triple-barrier classifier on purged, embargoed folds of the research
span only (seed 002 tuned on one split and reported the best trial as a win).

- Rows: only dates <= the universe's `validation_end`, and only rows whose label windows (the 21d
  label and the triple barrier) end by then, so no trial reads a price of the test span.
- Folds: the model stack's purged walk-forward scheme (cv.make_folds: 63-date embargo, purging by label
  end dates) rebuilt on those rows alone, `n_folds` splits of the 21d horizon.
- Trials: Optuna's TPE sampler (seeded) over the XGBoost classifier's space; the first trial is the
  seed-004 default, so the scorecard compares the best against it on the same folds. A trial's score
  is the mean log loss over its folds' test rows; after each fold the median pruner may stop a trial
  whose running score is worse than the median of earlier trials at the same fold.
- Use: the best parameters were chosen on rows up to `validation_end`, so they may predict only rows
  dated after it (`tuned_through`, stored with every trial): a classifier trained with them keeps the
  seed's defaults for every earlier row (classifier.TunedParams), else its out-of-fold score on the
  research span would include the selection.
- Honesty: the search says how many configurations were tried and how far the best lies from the
  default in units of the standard error of their per-fold differences, and counts the edge only when
  it clears the two-sided 95 % Student-t bar for that many folds (4.30 SE for 3 folds): with few folds and
  many trials the best one's edge is largely selection.
  It also scores the no-skill reference, the training rows' base rate predicted for every test row: a
  best trial that does not beat it has learned to predict the base rate, not the barrier.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.labels.compute import label_end_column
from quantlab_assets.compute.models import cv
from quantlab_assets.compute.models.barrier import HITS_UPPER
from quantlab_assets.compute.models.base_models import XGBOOST_INPUT, XGBoostParams
from quantlab_assets.compute.models.classifier import TunedParams
from quantlab_assets.compute.models.oof import DesignPanel, design_matrix, role_mask
from quantlab_assets.compute.params import described
from quantlab_assets.compute.stats import t_critical, t_statistic

# optuna is imported in the functions that use it: it takes about 0.3 s to import, and the models asset module,
# which every Dagster run process loads, imports this one for the tuned parameters.
if TYPE_CHECKING:
    import optuna

HORIZON: Final = 21
COMPLETE: Final = "complete"
PRUNED: Final = "pruned"
# An edge in standard errors counts only past the two-sided Student-t bar at this confidence for the folds' count.
EDGE_CONFIDENCE: Final = 0.95
TUNED_THROUGH: Final = "tuned_through"
TRIAL_COLUMNS: Final = ("trial", "state", "mean_log_loss", "folds_evaluated", "fold_log_losses", "params", "is_default",
                        TUNED_THROUGH)


@dataclass(frozen=True)
class TuningParams:
    """Search budget and shape. 20 trials x 3 folds: the synthetic universe's span in about the time of
    one out-of-fold fit per trial; a larger budget is a run-config change."""

    n_trials: int = described(20, "Optuna trials of the search.")
    n_folds: int = described(3, "Purged walk-forward folds each trial is scored on.")
    embargo_days: int = described(63, "Trading days purged between a tuning fold's training and test dates.")
    seed: int = described(42, "Seed of the TPE sampler.")
    pruner_startup_trials: int = described(
        5, "Trials that run every fold before the median pruner compares against them.")
    max_estimators: int = described(400, "Upper bound of the searched XGBoost tree count.")


def suggest_params(trial: optuna.Trial, max_estimators: int) -> XGBoostParams:
    """The XGBoost classifier's search space (seed 004's values lie inside it)."""
    return XGBoostParams(
        max_depth=trial.suggest_int("max_depth", 2, 8),
        n_estimators=trial.suggest_int("n_estimators", 50, max_estimators, step=50),
        learning_rate=trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
        subsample=trial.suggest_float("subsample", 0.5, 1.0),
        colsample_bytree=trial.suggest_float("colsample_bytree", 0.5, 1.0),
    )


def research_rows(design: DesignPanel, labels: pl.DataFrame, validation_end: object) -> tuple[DesignPanel, pl.DataFrame]:
    """The design rows and labels dated up to `validation_end` whose 21d label and triple barrier end by then."""
    ends = [label_end_column(HORIZON), "tb_end"]
    kept = labels.filter((pl.col(c.DATE) <= validation_end) & pl.all_horizontal(
        (pl.col(name) <= validation_end).fill_null(False) for name in ends))
    frame = design.frame.join(kept.select(c.DATE, c.TICKER), on=[c.DATE, c.TICKER], how="semi")
    return DesignPanel(frame, design.inputs), kept


@dataclass(frozen=True)
class SearchResult:
    """trials: TRIAL_COLUMNS, one row per trial; folds: the tuning folds (cv_folds' layout);
    best: the best complete trial's parameters; summary: the honesty figures."""

    trials: pl.DataFrame
    folds: pl.DataFrame
    best: XGBoostParams
    summary: dict[str, Any]


FitScore = Callable[[XGBoostParams, np.ndarray, np.ndarray, np.ndarray, np.ndarray], float]


def xgboost_log_loss(params: XGBoostParams, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                     y_test: np.ndarray) -> float:
    # Imported here: xgboost and sklearn take about 0.3 s to import, and every Dagster run process imports this module.
    from sklearn.metrics import log_loss
    from xgboost import XGBClassifier

    model = XGBClassifier(**vars(params), eval_metric="logloss").fit(x_train, y_train)
    return float(log_loss(y_test, model.predict_proba(x_test)[:, 1], labels=[0, 1]))


def search_barrier_classifier(
    design: DesignPanel,
    labels: pl.DataFrame,
    validation_end: object,
    params: TuningParams = TuningParams(),
    fit_score: FitScore = xgboost_log_loss,
) -> SearchResult:
    """Tune the classifier of `design` (barrier.barrier_panel) on the research span; see the module docstring.
    `fit_score(params, x_train, y_train, x_test, y_test)` -> log loss (a seam for tests to watch the rows)."""
    import optuna
    # Imported here: sklearn takes about 0.3 s to import, and every Dagster run process imports this module.
    from sklearn.metrics import log_loss

    research, kept_labels = research_rows(design, labels, validation_end)
    folds = cv.make_folds(kept_labels, cv.CvParams(walk_forward_splits=params.n_folds, embargo_days=params.embargo_days,
                                                   horizons=(HORIZON,), schemes=(cv.WALK_FORWARD,)))
    x = design_matrix(research, XGBOOST_INPUT)
    y = research.frame[HITS_UPPER].to_numpy()
    dates = research.frame[c.DATE]
    masks = []
    for fold_id in sorted(folds[cv.FOLD_ID].unique().to_list()):
        fold = folds.filter(pl.col(cv.FOLD_ID) == fold_id)
        train, test = role_mask(fold, dates, cv.TRAIN), role_mask(fold, dates, cv.TEST)
        if train.size and test.size and len(np.unique(y[train])) == 2:
            masks.append((train, test))
    if not masks:
        raise ValueError("hyperparameter search: no tuning fold has training rows with both outcomes and test rows")

    def objective(trial: optuna.Trial) -> float:
        candidate = suggest_params(trial, params.max_estimators)
        losses = []
        for step, (train, test) in enumerate(masks):
            losses.append(fit_score(candidate, x[train], y[train], x[test], y[test]))
            trial.set_user_attr("fold_log_losses", losses)
            trial.report(float(np.mean(losses)), step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return float(np.mean(losses))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="minimize", sampler=optuna.samplers.TPESampler(seed=params.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=params.pruner_startup_trials, n_warmup_steps=0),
    )
    # The seed's default first (its tree count capped by the space when a smaller budget is asked for).
    default = XGBoostParams(n_estimators=min(XGBoostParams().n_estimators, params.max_estimators))
    study.enqueue_trial({name: getattr(default, name) for name in
                         ("max_depth", "n_estimators", "learning_rate", "subsample", "colsample_bytree")})
    study.optimize(objective, n_trials=params.n_trials)
    trials = _trials_frame(study, validation_end)
    best = best_params(trials)
    base_rate = [float(log_loss(y[test], np.full(test.size, y[train].mean()), labels=[0, 1])) for train, test in masks]
    return SearchResult(trials, folds, best, _summary(trials, study.best_trial.number, base_rate))


def _trials_frame(study: optuna.Study, validation_end: object) -> pl.DataFrame:
    import optuna

    rows = []
    for trial in study.trials:
        losses = trial.user_attrs.get("fold_log_losses", [])
        rows.append({
            "trial": trial.number,
            "state": COMPLETE if trial.state == optuna.trial.TrialState.COMPLETE else PRUNED,
            "mean_log_loss": trial.value if trial.state == optuna.trial.TrialState.COMPLETE else None,
            "folds_evaluated": len(losses), "fold_log_losses": json.dumps(losses),
            "params": json.dumps(trial.params, sort_keys=True), "is_default": trial.number == 0,
            TUNED_THROUGH: validation_end,
        })
    return pl.DataFrame(rows, schema_overrides={"trial": pl.Int64, "mean_log_loss": pl.Float64,
                                               "folds_evaluated": pl.Int64, TUNED_THROUGH: pl.Date}).select(TRIAL_COLUMNS)


def _edge_in_se(reference: list[float], best: list[float]) -> float | None:
    """Mean per-fold loss gap reference - best (> 0: the best is better) over its standard error."""
    return t_statistic(np.array(reference) - np.array(best))


def _summary(trials: pl.DataFrame, best_trial: int, base_rate: list[float]) -> dict[str, Any]:
    """Configurations tried; the best's edge over the default and over the base rate, in standard errors."""
    fold_losses = {row["trial"]: json.loads(row["fold_log_losses"]) for row in trials.iter_rows(named=True)}
    edge = _edge_in_se(fold_losses[0], fold_losses[best_trial])
    skill = _edge_in_se(base_rate, fold_losses[best_trial])
    bar = t_critical(EDGE_CONFIDENCE, len(base_rate))
    return {
        "configurations_tried": trials.height,
        "complete": int((trials["state"] == COMPLETE).sum()),
        "pruned": int((trials["state"] == PRUNED).sum()),
        "folds": len(base_rate),
        "best_trial": best_trial,
        "best_mean_log_loss": float(trials.filter(pl.col("trial") == best_trial)["mean_log_loss"][0]),
        "default_mean_log_loss": trials.filter(pl.col("trial") == 0)["mean_log_loss"][0],
        "default_minus_best_se": edge,
        "base_rate_mean_log_loss": float(np.mean(base_rate)),
        "base_rate_minus_best_se": skill,
        "t_bar_se": bar,
        "skill": "beats the base rate" if skill is not None and skill > bar else "not distinguishable from the base rate",
        # Chosen among many, the best's edge must clear the t bar to count; the default itself may be best.
        "evidence": "best is the default" if best_trial == 0 else (
            "better than the default" if edge is not None and edge > bar else "not distinguishable from the default"),
    }


def best_params(trials: pl.DataFrame) -> XGBoostParams:
    """The parameters of a search's best trial (`SearchResult.trials`): the complete trial of lowest mean log
    loss, the earlier one on a tie, as Optuna chose it; the fields it did not search keep their defaults."""
    complete = trials.filter(pl.col("state") == COMPLETE)
    if complete.is_empty():
        raise ValueError("hyper-parameter search: no complete trial to take parameters from")
    best = complete.sort("mean_log_loss", "trial").row(0, named=True)
    return XGBoostParams(**json.loads(best["params"]))


def tuned_params(trials: pl.DataFrame, default: XGBoostParams) -> TunedParams:
    """The best trial's parameters of a stored search, for rows after the span they were tuned on; `default`
    (the seed's) for every row before."""
    through = trials[TUNED_THROUGH].unique()
    if through.len() != 1 or through[0] is None:
        raise ValueError(f"hyper-parameter search: the trials name {through.len()} tuned spans; expected one")
    return TunedParams(default=default, tuned=best_params(trials), tuned_through=through[0])


def tuned_params_json(result: SearchResult, universe: str, validation_end: object) -> str:
    return json.dumps({"universe": universe, "validation_end": str(validation_end),
                       "best_params": dataclasses.asdict(result.best), "summary": result.summary}, indent=2, sort_keys=True)
