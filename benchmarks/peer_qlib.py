"""The lab's out-of-fold models against Microsoft Qlib's Alpha158 + LightGBM on the planted synthetic market.

Question: on the lab's default synthetic market (universes/synthetic.yaml: 50 instruments from 2005-01-03,
seed 42, splits train_end 2014-12-31 and validation_end 2018-12-31), whose price signal a model of past
prices and volumes can learn (docs/studies.md), do the lab's out-of-fold LightGBM, XGBoost, Ridge and their
stack match or beat Qlib's standard Alpha158 + LightGBM benchmark, scored the same way?

Three stages:

1. Lab (this process, the lab's virtualenv): `planted_signal_models.build_planted_market` generates the
   market and runs it through the lab's cleaning, labels, features and folds; `oof_predictions` fits each
   base model out of fold for 21 days with the lab's default parameters (trees on per-date ranks, Ridge on
   raw inputs), and `stacking.stack_horizon` stacks them. The cleaned total-return bars (open, high, low,
   close, volume, and `adj_factor` as Qlib's `factor`) go to one CSV per instrument, with each
   instrument's membership span (first and last date a cross-section holds it).
2. Qlib (a subprocess in Qlib's own virtualenv, `qlib_alpha158_lgb.py`): the CSVs become Qlib's binary
   layout (read back through Qlib's API and checked equal), then the `Alpha158` handler with its default
   processors, `DatasetH` with segments train = start .. train_end, valid = .. validation_end, test = after,
   and `LGBModel` with the parameters of Qlib's `workflow_config_lightgbm_Alpha158.yaml`, early-stopped on
   valid. One difference from that configuration: the label. Qlib's default is the 1-day return
   `Ref($close, -2)/Ref($close, -1) - 1`; here it is the 21-day `Ref($close, -22)/Ref($close, -1) - 1`
   (`--qlib-label`), the return from the close after t to 21 closes later: Qlib's convention of a signal at
   close t traded at the next close. It is scored against the lab's target (below), which starts one close
   earlier; `--qlib-label 'Ref($close, -21)/$close - 1'` trains Qlib on exactly that window.
3. Scoring (this process): every model on the same rows, the rows after validation_end where every model
   has a prediction and the raw 21-day forward total return (`fwd_return_21d`, the log return from close t
   to close t+21; its ranks are those of the simple return) is known. Per model: the mean daily
   cross-sectional Spearman rank IC (`metrics.score_predictions`), the planted price signal's rank IC on
   the same rows (`canaries.oracle_rank_ic`) and the model's share of it, and the mean daily rank-IC
   difference to Qlib with a 95 % interval: the daily differences of 21-day labels overlap, so the dates
   are cut into contiguous blocks of `--block-days` and `stats.paired_difference` gives the Student-t
   interval over the block means; `stats.difference_verdict` names it.

What differs by design between the two sides, and stays: the lab refits on expanding walk-forward
windows (5 folds, purged, 63-date embargo), so its test predictions come from models that saw data up to
63 dates before each test window; Qlib's workflow fits once on the train segment and reads the valid
segment only to stop boosting (its segments are not purged: the last training labels reach 22 dates
into valid). Alpha158 reads `$vwap`, which these bars (like Qlib's US data) lack: its VWAP0 column is
empty. Both sides see the same cleaned bars and the same membership.

The Qlib virtualenv (pyqlib 0.9.7, lightgbm; about 1.4 GB) is created on first use at `--qlib-venv`
(default ~/.cache/quantlab_assets/qlib-0.9.7-venv) with `python -m venv` and pip; the lab's virtualenv is
never touched. Intermediate files (CSVs, Qlib's binary data, predictions) stay in `--workdir`.

    .venv/bin/python benchmarks/peer_qlib.py          # the default market, the lab's 400 trees, Qlib's <= 1000
    .venv/bin/python benchmarks/peer_qlib.py --n-instruments 10 --end 2009-12-31 --train-end 2007-06-29 \\
        --validation-end 2008-06-30 --trees 20 --output /tmp/peer_qlib_smoke.json      # smoke run
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from harness import git_commit
from planted_signal_models import DEFAULT_END, PlantedMarket, base_model_params, build_planted_market, oof_predictions

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.membership import cross_section_rows
from quantlab_assets.compute.data.synthetic import planted_oracle_rank_ic
from quantlab_assets.compute.labels.compute import forward_return_column
from quantlab_assets.compute.models import canaries, stacking
from quantlab_assets.compute.models.metrics import LABEL, PREDICTION, per_date_scores, score_predictions
from quantlab_assets.compute.models.names import MODELS
from quantlab_assets.compute.stats import difference_verdict, paired_difference
from quantlab_assets.compute.universe import PACKAGED_UNIVERSE_DIR, load_universe_spec, synthetic_params

HORIZON = 21
QLIB = "qlib_alpha158_lightgbm"
STACK = "stack"
QLIB_VERSION = "0.9.7"
QLIB_REQUIREMENTS = (f"pyqlib=={QLIB_VERSION}", "lightgbm")
DEFAULT_QLIB_VENV = Path.home() / ".cache" / "quantlab_assets" / f"qlib-{QLIB_VERSION}-venv"
QLIB_LABEL = "Ref($close, -22)/Ref($close, -1) - 1"
# Qlib's LGBModel default: at most this many rounds, early stopping decides.
QLIB_NUM_BOOST_ROUND = 1000
WORKER = Path(__file__).resolve().with_name("qlib_alpha158_lgb.py")
CONFIDENCE = 0.95


def ensure_qlib_venv(venv: Path) -> Path:
    """The Python of a virtualenv with Qlib at `venv`, created (or repaired) with pip when Qlib is not importable."""
    python = venv / "bin" / "python"
    probe = f"import lightgbm, qlib; assert qlib.__version__ == {QLIB_VERSION!r}"
    if python.exists() and subprocess.run([python, "-c", probe], capture_output=True).returncode == 0:
        return python
    print(f"creating the Qlib virtualenv at {venv} (pip install {' '.join(QLIB_REQUIREMENTS)}) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([python, "-m", "pip", "install", "--quiet", *QLIB_REQUIREMENTS], check=True)
    return python


def export_bars(panel: PlantedMarket, workdir: Path) -> int:
    """One CSV per instrument of the cleaned bars (date, open, high, low, close, volume, factor) under
    `workdir/bars`, and `workdir/spans.csv`: each instrument's first and last date in a cross-section.
    Returns the number of instruments with a span."""
    bars_dir = workdir / "bars"
    bars_dir.mkdir(parents=True, exist_ok=True)
    columns = [c.DATE, c.OPEN, c.HIGH, c.LOW, c.CLOSE, c.VOLUME, pl.col(c.ADJ_FACTOR).alias("factor")]
    for (ticker,), rows in panel.bars.sort(c.DATE).partition_by(c.TICKER, as_dict=True).items():
        rows.select(columns).write_csv(bars_dir / f"{ticker}.csv")
    spans = (
        cross_section_rows(panel.bars, panel.market.universe)
        .group_by(c.TICKER)
        .agg(pl.col(c.DATE).min().alias("start"), pl.col(c.DATE).max().alias("end"))
        .sort(c.TICKER)
    )
    spans.write_csv(workdir / "spans.csv")
    return spans.height


def lab_predictions(panel: PlantedMarket, trees: int | None) -> dict[str, pl.DataFrame]:
    """The lab's out-of-fold predictions at HORIZON: each base model with its default inputs, and the stack."""
    params = base_model_params(trees)
    members = {}
    for model in MODELS:
        members[model] = oof_predictions(panel, model, HORIZON, params)
        print(f"  lab {model}: {members[model].height} out-of-fold predictions", flush=True)
    wide = stacking.with_label_ends(stacking.wide_oof(members), panel.labels, HORIZON)
    stacked, _fits = stacking.stack_horizon(wide, panel.folds, HORIZON)
    return {**members, STACK: stacked}


