"""Standard Dagster metadata of every stored frame: `dagster/row_count` (per partition) and
`dagster/column_schema` (from the asset's pandera model, so the UI's column table says what the code validates).

The IO manager attaches both to every materialisation (defs/io_managers.py), so no asset repeats them.
"""

from __future__ import annotations

import dagster as dg
import pandera.polars as pa
import polars as pl

from quantlab_assets.compute.schemas.desk import DecidedTargetsSchema, LiveTrackRecordSchema, OrdersSchema
from quantlab_assets.compute.schemas.portfolio import BacktestDailySchema, TargetWeightsSchema
from quantlab_assets.compute.schemas.data import CleanedBarsSchema, QuarantinedBarsSchema, RawBarsSchema, UniverseSchema
from quantlab_assets.compute.schemas.deep import (
    EmbeddingsSchema,
    PretrainingCurveSchema,
    QuantilePredictionsSchema,
    SupconCurveSchema,
    SupconProbabilitiesSchema,
    TbmProbabilitiesSchema,
    TftInterpretationSchema,
)
from quantlab_assets.compute.schemas.features import FeaturesSchema, FfdOrdersSchema, LabelsSchema
from quantlab_assets.compute.schemas.hedging import HedgePolicySchema, HedgingMetricsSchema, HedgingPathsSchema
from quantlab_assets.compute.schemas.models import (
    BarrierProbabilitiesSchema,
    BaseModelFitsSchema,
    CvFoldsSchema,
    HyperparameterTrialsSchema,
    MetaLabelsSchema,
    ModelScorecardSchema,
    OofPredictionsSchema,
    StackedAlphaSchema,
)
from quantlab_assets.compute.schemas.regimes import (
    MarketStateSchema,
    RegimeClustersSchema,
    RegimeHmmParamsSchema,
    RegimeHmmSchema,
    RegimeLabelsSchema,
)

ROW_COUNT = "dagster/row_count"
COLUMN_SCHEMA = "dagster/column_schema"

# The schema each asset's frames are validated against (the asset bodies call validate/schema_failures
# with the same model).
ASSET_SCHEMAS: dict[str, type[pa.DataFrameModel]] = {
    "universe": UniverseSchema,
    "raw_ohlcv": RawBarsSchema,
    "cleaned_bars": CleanedBarsSchema,
    "rejected_bars": QuarantinedBarsSchema,
    "features": FeaturesSchema,
    "ffd_orders": FfdOrdersSchema,
    "labels": LabelsSchema,
    "market_state": MarketStateSchema,
    "regime_hmm": RegimeHmmSchema,
    "regime_hmm_params": RegimeHmmParamsSchema,
    "regime_clusters": RegimeClustersSchema,
    "regime_labels": RegimeLabelsSchema,
    "cv_folds": CvFoldsSchema,
    "oof_predictions": OofPredictionsSchema,
    "base_model_fits": BaseModelFitsSchema,
    "stacked_alpha": StackedAlphaSchema,
    "live_alpha": StackedAlphaSchema,
    "model_scorecard": ModelScorecardSchema,
    "encoder_transfer_scorecard": ModelScorecardSchema,
    "meta_labels": MetaLabelsSchema,
    "barrier_probabilities": BarrierProbabilitiesSchema,
    "hyperparameter_search": HyperparameterTrialsSchema,
    "tbm_classifier": TbmProbabilitiesSchema,
    "forecaster_quantile": QuantilePredictionsSchema,
    "tft_interpretation": TftInterpretationSchema,
    "masked_encoder": PretrainingCurveSchema,
    "embeddings": EmbeddingsSchema,
    "supcon_encoder": SupconCurveSchema,
    "supcon_probe": SupconProbabilitiesSchema,
    "target_weights": TargetWeightsSchema,
    "backtest": BacktestDailySchema,
    "hedging_environments": HedgingPathsSchema,
    "hedge_policy": HedgePolicySchema,
    "hedging_scorecard": HedgingMetricsSchema,
    "target_portfolio": DecidedTargetsSchema,
    "orders": OrdersSchema,
    "decision_ledger": DecidedTargetsSchema,
    "live_track_record": LiveTrackRecordSchema,
}


def table_schema(model: type[pa.DataFrameModel]) -> dg.TableSchema:
    """The pandera-polars model as Dagster's column table: name (a regex column shows its pattern), dtype,
    nullability and the field's description."""
    columns = []
    for name, column in model.to_schema().columns.items():
        description = column.description or ""
        if column.regex:
            description = f"every column matching {name}" + (f": {description}" if description else "")
        columns.append(dg.TableColumn(
            name=name, type=str(column.dtype), description=description or None,
            constraints=dg.TableColumnConstraints(nullable=bool(column.nullable)),
        ))
    return dg.TableSchema(columns=columns)


def column_schema(asset_key: dg.AssetKey, frame: pl.DataFrame) -> dg.TableSchema:
    """The asset's pandera model as a column table; the stored frame's own columns for an asset without one."""
    model = ASSET_SCHEMAS.get(asset_key.path[-1])
    if model is not None:
        return table_schema(model)
    return dg.TableSchema(columns=[dg.TableColumn(name=name, type=str(dtype)) for name, dtype in frame.schema.items()])
