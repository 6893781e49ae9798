"""Labels: forward, industry-relative, direction and triple-barrier labels of cleaned bars.

compute.py assembles every family per (date, ticker) with the end date each label uses (for purged
cross-validation); forward.py, direction.py and triple_barrier.py hold the families, vectorised over a
dense (trading days x tickers) grid (panel.py).
"""

from quantlab_assets.compute.labels.compute import (
    ATR_LOOKBACK_DAYS,
    LABEL_LOOKAHEAD_DAYS,
    LabelParams,
    compute_labels,
    direction_column,
    forward_return_column,
    label_end_column,
    relative_label_column,
)

__all__ = [
    "ATR_LOOKBACK_DAYS",
    "LABEL_LOOKAHEAD_DAYS",
    "LabelParams",
    "compute_labels",
    "direction_column",
    "forward_return_column",
    "label_end_column",
    "relative_label_column",
]