def run_qlib(python: Path, workdir: Path, args: argparse.Namespace) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Stage 2 in Qlib's virtualenv: its test predictions (date, ticker, prediction) and its run summary."""
    day = dt.timedelta(days=1)
    config = {
        "workdir": str(workdir), "threads": args.threads, "label": args.qlib_label,
        "num_boost_round": args.trees or QLIB_NUM_BOOST_ROUND,
        "start": args.start.isoformat(), "end": args.end.isoformat(), "train_end": args.train_end.isoformat(),
        "segments": {
            "train": [args.start.isoformat(), args.train_end.isoformat()],
            "valid": [(args.train_end + day).isoformat(), args.validation_end.isoformat()],
            "test": [(args.validation_end + day).isoformat(), args.end.isoformat()],
        },
    }
    (workdir / "qlib_config.json").write_text(json.dumps(config, indent=2) + "\n")
    # The worker imports Qlib's packages only: nothing of the lab's environment may shadow them.
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    log = workdir / "qlib.log"
    with log.open("w") as sink:
        finished = subprocess.run([python, WORKER, workdir / "qlib_config.json"], cwd=workdir, env=env, stdout=sink,
                                  stderr=subprocess.STDOUT)
    if finished.returncode != 0:
        print(log.read_text()[-5000:], file=sys.stderr)
        raise RuntimeError(f"the Qlib stage failed (exit status {finished.returncode}); its log: {log}")
    predictions = pl.read_csv(workdir / "predictions.csv", schema_overrides={c.DATE: pl.Date, c.TICKER: pl.String})
    return predictions, json.loads((workdir / "qlib_run.json").read_text())


