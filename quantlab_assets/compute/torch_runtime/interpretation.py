"""What a trained TFT attends to, per walk-forward fold, over the fold's out-of-fold (test) windows:
the mean variable-selection weight of every input feature (the TFT's feature importance) and the mean
interpretable-attention weight of every lag of the window (lag 0 is the forecast day). Within a fold
and kind the weights sum to 1, as each window's do."""

from __future__ import annotations

import polars as pl
import torch

from quantlab_assets.compute.models import cv
from quantlab_assets.compute.torch_runtime.device import DeviceChoice
from quantlab_assets.compute.torch_runtime.tft import TftConfig
from quantlab_assets.compute.torch_runtime.oof_engine import fold_starts, walk_forward_folds
from quantlab_assets.compute.torch_runtime.windows import WindowPanel, gather_windows

VARIABLE_SELECTION = "variable_selection"
ATTENTION = "attention"
INTERPRETATION_COLUMNS = (cv.FOLD_ID, "kind", "name", "weight")


@torch.no_grad()
def tft_interpretation(
    panel: WindowPanel,
    folds: pl.DataFrame,
    config: TftConfig,
    states: dict[int, dict[str, torch.Tensor]],
    device: DeviceChoice,
    batch_size: int,
    horizon: int = 21,
) -> pl.DataFrame:
    """INTERPRETATION_COLUMNS rows for every fold of `states` (the best weights fit_oof_transformer kept)."""
    model = config.build().to(device.device).eval()
    on_device = panel.to(device.device)
    lags = [f"lag_{lag}" for lag in range(panel.seq_len - 1, -1, -1)]  # window position 0 is the oldest day
    parts = []
    for fold_id, fold in walk_forward_folds(folds, horizon):
        if fold_id not in states:
            continue
        model.load_state_dict(states[fold_id])
        test = fold_starts(panel, fold, cv.TEST).to(device.device)
        variable_sum = torch.zeros(panel.values.shape[2], dtype=torch.float64, device=device.device)
        attention_sum = torch.zeros(panel.seq_len, dtype=torch.float64, device=device.device)
        for first in range(0, test.shape[0], batch_size):
            parts_of_batch = model.interpret(gather_windows(on_device, test[first : first + batch_size])[0])
            variable_sum += parts_of_batch["variable_weights"].double().mean(dim=1).sum(dim=0)
            attention_sum += parts_of_batch["attention"].double().sum(dim=0)
        count = max(test.shape[0], 1)
        for kind, names, total in ((VARIABLE_SELECTION, panel.features, variable_sum), (ATTENTION, lags, attention_sum)):
            parts.append(pl.DataFrame({
                cv.FOLD_ID: pl.Series([fold_id] * len(names), dtype=pl.Int64), "kind": [kind] * len(names),
                "name": list(names), "weight": (total / count).cpu().numpy(),
            }))
    return pl.concat(parts).select(INTERPRETATION_COLUMNS)
