"""The deep training engine: which windows a fold trains, validates and tests on (the purge and embargo of
cv_folds kept, a gap before validation), the best epoch's weights kept, and the prediction frame's keys."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
import torch
from torch import nn

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.models import cv
from quantlab_assets.compute.torch_runtime.device import choose_device
from quantlab_assets.compute.torch_runtime.oof_engine import (
    BestEpochModule,
    FoldWindows,
    OptimisationConfig,
    at_least_windows,
    fit_best_epoch,
    oof_folds,
    prediction_keys,
    train_out_of_fold,
    window_loader,
)
from quantlab_assets.compute.torch_runtime.windows import WindowPanel, build_window_panel, gather_windows

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SEQ_LEN = 3
DAYS = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(40)]
CPU = choose_device(allow_cuda=False)


@pytest.fixture(scope="module")
def panel() -> WindowPanel:
    """2 instruments x 40 days, one feature and one target: windows end on days 2..39 (index)."""
    rows = [(d, t) for t in ("A", "B") for d in DAYS]
    frame = pl.DataFrame(rows, schema={c.DATE: pl.Date, c.TICKER: pl.String}, orient="row").with_columns(
        pl.Series("f", np.linspace(0, 1, len(rows))), pl.Series("y", np.linspace(-1, 1, len(rows))))
    return build_window_panel(frame, ["f"], ["y"], SEQ_LEN)


def _segment(fold_id: int, role: str, first: int, last: int, horizon: int = 21, scheme: str = cv.WALK_FORWARD) -> dict:
    return {cv.SCHEME: scheme, cv.HORIZON_DAYS: horizon, cv.FOLD_ID: fold_id, cv.ROLE: role,
            cv.START: DAYS[first], cv.END: DAYS[last]}


def _folds(*segments: dict) -> pl.DataFrame:
    return pl.DataFrame(list(segments))


def _last_days(panel: WindowPanel, starts: torch.Tensor) -> set[int]:
    return set(panel.last_rows(starts)[1].tolist())


def test_a_fold_trains_on_its_train_dates_only_and_validates_after_a_gap(panel: WindowPanel) -> None:
    # Fold 0: train days 2..21, purged 22..25, embargoed 26..27 (no window of those days may be used), test 28..33.
    folds = _folds(_segment(0, cv.TRAIN, 2, 21), _segment(0, cv.PURGED, 22, 25), _segment(0, cv.EMBARGOED, 26, 27),
                   _segment(0, cv.TEST, 28, 33))
    [fold] = list(oof_folds(panel, folds, 21, validation_share=0.2, gap=3, enough=at_least_windows(1)))
    assert fold.fold_id == 0
    assert _last_days(panel, fold.train) == set(range(2, 22)) and _last_days(panel, fold.test) == set(range(28, 34))
    # 20 training days: the latest 20 % (days 18..21) validate; fit windows end more than 3 days before day 18.
    assert _last_days(panel, fold.validation) == {18, 19, 20, 21}
    assert _last_days(panel, fold.fit) == set(range(2, 15))
    assert fold.fit.shape[0] == 2 * 13 and fold.validation.shape[0] == 2 * 4  # both instruments


def test_folds_of_other_horizons_schemes_or_without_enough_windows_are_skipped(panel: WindowPanel) -> None:
    folds = _folds(
        _segment(0, cv.TRAIN, 2, 9), _segment(0, cv.TEST, 12, 14),          # 16 training windows: too few below
        _segment(1, cv.TRAIN, 2, 20), _segment(1, cv.TEST, 24, 26),         # trains
        _segment(2, cv.TRAIN, 2, 30),                                        # no test window
        _segment(3, cv.TRAIN, 2, 20, horizon=63), _segment(3, cv.TEST, 24, 26, horizon=63),
        _segment(4, cv.TRAIN, 2, 20, scheme=cv.CPCV), _segment(4, cv.TEST, 24, 26, scheme=cv.CPCV),
    )
    kept = list(oof_folds(panel, folds, 21, 0.2, 1, at_least_windows(20)))
    assert [fold.fold_id for fold in kept] == [1]


class ScriptedValidation(BestEpochModule):
    """A linear model trained on its squared output; the validation loss of epoch k is `script[k]`."""

    def __init__(self, panel: WindowPanel, script: list[float], optimisation: OptimisationConfig) -> None:
        super().__init__(nn.Linear(SEQ_LEN, 1), panel, optimisation, warmup_steps=1, total_steps=100)
        self.script = script
        self.weights_at_epoch: list[torch.Tensor] = []

    def training_loss(self, starts: torch.Tensor) -> torch.Tensor:
        windows, _ = gather_windows(self.panel, starts)
        return (self.model(windows[..., 0]) - 10.0).pow(2).mean()

    def validation_parts(self, starts: torch.Tensor) -> dict[str, torch.Tensor]:
        # Every batch reports the scripted loss, so the rows-weighted mean over batches is the script's value.
        return {"loss": torch.tensor(self.script[self.current_epoch])}

    def epoch_records(self, parts: list[dict], train_loss: float, val_loss: float) -> list[dict[str, float | int | str]]:
        self.weights_at_epoch.append(self.model.weight.detach().clone())
        return [{"epoch": int(self.current_epoch), "val_loss": val_loss, "rows": sum(p["rows"] for p in parts)}]


def test_the_best_state_is_the_epoch_of_lowest_validation_loss(panel: WindowPanel) -> None:
    optimisation = OptimisationConfig(lr=0.1, max_epochs=5, patience=2)
    module = ScriptedValidation(panel, [3.0, 1.0, 2.0, 0.5, 4.0], optimisation)
    torch.manual_seed(0)
    model = fit_best_epoch(module, window_loader(panel.starts[:40], 8, seed=1), window_loader(panel.starts[40:], 7, None),
                           optimisation, CPU)
    assert [r["val_loss"] for r in module.records] == [3.0, 1.0, 2.0, 0.5, 4.0]
    assert all(r["rows"] == panel.starts[40:].shape[0] for r in module.records)
    assert module.best_epoch == 3 and module.best_val_loss == 0.5
    # The weights kept are those after epoch 3's training, not the last epoch's, and the model holds them.
    assert torch.equal(module.best_state["weight"], module.weights_at_epoch[3])
    assert not torch.equal(module.weights_at_epoch[3], module.weights_at_epoch[4])
    assert torch.equal(model.weight.detach(), module.weights_at_epoch[3])


def test_early_stopping_ends_after_patience_epochs_without_improvement(panel: WindowPanel) -> None:
    optimisation = OptimisationConfig(lr=0.1, max_epochs=6, patience=1)
    module = ScriptedValidation(panel, [3.0, 1.0, 2.0, 0.5, 4.0, 0.1], optimisation)
    fit_best_epoch(module, window_loader(panel.starts[:40], 8, seed=1), window_loader(panel.starts[40:], 8, None),
                   optimisation, CPU)
    assert [r["epoch"] for r in module.records] == [0, 1, 2] and module.best_epoch == 1


def test_out_of_fold_training_gives_one_prediction_row_per_test_window(panel: WindowPanel) -> None:
    folds = _folds(_segment(0, cv.TRAIN, 2, 20), _segment(0, cv.TEST, 24, 27),
                   _segment(1, cv.TRAIN, 2, 28), _segment(1, cv.TEST, 32, 35))
    optimisation = OptimisationConfig(lr=0.1, max_epochs=2, patience=2, seed=5)

    def prepare(fold: FoldWindows):
        return (ScriptedValidation(panel, [1.0, 2.0], optimisation), window_loader(fold.fit, 8, optimisation.seed),
                window_loader(fold.validation, 8, None))

    def predict(model: nn.Module, fold: FoldWindows) -> pl.DataFrame:
        return prediction_keys(panel, fold).with_columns(pl.lit(1.0).alias("prediction"))

    fitted = train_out_of_fold(oof_folds(panel, folds, 21, 0.2, 1, at_least_windows(10)), optimisation, CPU, prepare,
                               predict, "nothing trained")
    frame = fitted.predictions
    assert frame.schema == pl.Schema({c.DATE: pl.Date, c.TICKER: pl.String, cv.FOLD_ID: pl.Int64, "prediction": pl.Float64})
    assert frame.height == 2 * 4 + 2 * 4 and frame.select(c.DATE, c.TICKER).is_unique().all()
    assert frame.filter(pl.col(cv.FOLD_ID) == 1)[c.DATE].unique().sort().to_list() == DAYS[32:36]
    assert set(frame[c.TICKER]) == {"A", "B"}
    assert fitted.best_epochs == {0: 0, 1: 0} and set(fitted.states) == {0, 1}
    with pytest.raises(ValueError, match="nothing trained"):
        train_out_of_fold(oof_folds(panel, folds, 63, 0.2, 1, at_least_windows(10)), optimisation, CPU, prepare,
                          predict, "nothing trained")