def common_rows(predictions: dict[str, pl.DataFrame], labels: pl.DataFrame, after: dt.date) -> pl.DataFrame:
    """(date, ticker, label) after `after` where every frame of `predictions` has a prediction and the raw
    forward return (the label scored) is known."""
    rows = labels.select(c.DATE, c.TICKER, pl.col(forward_return_column(HORIZON)).alias(LABEL)).filter(
        (pl.col(c.DATE) > after) & pl.col(LABEL).is_not_null()
    )
    for frame in predictions.values():
        rows = rows.join(frame.drop_nulls(PREDICTION).select(c.DATE, c.TICKER), on=[c.DATE, c.TICKER], how="semi")
    return rows.sort(c.DATE, c.TICKER)


def block_means(daily: np.ndarray, block_days: int) -> np.ndarray:
    """Means of `daily` over contiguous blocks of about `block_days` values (sizes differ by at most one)."""
    n_blocks = max(len(daily) // block_days, 1)
    return np.array([block.mean() for block in np.array_split(daily, n_blocks)])


def score(predictions: dict[str, pl.DataFrame], rows: pl.DataFrame, oracle: pl.DataFrame,
          block_days: int) -> tuple[dict[str, dict[str, Any]], float | None]:
    """Per model on `rows`: the scorecard's rank IC, its share of the oracle's, and the mean daily rank-IC
    difference to Qlib with its block interval; and the oracle's rank IC on `rows`."""
    on_rows = {
        name: rows.join(frame.select(c.DATE, c.TICKER, PREDICTION), on=[c.DATE, c.TICKER]) for name, frame in predictions.items()
    }
    oracle_ic = canaries.oracle_rank_ic(on_rows[QLIB], oracle)
    daily = {name: per_date_scores(frame.lazy()).select(c.DATE, "rank_ic").collect() for name, frame in on_rows.items()}
    results = {}
    for name, frame in on_rows.items():
        card = score_predictions(frame).row(0, named=True)
        result = {"rank_ic": card["rank_ic"], "rank_icir": card["rank_icir"], "n_rows": card["n_rows"],
                  "n_dates_ic_defined": card["n_dates_ic_defined"],
                  "oracle_share": card["rank_ic"] / oracle_ic if card["rank_ic"] is not None and oracle_ic else None}
        if name != QLIB:
            paired = daily[name].join(daily[QLIB], on=c.DATE, suffix="_qlib").drop_nulls().sort(c.DATE)
            interval = paired_difference(block_means(paired["rank_ic"].to_numpy(), block_days),
                                         block_means(paired["rank_ic_qlib"].to_numpy(), block_days), CONFIDENCE)
            result |= {"minus_qlib": interval.mean, "minus_qlib_low": interval.low, "minus_qlib_high": interval.high,
                       "n_dates_paired": paired.height, "n_blocks": max(paired.height // block_days, 1),
                       "verdict_vs_qlib": difference_verdict(interval.low, interval.high)}
        results[name] = result
    return results, oracle_ic


def print_table(results: dict[str, dict[str, Any]], oracle_ic: float | None, rows: pl.DataFrame) -> None:
    def number(value: float | None, form: str) -> str:
        return "n/a" if value is None else format(value, form)

    print(f"\ntest rows: {rows.height} on {rows[c.DATE].n_unique()} dates, {rows[c.DATE].min()} .. {rows[c.DATE].max()}; "
          f"planted price signal's oracle rank IC on them: {number(oracle_ic, '.4f')}")
    print(f"{'model':<24} {'rank IC':>8} {'share':>6} {'minus Qlib [95 % interval]':>30}  verdict")
    for name, result in results.items():
        difference = ("" if name == QLIB else
                      f"{number(result['minus_qlib'], '+.4f')} [{number(result['minus_qlib_low'], '+.4f')}, "
                      f"{number(result['minus_qlib_high'], '+.4f')}]")
        print(f"{name:<24} {number(result['rank_ic'], '+.4f'):>8} {number(result['oracle_share'], '.0%'):>6} "
              f"{difference:>30}  {result.get('verdict_vs_qlib', '')}")


def main() -> None:
    spec = load_universe_spec(PACKAGED_UNIVERSE_DIR / "synthetic.yaml")
    market_defaults = synthetic_params(spec)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=dt.date.fromisoformat, default=market_defaults.start)
    parser.add_argument("--end", type=dt.date.fromisoformat, default=DEFAULT_END)
    parser.add_argument("--n-instruments", type=int, default=market_defaults.n_instruments)
    parser.add_argument("--train-end", type=dt.date.fromisoformat, default=spec.split.train_end)
    parser.add_argument("--validation-end", type=dt.date.fromisoformat, default=spec.split.validation_end)
    parser.add_argument("--trees", type=int, default=None,
                        help="boosting rounds of every tree model (default: the lab's 400; Qlib's at most 1000, early-stopped)")
    parser.add_argument("--qlib-label", default=QLIB_LABEL, help="Qlib's label expression")
    parser.add_argument("--qlib-venv", type=Path, default=DEFAULT_QLIB_VENV, help="Qlib's virtualenv, created when absent")
    parser.add_argument("--threads", type=int, default=2, help="Qlib's data-loading processes and LightGBM threads")
    parser.add_argument("--block-days", type=int, default=63, help="dates per block of the difference's interval")
    parser.add_argument("--workdir", type=Path, default=None, help="intermediate files (default: a new temporary folder)")
    parser.add_argument("--output", type=Path, default=Path(__file__).resolve().parent / "results" / "peer_qlib.json")
    args = parser.parse_args()
    if not args.start < args.train_end < args.validation_end < args.end:
        parser.error("need start < train-end < validation-end < end")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="peer_qlib_"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"workdir: {workdir}", flush=True)
    seconds: dict[str, float] = {}

    started = time.perf_counter()
    python = ensure_qlib_venv(args.qlib_venv)
    seconds["qlib_venv"] = time.perf_counter() - started

    started = time.perf_counter()
    market_params = dataclasses.replace(market_defaults, start=args.start, end=args.end, n_instruments=args.n_instruments)
    panel = build_planted_market(market_params)
    n_members = export_bars(panel, workdir)
    seconds["market_and_export"] = time.perf_counter() - started
    print(f"market: {n_members} instruments, {panel.bars.height} cleaned bars, exported to {workdir / 'bars'}", flush=True)

    started = time.perf_counter()
    predictions = lab_predictions(panel, args.trees)
    seconds["lab_oof"] = time.perf_counter() - started

    started = time.perf_counter()
    predictions[QLIB], qlib_run = run_qlib(python, workdir, args)
    seconds["qlib"] = time.perf_counter() - started
    print(f"  qlib: {qlib_run['test_predictions']} test predictions, best iteration {qlib_run['best_iteration']}, "
          f"{qlib_run['n_features']} features, log {workdir / 'qlib.log'}", flush=True)

    rows = common_rows(predictions, panel.labels, args.validation_end)
    results, oracle_ic = score(predictions, rows, panel.price_oracle, args.block_days)
    print_table(results, oracle_ic, rows)
    output = {
        "commit": git_commit(),
        "arguments": {key: str(value) for key, value in vars(args).items()},
        "market": {"seed": market_params.seed, "n_instruments": market_params.n_instruments,
                   "start": str(args.start), "end": str(args.end), "members": n_members},
        "horizon_days": HORIZON,
        "test": {"first_date": str(rows[c.DATE].min()), "last_date": str(rows[c.DATE].max()),
                 "n_dates": rows[c.DATE].n_unique(), "n_rows": rows.height},
        "planted_oracle_rank_ic": oracle_ic,
        "planted_oracle_rank_ic_whole_market": planted_oracle_rank_ic(panel.market, c.PLANTED_EXPECTED_RETURN, HORIZON),
        "models": results,
        "qlib_run": qlib_run,
        "seconds": {name: round(value, 1) for name, value in seconds.items()},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(output, indent=2, default=str) + "\n")
    print(f"written: {args.output}")


if __name__ == "__main__":
    main()
