"""Stage 2 of `peer_qlib.py`: Microsoft Qlib's Alpha158 + LightGBM benchmark on bars exported by the lab.

Run by the Python of the Qlib virtualenv that `peer_qlib.py` creates (Qlib's dependencies are not the
lab's), with the path of the JSON configuration stage 1 wrote:

    <qlib-venv>/bin/python benchmarks/qlib_alpha158_lgb.py <workdir>/qlib_config.json

It imports only Qlib, pandas and numpy, never the lab. Steps:

1. The per-instrument CSVs (date, open, high, low, close, volume, factor) become Qlib's daily binary
   layout under `<workdir>/qlib_data` (`write_provider`). Qlib's converter, `scripts/dump_bin.py`, is
   not in the pyqlib wheel and the wheel's own `FileInstrumentStorage` writes its columns in the wrong
   order, so the layout is written here with dump_bin's conventions: `calendars/day.txt` holds every
   date of any file; `instruments/all.txt` one line per instrument (tab-separated name, first and last
   date); `features/<name>/<field>.day.bin` little-endian float32, the first value the instrument's
   first date's index in the calendar, then one value per calendar date up to its last date (NaN where it
   has no row). The span written to `all.txt` is the lab's membership span (stage 1 passes it), so a
   cross-section at t holds the members at t while the rolling features still read the bars before it.
2. `verify_provider` reads every field back through Qlib's own data API (`D.calendar`, `D.features`) and
   stops the run unless it equals the CSVs to float32 precision.
3. The benchmark of Qlib's `examples/benchmarks/LightGBM/workflow_config_lightgbm_Alpha158.yaml`: the
   `Alpha158` handler with its default processors (no infer processor; learn: `DropnaLabel`, then
   `CSZScoreNorm` of the label), `DatasetH` with the train / valid / test segments, and `LGBModel` with
   the config's parameters, early-stopped on the valid segment (Qlib's `early_stopping_rounds` 50 of at
   most `num_boost_round` 1000). Only the label differs (the configuration's `label`, see peer_qlib.py).
4. The test segment's predictions go to `predictions.csv` (date, ticker, prediction), and what was run
   (versions, parameters, training and validation rows, best iteration, seconds) to `qlib_run.json`.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

FIELDS = ("open", "high", "low", "close", "volume", "factor")
# Qlib's examples/benchmarks/LightGBM/workflow_config_lightgbm_Alpha158.yaml, task.model.kwargs; its
# num_threads (20) is the configuration's `threads` here.
LGB_PARAMS = {
    "loss": "mse",
    "colsample_bytree": 0.8879,
    "learning_rate": 0.2,
    "subsample": 0.8789,
    "lambda_l1": 205.6999,
    "lambda_l2": 580.9768,
    "max_depth": 8,
    "num_leaves": 210,
}
DAY_FORMAT = "%Y-%m-%d"


def read_bars(bars_dir: Path) -> dict[str, pd.DataFrame]:
    """{instrument: its bars indexed by date}, one CSV per instrument named after it."""
    return {path.stem: pd.read_csv(path, parse_dates=["date"], index_col="date") for path in sorted(bars_dir.glob("*.csv"))}


def write_provider(bars: dict[str, pd.DataFrame], spans: pd.DataFrame, provider: Path) -> pd.DatetimeIndex:
    """Qlib's daily binary layout of `bars` under `provider` (module docstring, step 1); returns the calendar.

    `spans`: one row per instrument (ticker, start, end), the dates its cross-sections hold it."""
    calendar = pd.DatetimeIndex(sorted(set().union(*(frame.index for frame in bars.values()))))
    for folder in ("calendars", "instruments", "features"):
        (provider / folder).mkdir(parents=True, exist_ok=True)
    (provider / "calendars" / "day.txt").write_text("".join(f"{day}\n" for day in calendar.strftime(DAY_FORMAT)))
    (provider / "instruments" / "all.txt").write_text(
        "".join(f"{row.ticker}\t{row.start}\t{row.end}\n" for row in spans.itertuples(index=False))
    )
    for name, frame in bars.items():
        days = calendar[(calendar >= frame.index.min()) & (calendar <= frame.index.max())]
        aligned = frame.reindex(days)
        start_index = calendar.get_loc(days[0])
        folder = provider / "features" / name.lower()
        folder.mkdir(exist_ok=True)
        for field in FIELDS:
            np.hstack([[start_index], aligned[field].to_numpy(dtype=np.float64)]).astype("<f4").tofile(folder / f"{field}.day.bin")
    return calendar


def verify_provider(bars: dict[str, pd.DataFrame], spans: pd.DataFrame, calendar: pd.DatetimeIndex) -> None:
    """Read every field back through Qlib's data API and raise unless it equals `bars` (as float32) on
    every instrument's span, and the calendar is the one written."""
    from qlib.data import D

    read_calendar = pd.DatetimeIndex(D.calendar(freq="day"))
    if not read_calendar.equals(calendar):
        raise RuntimeError("Qlib reads another calendar than the one written")
    read = D.features(D.instruments("all"), [f"${field}" for field in FIELDS], freq="day")
    expected = pd.concat(
        {row.ticker: bars[row.ticker].loc[row.start:row.end, list(FIELDS)] for row in spans.itertuples(index=False)},
        names=["instrument", "datetime"],
    ).astype(np.float32)
    read = read.rename(columns=lambda name: name.removeprefix("$")).astype(np.float32)
    read = read.reindex(expected.index)
    if not np.array_equal(read.to_numpy(), expected.to_numpy(), equal_nan=True):
        raise RuntimeError("Qlib reads other values than those written: the binary layout is wrong")


