"""Portfolio and backtest through Dagster on real cleaned bars of the synthetic universe, with a seeded random
stacked alpha and meta-labels standing in for the model stack (their schema, not their skill): every strategy
partition, the metrics over the set, and the HTML report with every section and figure."""

import datetime as dt
from html.parser import HTMLParser
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.backtest.report import FIGURE_IDS, PBO_FIGURE_ID, SECTION_IDS
from quantlab_assets.compute.backtest.trials import DESIGN_TRIALS
from quantlab_assets.compute.models.cv import CvParams, make_folds
from quantlab_assets.compute.portfolio.names import BUY_AND_HOLD, EQUAL, LONG_SHORT, QP, STRATEGY_NAMES
from quantlab_assets.compute.regimes.labels import REGIME_NAMES
from quantlab_assets.defs.assets.data import cleaned_bars, raw_ohlcv, universe
from quantlab_assets.defs.assets.portfolio import (
    backtest,
    backtest_metrics,
    backtest_report,
    market_regimes,
    sequence_classifier_probabilities,
    target_weights,
)
from quantlab_assets.defs.io_managers import MissingUpstreamPartitionError, UniverseFrames
from quantlab_assets.defs.partitions import oof_partitions, same_universe, universe_partitions
from quantlab_assets.defs.resources import MlflowTrackingResource
from quantlab_assets_tests.defs.conftest import lab_resources, range_tags

ALPHA_START = "2007-01-01"


def _alpha_rows(bars: pl.DataFrame) -> pl.DataFrame:
    return bars.filter(pl.col(c.DATE) >= pl.lit(ALPHA_START).str.to_date()).select(c.DATE, c.TICKER).sort(c.DATE, c.TICKER)


@dg.asset(name="stacked_alpha", partitions_def=universe_partitions,
          ins={"cleaned_bars": dg.AssetIn(partition_mapping=same_universe)})
def fake_stacked_alpha(context: dg.AssetExecutionContext, cleaned_bars: UniverseFrames) -> UniverseFrames:
    rows = _alpha_rows(cleaned_bars[context.partition_key])
    rng = np.random.default_rng(1)
    alpha = np.clip(rng.normal(0, 30, (rows.height, 2)), -1000, 1000)
    return {context.partition_key: rows.with_columns(
        pl.Series("alpha_21d", alpha[:, 0]), pl.Series("alpha_63d", alpha[:, 1]),
        pl.Series("alpha_combined", 0.7 * alpha[:, 0] + 0.3 * alpha[:, 1]),
        pl.lit(900.0).alias("var_21d"), pl.lit(2500.0).alias("var_63d"))}


@dg.asset(name="meta_labels", partitions_def=universe_partitions,
          ins={"cleaned_bars": dg.AssetIn(partition_mapping=same_universe)})
def fake_meta_labels(context: dg.AssetExecutionContext, cleaned_bars: UniverseFrames) -> UniverseFrames:
    rows = _alpha_rows(cleaned_bars[context.partition_key])
    rng = np.random.default_rng(2)
    return {context.partition_key: rows.with_columns(
        pl.Series("side", rng.choice([-1, 1], rows.height), dtype=pl.Int8),
        pl.Series("meta_probability", rng.random(rows.height)))}


@dg.asset(name="barrier_probabilities", partitions_def=universe_partitions,
          ins={"cleaned_bars": dg.AssetIn(partition_mapping=same_universe)})
def fake_barrier_probabilities(context: dg.AssetExecutionContext, cleaned_bars: UniverseFrames) -> UniverseFrames:
    # From the first bar on (the classifier's folds start before the alpha's); a few rows clear 0.95.
    rows = cleaned_bars[context.partition_key].select(c.DATE, c.TICKER).sort(c.DATE, c.TICKER)
    return {context.partition_key: rows.with_columns(
        pl.Series("barrier_probability", np.random.default_rng(3).beta(2, 2, rows.height)))}


# Optional inputs of the portfolio assets, never materialised here except by writing their files.
OPTIONAL_UPSTREAM = [dg.AssetSpec(name, partitions_def=universe_partitions)
                     for name in ("regime_labels", "tbm_classifier", "live_track_record", "cv_folds",
                                  "hyperparameter_search", "forecaster_transformer", "forecaster_tft",
                                  "forecaster_quantile", "supcon_probe", "rl_evaluation")]
OPTIONAL_UPSTREAM.append(dg.AssetSpec("oof_predictions", partitions_def=oof_partitions))
ASSETS = [universe, raw_ohlcv, cleaned_bars, fake_stacked_alpha, fake_meta_labels, fake_barrier_probabilities,
          target_weights, backtest, backtest_metrics, backtest_report, *OPTIONAL_UPSTREAM]


