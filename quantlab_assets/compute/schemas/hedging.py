"""The deep-hedging study: simulated environments, trained policies, and their evaluation."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl


class HedgingPathsSchema(pa.DataFrameModel):
    """One simulated environment: spot and cost rate per path and step (compute/hedging/environments.py)."""

    environment: pl.String
    path: pl.Int32 = pa.Field(ge=0)
    step: pl.Int32 = pa.Field(ge=0)
    spot: pl.Float64 = pa.Field(gt=0, description="Underlying price at the step's close.")
    cost_rate: pl.Float64 = pa.Field(ge=0, description="Proportional cost of a trade at the step (squeezes multiply it).")
    premium: pl.Float64 = pa.Field(gt=0, description="The call's price at t = 0 (Black-Scholes at the diffusion vol).")

    class Config:
        strict = True


class HedgePolicySchema(pa.DataFrameModel):
    """One trained policy: the selected checkpoint and what it saw (compute/hedging/training.py)."""

    policy: pl.String = pa.Field(unique=True)
    method: pl.String = pa.Field(isin=["erm", "irm_head", "vrex"])
    strength: pl.Float64 = pa.Field(ge=0)
    seed: pl.Int64 = pa.Field(ge=0)
    state: pl.Binary = pa.Field(description="torch.save of the selected state_dict.")
    state_sha: pl.String
    erm_state_sha: pl.String = pa.Field(nullable=True, description="irm_head: the ERM checkpoint it started from.")
    best_iteration: pl.Int64 = pa.Field(ge=0)
    validation_cvar: pl.Float64 = pa.Field(description="CVaR-95 on `high` of the selected checkpoint.")
    seen_environments: pl.String = pa.Field(description="JSON {environment: fingerprint} of training + selection data.")
    history: pl.String = pa.Field(description="JSON rows: iteration, objective, penalty, per-environment risk, validation CVaR.")
    config_hash: pl.String

    class Config:
        strict = True


class HedgingMetricsSchema(pa.DataFrameModel):
    """Per policy x environment evaluation (compute/hedging/evaluation.py); null where undefined."""

    policy: pl.String
    method: pl.String
    strength: pl.Float64
    seed: pl.Int64
    environment: pl.String
    cvar95: pl.Float64
    var95: pl.Float64
    mean_pnl: pl.Float64
    std_pnl: pl.Float64 = pa.Field(ge=0)
    sharpe: pl.Float64 = pa.Field(nullable=True)
    turnover: pl.Float64 = pa.Field(ge=0)
    msi: pl.Float64 = pa.Field(nullable=True, ge=0, le=1)

    class Config:
        strict = True