def run(config: dict[str, Any]) -> dict[str, Any]:
    import lightgbm
    import qlib
    from qlib.constant import REG_US
    from qlib.contrib.data.handler import Alpha158
    from qlib.contrib.model.gbdt import LGBModel
    from qlib.data.dataset import DatasetH
    from qlib.data.dataset.handler import DataHandlerLP
    from qlib.workflow import R

    workdir = Path(config["workdir"])
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    bars = read_bars(workdir / "bars")
    spans = pd.read_csv(workdir / "spans.csv", dtype=str)
    calendar = write_provider(bars, spans, workdir / "qlib_data")
    seconds["write_provider"] = time.perf_counter() - started

    # LGBModel.fit logs every iteration's loss to the experiment manager: keep it inside the workdir.
    qlib.init(
        provider_uri=str(workdir / "qlib_data"), region=REG_US, kernels=config["threads"],
        exp_manager={"class": "MLflowExpManager", "module_path": "qlib.workflow.expm",
                     "kwargs": {"uri": f"sqlite:///{workdir / 'mlflow.db'}", "default_exp_name": "peer_qlib"}},
    )
    started = time.perf_counter()
    verify_provider(bars, spans, calendar)
    seconds["verify_provider"] = time.perf_counter() - started

    started = time.perf_counter()
    handler = Alpha158(
        instruments="all", start_time=config["start"], end_time=config["end"],
        fit_start_time=config["start"], fit_end_time=config["train_end"],
        label=([config["label"]], ["LABEL0"]),
    )
    dataset = DatasetH(handler, segments={name: tuple(span) for name, span in config["segments"].items()})
    seconds["alpha158"] = time.perf_counter() - started

    started = time.perf_counter()
    model = LGBModel(**LGB_PARAMS, num_threads=config["threads"], num_boost_round=config["num_boost_round"])
    with R.start(experiment_name="peer_qlib"):
        model.fit(dataset)
    seconds["fit"] = time.perf_counter() - started

    prediction = model.predict(dataset, segment="test")
    frame = prediction.rename("prediction").reset_index().rename(columns={"datetime": "date", "instrument": "ticker"})
    frame["date"] = frame["date"].dt.strftime(DAY_FORMAT)
    frame.to_csv(workdir / "predictions.csv", index=False)
    # The rows fit read: DropnaLabel removes those without a label from the learn data.
    learn_rows = {name: len(dataset.prepare(name, col_set="label", data_key=DataHandlerLP.DK_L)) for name in ("train", "valid")}
    return {
        "versions": {"qlib": qlib.__version__, "lightgbm": lightgbm.__version__, "pandas": pd.__version__,
                     "numpy": np.__version__},
        "lgb_params": {**LGB_PARAMS, "num_threads": config["threads"], "num_boost_round": config["num_boost_round"],
                       "early_stopping_rounds": model.early_stopping_rounds},
        "best_iteration": model.model.best_iteration,
        "n_features": len(handler.get_cols()) - 1,
        "learn_rows": learn_rows,
        "test_predictions": len(frame),
        "seconds": {name: round(value, 1) for name, value in seconds.items()},
    }


if __name__ == "__main__":
    configuration = json.loads(Path(sys.argv[1]).read_text())
    summary = run(configuration)
    (Path(configuration["workdir"]) / "qlib_run.json").write_text(json.dumps(summary, indent=2) + "\n")
