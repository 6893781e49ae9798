"""Every resource of the lab, and where storage lives.

Storage: $QUANTLAB_DATA_DIR if set, else $DAGSTER_HOME/data, else ./data (all ignored by git).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

from quantlab_assets.compute.data.sources import FetchedBars, fetch_raw_bars
from quantlab_assets.compute.models.tracking import initialise_store
from quantlab_assets.compute.universe import UniverseSpec
from quantlab_assets.defs.io_managers import PartitionedParquetIOManager
from quantlab_assets.defs.partitions import universe_catalog

if TYPE_CHECKING:
    from quantlab_assets.compute.torch_runtime.device import DeviceChoice

DATA_DIR_ENV = "QUANTLAB_DATA_DIR"


def data_dir() -> Path:
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV])
    if os.environ.get("DAGSTER_HOME"):
        return Path(os.environ["DAGSTER_HOME"]) / "data"
    return Path.cwd() / "data"


class MarketDataResource(dg.ConfigurableResource):
    """Where bars come from: the universe catalog, the sources, and the as-of date of the run.

    as_of: ISO date that bounds the synthetic market and the future-date rule; empty means today (UTC).
    Tests and reproducible reruns pin it.
    """

    as_of: str = ""

    def as_of_date(self) -> dt.date:
        return dt.date.fromisoformat(self.as_of) if self.as_of else dt.datetime.now(dt.UTC).date()

    def universe(self, name: str) -> UniverseSpec:
        catalog = universe_catalog()
        if name not in catalog:
            raise KeyError(f"universe {name!r} is not in the catalog {sorted(catalog)}")
        return catalog[name]

    def http_session(self) -> Any:
        """HTTP session for live sources; None lets yfinance use its own (tests inject recorded responses)."""
        return None

    def fetch(
        self, spec: UniverseSpec, first_day: dt.date, last_day: dt.date, span: tuple[dt.date, dt.date] | None = None
    ) -> FetchedBars:
        return fetch_raw_bars(
            spec, first_day, last_day, as_of=self.as_of_date(), http_session=self.http_session(), span=span
        )


class DataQualityResource(dg.ConfigurableResource):
    """Thresholds of the blocking data-quality checks (QUANTLAB_MAX_REJECTED_SHARE overrides the default)."""

    max_rejected_share: float = 0.05


# MLflow's own variable, so the lab, the `mlflow` CLI and a notebook all log to the same place.
MLFLOW_TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"


class MlflowTrackingResource(dg.ConfigurableResource):
    """Where model runs are logged (MLflow). `tracking_uri` empty: a SQLite store and an artifact folder
    under the data dir (`<data dir>/mlflow/`); MLflow 3's plain file store is deprecated and refuses to
    start without MLFLOW_ALLOW_FILE_STORE. The team deployment sets MLFLOW_TRACKING_URI to its server
    (docker-compose.yml), which then also decides where artifacts go.
    """

    tracking_uri: str = ""
    # Where a new experiment stores artifacts; empty: under the data dir for the default store, the
    # server's choice otherwise.
    artifact_location: str = ""
    experiment: str = "quantlab_model2"

    def uri(self) -> str:
        return self.tracking_uri or f"sqlite:///{data_dir() / 'mlflow' / 'mlflow.db'}"

    def artifact_root(self) -> str | None:
        if self.artifact_location:
            return self.artifact_location
        return None if self.tracking_uri else str(data_dir() / "mlflow" / "artifacts")

    def ensure_store(self) -> None:
        """Create the default SQLite store once, under a file lock: runs in parallel (two CLI processes, a
        backfill's concurrent runs) otherwise race on MLflow's schema migration and fail."""
        if self.tracking_uri:
            return
        folder = data_dir() / "mlflow"
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / ".create.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            initialise_store(self.uri())


class TorchDeviceResource(dg.ConfigurableResource):
    """Where torch training runs: CUDA when present and `allow_cuda`, else the CPU (fp32). Every GPU asset
    takes this resource and also runs on the CPU (tests, CI). QUANTLAB_ALLOW_CUDA=0 forces the CPU."""

    allow_cuda: bool = True
    precision: str = "auto"  # auto: bf16 on GPUs with native bf16, fp32 elsewhere; or fp32 / bf16

    def choice(self) -> DeviceChoice:
        # Imported here: torch takes about 1.5 s to import, and every run process loads this module.
        from quantlab_assets.compute.torch_runtime.device import choose_device

        return choose_device(allow_cuda=self.allow_cuda, precision=self.precision)


def default_resources() -> dict[str, Any]:
    return {
        "io_manager": PartitionedParquetIOManager(base_dir=str(data_dir())),
        "market_data": MarketDataResource(as_of=os.environ.get("QUANTLAB_AS_OF", "")),
        "data_quality": DataQualityResource(
            max_rejected_share=float(os.environ.get("QUANTLAB_MAX_REJECTED_SHARE", "0.05"))
        ),
        "mlflow": MlflowTrackingResource(tracking_uri=os.environ.get(MLFLOW_TRACKING_URI_ENV, "")),
        "torch_device": TorchDeviceResource(allow_cuda=os.environ.get("QUANTLAB_ALLOW_CUDA", "1") != "0"),
    }


# --- invariant deep-hedging study (seed 000) ---------------------------------------------------
import json  # noqa: E402

from quantlab_assets.compute.hedging.config import HedgingConfig, preset as hedging_preset  # noqa: E402


class HedgingStudyResource(dg.ConfigurableResource):
    """The one configuration every hedging asset of a run shares: a preset of compute/hedging/config.py
    ('study', or 'smoke' for seconds-long runs) plus JSON overrides of its flat fields, e.g.
    '{"n_paths": 5000, "iterations": 200}'. QUANTLAB_HEDGING_PRESET selects the preset by default."""

    preset: str = "study"
    overrides_json: str = "{}"

    def config(self, preset: str | None = None) -> HedgingConfig:
        """The configuration of `preset` (default: this resource's) with this resource's overrides."""
        overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(self.overrides_json).items()}
        return hedging_preset(preset or self.preset, **overrides)


def hedging_resources() -> dict[str, Any]:
    return {"hedging_study": HedgingStudyResource(preset=os.environ.get("QUANTLAB_HEDGING_PRESET", "study"))}
