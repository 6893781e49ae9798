"""The names of the lab's base models (one partition each); kept free of heavy imports (sklearn, xgboost,
lightgbm) so that the partitions, and every Dagster process that loads them, can name the models cheaply."""

from typing import Final

RIDGE: Final = "ridge"
XGBOOST: Final = "xgboost"
LIGHTGBM: Final = "lightgbm"
MODELS: Final = (RIDGE, XGBOOST, LIGHTGBM)
# The models that read inputs and train on labels normalised per date (model_view).
PER_DATE_MODELS: Final = frozenset({XGBOOST, LIGHTGBM})