class _Ids(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.ids |= {value for key, value in attrs if key == "id" and value}


@pytest.mark.slow
def test_every_strategy_backtests_and_the_report_has_every_section(
    instance: dg.DagsterInstance, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # MLflow's file store: creating the default SQLite store's tables takes about 10 s, the file store none.
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    tracking_uri = f"file://{tmp_path / 'mlruns'}"
    resources = {**lab_resources(data_dir, "2008-06-30"), "mlflow": MlflowTrackingResource(tracking_uri=tracking_uri)}
    assert dg.materialize([universe], partition_key="synthetic", instance=instance, resources=resources).success
    assert dg.materialize(ASSETS, selection=["raw_ohlcv", "cleaned_bars", "rejected_bars"], instance=instance,
                          resources=resources, tags=range_tags("2005-01-01", "2008-06-01", "synthetic")).success
    assert dg.materialize(ASSETS, selection=["stacked_alpha", "meta_labels", "barrier_probabilities"], partition_key="synthetic",
                          instance=instance, resources=resources).success

    for strategy in STRATEGY_NAMES:
        run = dg.materialize(ASSETS, selection=["target_weights", "backtest", "backtest_positions", "backtest_trades"],
                             partition_key=f"{strategy}|synthetic", instance=instance, resources=resources)
        assert all(e.passed for e in run.get_asset_check_evaluations()), strategy
    daily = pl.read_parquet(data_dir / "backtest" / "synthetic" / "qp_optimal.parquet")
    alpha_dates = pl.read_parquet(data_dir / "stacked_alpha" / "synthetic.parquet")[c.DATE]
    assert (daily[c.DATE].min(), daily[c.DATE].max()) == (alpha_dates.min(), alpha_dates.max())
    assert daily["cost"].sum() > 0
    weights = pl.read_parquet(data_dir / "target_weights" / "synthetic" / "qp_optimal.parquet")
    assert weights.group_by(c.DATE).agg(pl.col("weight").sum())["weight"].is_between(1 - 1e-9, 1 + 1e-9).all()
    assert weights["weight"].max() <= 0.2 + 1e-12 and weights["weight"].min() >= 0.02 - 1e-6

    # The execution model is run config: equal weight again with twice the costs, a 2-bar delay, monthly rebalancing.
    equal_path = data_dir / "backtest" / "synthetic" / f"{EQUAL}.parquet"
    default_equal = pl.read_parquet(equal_path)
    execution = {"costs_commission_bps": 20.0, "costs_slippage_bps": 10.0, "costs_spread_bps": 10.0, "delay": 2,
                 "rebalance": "monthly"}
    run = dg.materialize(ASSETS, selection=["backtest", "backtest_positions", "backtest_trades"],
                         partition_key=f"{EQUAL}|synthetic", instance=instance, resources=resources,
                         run_config={"ops": {"backtest": {"config": execution}}})
    assert all(e.passed for e in run.get_asset_check_evaluations())
    monthly = pl.read_parquet(equal_path)
    traded = monthly.filter(pl.col("turnover") > 0)
    # One trade a month, two bars after the month's first decision date, charged 40 bp of the traded notional.
    decisions = pl.read_parquet(data_dir / "target_weights" / "synthetic" / f"{EQUAL}.parquet")[c.DATE].unique().sort()
    firsts = decisions.filter(decisions.dt.truncate("1mo").is_first_distinct())
    bars = monthly[c.DATE]
    expected = [bars[i + 2] for i in bars.search_sorted(firsts).to_list() if i + 2 < bars.len()]
    assert 0 < traded.height < default_equal.filter(pl.col("turnover") > 0).height
    assert set(traded[c.DATE].to_list()) <= set(expected)
    assert ((traded["cost"] - traded["turnover"] * 40e-4).abs() < 1e-15).all()
    assert not monthly["net_return"].equals(default_equal["net_return"])

    # The threshold profiles on seed 002's sequence classifier instead, an optional input read once stored.
    barrier = pl.read_parquet(data_dir / "barrier_probabilities" / "synthetic.parquet")
    (data_dir / "tbm_classifier").mkdir()
    barrier.select(c.DATE, c.TICKER, pl.lit(0, dtype=pl.Int64).alias("fold_id"),
                   (1 - pl.col("barrier_probability")).alias("tbm_probability"),
                   pl.lit(0, dtype=pl.Int8).alias("hits_upper")).write_parquet(data_dir / "tbm_classifier" / "synthetic.parquet")
    reckless_path = data_dir / "target_weights" / "synthetic" / "reckless.parquet"
    on_barrier = pl.read_parquet(reckless_path)
    run = dg.materialize(ASSETS, selection=["target_weights"], partition_key="reckless|synthetic", instance=instance,
                         resources=resources, run_config={"ops": {"target_weights": {"config": {"primary_model": "tbm_classifier"}}}})
    assert all(e.passed for e in run.get_asset_check_evaluations())
    assert run.asset_materializations_for_node("target_weights")[0].metadata["primary_model"].value == "tbm_classifier"
    assert not pl.read_parquet(reckless_path).equals(on_barrier)

    # The CPCV folds, an optional input of the metrics and the report, stored as cv_folds would store them.
    bar_dates = pl.read_parquet(data_dir / "backtest" / "synthetic" / "qp_optimal.parquet").select(c.DATE)
    (data_dir / "cv_folds").mkdir()
    make_folds(bar_dates.with_columns(pl.lit("X").alias(c.TICKER), pl.lit(0.0).alias("label_21d"),
                                      (pl.col(c.DATE) + dt.timedelta(days=30)).alias("label_end_21d")),
               CvParams(embargo_days=5, horizons=(21,))).write_parquet(data_dir / "cv_folds" / "synthetic.parquet")
    # Two base models' out-of-fold predictions, as oof_predictions stores them (one file per model x horizon).
    (data_dir / "oof_predictions" / "synthetic").mkdir(parents=True)
    alpha_rows = pl.read_parquet(data_dir / "stacked_alpha" / "synthetic.parquet").select(c.DATE, c.TICKER)
    for seed, model in enumerate(("ridge_21d", "xgboost_63d")):
        alpha_rows.with_columns(pl.lit(0, dtype=pl.Int64).alias("fold_id"),
                                pl.Series("prediction", np.random.default_rng(seed).normal(size=alpha_rows.height)),
                                pl.lit(0.0).alias("label")).write_parquet(data_dir / "oof_predictions" / "synthetic" / f"{model}.parquet")
    # The heavy tracks, as their assets store them: the TFT's out-of-fold forecasts and an RL evaluation of two
    # policies (with its baselines); the transformer, quantile forecaster and SupCon probe are not stored.
    alpha_rows.with_columns(pl.lit(0, dtype=pl.Int64).alias("fold_id"),
                            pl.Series("prediction", np.random.default_rng(7).normal(size=alpha_rows.height)),
                            pl.lit(0.0).alias("label")).write_parquet(data_dir / "forecaster_tft" / "synthetic.parquet", mkdir=True)
    pl.DataFrame([{"strategy": name, "span": span, "kind": kind, "sharpe": 0.4}
                  for name, kind in (("ppo_aware_seed0", "rl"), ("sac_blind_seed0", "rl"), (EQUAL, "baseline"))
                  for span in ("train", "validation", "test")]).write_parquet(data_dir / "rl_evaluation" / "synthetic.parquet", mkdir=True)
    final = dg.materialize(ASSETS, selection=["backtest_metrics", "backtest_report"], partition_key="synthetic",
                           instance=instance, resources=resources)
    metrics = pl.read_parquet(data_dir / "backtest_metrics" / "synthetic.parquet")
    assert sorted(metrics["strategy"]) == sorted(STRATEGY_NAMES)
    # The DSR's N: the candidates (never the passive baselines), the two models, the two stored deep models (the TFT
    # and the sequence classifier stored above), the two RL policies and the configurations tried while choosing
    # the defaults; no search is stored.
    assert not metrics.filter(pl.col("strategy").is_in([EQUAL, BUY_AND_HOLD]))["candidate"].any()
    assert (metrics["n_trials"] == metrics["candidate"].sum() + 2 + 2 + 2 + len(DESIGN_TRIALS)).all()
    assert metrics["candidate"].sum() >= 2
    recorded = final.asset_materializations_for_node("backtest_metrics")[0].metadata
    assert recorded["n_trials"].value == metrics["n_trials"][0]
    assert recorded["trials_by_kind"].value == {"strategy": metrics["candidate"].sum(), "model": 2, "tuning": 0, "deep": 2, "rl": 2,
                                                   "design": len(DESIGN_TRIALS)}
    assert set(recorded["trial_inputs_not_stored"].value.split(", ")) == {
        "hyperparameter_search", "forecaster_transformer", "forecaster_quantile", "supcon_probe"}
    registry = pl.read_parquet(recorded["trial_registry_file"].value)
    assert registry.filter(pl.col("kind").is_in(["model", "deep"]))["sharpe"].is_not_null().all()
    assert sorted(registry.filter(pl.col("kind") == "deep")["trial"]) == ["forecaster_tft", "tbm_classifier"]
    assert registry.filter(pl.col("kind") == "rl")["sharpe"].is_null().all()
    overfitting = recorded["overfitting"].value
    assert 0 <= recorded["pbo"].value <= 1 and overfitting["pbo_splits"] == 12870
    assert len(overfitting["selection_path_sharpes"]) == 5  # 6 groups, 2 tested a split: 5 paths
    assert (metrics["dsr"].drop_nulls() <= metrics["psr"].drop_nulls() + 1e-12).all()

    report = final.asset_materializations_for_node("backtest_report")[0]
    path = Path(report.metadata["path"].value)
    # The UI shows the path and a markdown preview; no file:// link, which a browser refuses from the UI.
    assert not any("file://" in str(getattr(value, "value", "")) for value in report.metadata.values())
    assert isinstance(report.metadata["preview"], dg.MarkdownMetadataValue)
    assert str(path) in report.metadata["preview"].value and "| Sharpe ratio |" in report.metadata["preview"].value
    parser = _Ids()
    parser.feed(path.read_text(encoding="utf-8"))
    assert set(SECTION_IDS) <= parser.ids and "no-regimes" in parser.ids
    assert {"overfitting", "trials-counted", "pbo", "cpcv-paths", PBO_FIGURE_ID} <= parser.ids
    assert "2 deep-learning out-of-fold models, 2 RL policies" in path.read_text(encoding="utf-8")
    regime_figures = set(FIGURE_IDS["regime-analysis"])
    assert {f for ids in FIGURE_IDS.values() for f in ids} - regime_figures <= parser.ids
    # The long-short book: dollar neutral, it pays a borrow fee; every strategy is compared with equal weight.
    long_short = pl.read_parquet(data_dir / "backtest" / "synthetic" / f"{LONG_SHORT}.parquet")
    assert long_short["borrow_cost"].sum() > 0 and long_short["gross_exposure"].max() > 1.5
    assert long_short["invested"].abs().max() < 0.5
    assert metrics.filter(pl.col("strategy") == EQUAL)["sharpe_minus_equal_weight"].is_null().all()
    assert metrics.filter(pl.col("strategy") != EQUAL)["sharpe_minus_equal_weight"].is_not_null().all()
    assert "best-versus-equal-weight" in parser.ids
    assert final.asset_materializations_for_node("backtest_metrics")[0].metadata["best_vs_equal_weight"].value.startswith(
        "The best candidate")

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    run = client.get_run(report.metadata["mlflow_run_id"].value)
    assert run.data.metrics["qp_optimal.days"] == daily.height
    assert [a.path for a in client.list_artifacts(run.info.run_id, "report")] == ["report/synthetic.html"]
    # The execution model each strategy used, in the report's text and the run's parameters.
    html = path.read_text(encoding="utf-8")
    assert ("Equal weight: commission 20 bp + slippage 10 bp + spread 10 bp on traded notional; 2-bar execution delay; "
            "monthly rebalancing") in html
    assert "commission 10 bp + slippage 5 bp + spread 5 bp on traded notional; 1-bar execution delay; daily" in html
    assert run.data.params[f"{EQUAL}.costs.commission_bps"] == "20.0" and run.data.params[f"{EQUAL}.rebalance"] == "monthly"
    assert run.data.params[f"{QP}.costs.commission_bps"] == "10.0" and run.data.params[f"{QP}.delay"] == "1"


def test_regime_labels_are_read_when_the_optional_input_holds_the_universe() -> None:
    assert market_regimes({}, "synthetic") is None
    labels = pl.DataFrame({c.DATE: [dt.date(2020, 1, 2), dt.date(2020, 1, 3)], "regime_id": [0, 3],
                           "regime": pl.Series(["Low-Vol Bull", "Crisis"], dtype=pl.Enum(list(REGIME_NAMES)))})
    assert market_regimes({"synthetic": labels}, "synthetic").to_dicts() == [
        {c.DATE: dt.date(2020, 1, 2), "regime": "Low-Vol Bull"}, {c.DATE: dt.date(2020, 1, 3), "regime": "Crisis"}]


def test_the_sequence_classifier_as_primary_model_must_be_stored_first() -> None:
    with pytest.raises(MissingUpstreamPartitionError, match=r"materialise tbm_classifier \[synthetic\] first"):
        sequence_classifier_probabilities({}, "synthetic")
