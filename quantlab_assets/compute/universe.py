"""Universes: named lists of instruments with sector and industry, and the source their bars come from.

A universe is configuration, not code: one YAML file per universe. The package ships `synthetic`,
`sp500_sample` and `yfinance_us_large_caps` (quantlab_assets/universes/); users add their own (CSV files,
their own yfinance lists) in a directory named by QUANTLAB_UNIVERSE_DIR. The YAML keys:

    name: my_universe            # also the universe partition key
    source: csv                  # synthetic | sp500_sample | csv | yfinance
    description: free text
    benchmark: SPY               # the market proxy of the universe (optional)
    holidays: [2024-12-25, ...]  # extra non-trading days besides weekends (optional)
    close_is_adjusted: true      # for source files without an adjusted close: true if close already is the
                                 # split- and dividend-adjusted price, false if it is the raw traded price;
                                 # required when such files exist (see compute/data/cleaning.py)
    splits: {train_end: 2014-12-31, validation_end: 2018-12-31}   # temporal research splits
    instruments:                 # not for `synthetic`, whose instruments are generated
      - {ticker: AAPL, name: Apple Inc., sector: Information Technology, industry: Technology Hardware}
    synthetic: {seed: 42, n_instruments: 50, ...}        # SyntheticMarketParams overrides
    csv: {paths: [prices/*.csv], columns: {...}, ticker_from_filename: false, date_format: "%Y-%m-%d"}
    yfinance: {batch_size: 50, max_retries: 3, backoff_seconds: 1.0}
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.synthetic import SyntheticMarketParams, generate_synthetic_market

SOURCES = ("synthetic", "sp500_sample", "csv", "yfinance")
PACKAGED_UNIVERSE_DIR = Path(__file__).resolve().parent.parent / "universes"


class UniverseConfigError(ValueError):
    """A universe YAML is malformed; the message names the file and the key."""


@dataclass(frozen=True)
class TemporalSplit:
    """Research splits: fit on dates <= train_end, select on (train_end, validation_end], test after.

    Every estimator that learns from data (FFD order, regime models, CV folds, policies) fits on the
    training span only, so the test span stays unseen.
    """

    train_end: dt.date
    validation_end: dt.date


# A universe without declared splits trains on everything up to 2014 and validates up to 2018.
DEFAULT_SPLIT = TemporalSplit(train_end=dt.date(2014, 12, 31), validation_end=dt.date(2018, 12, 31))


@dataclass(frozen=True)
class UniverseSpec:
    name: str
    source: str
    config_path: Path
    description: str = ""
    benchmark: str | None = None
    holidays: tuple[dt.date, ...] = ()
    split: TemporalSplit = DEFAULT_SPLIT
    instruments: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=UNIVERSE_COLUMNS))
    options: Mapping[str, Any] = field(default_factory=dict)
    # How to read a close that comes without an adjusted close; None: undeclared (an error if needed).
    close_is_adjusted: bool | None = None


UNIVERSE_COLUMNS = {c.TICKER: pl.String, c.NAME: pl.String, c.SECTOR: pl.String, c.INDUSTRY: pl.String}


def _date(path: Path, key: str, value: object) -> dt.date:
    try:
        return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
    except ValueError as error:
        raise UniverseConfigError(f"{path}: {key}: {value!r} is not an ISO date (YYYY-MM-DD)") from error


def _split(path: Path, raw: object) -> TemporalSplit:
    if raw is None:
        return DEFAULT_SPLIT
    if not isinstance(raw, dict) or set(raw) != {"train_end", "validation_end"}:
        raise UniverseConfigError(f"{path}: splits must be a mapping with exactly train_end and validation_end")
    split = TemporalSplit(_date(path, "splits.train_end", raw["train_end"]), _date(path, "splits.validation_end", raw["validation_end"]))
    if split.train_end >= split.validation_end:
        raise UniverseConfigError(f"{path}: splits.train_end must precede splits.validation_end")
    return split


def _close_is_adjusted(path: Path, raw: Mapping[str, Any]) -> bool | None:
    value = raw.get("close_is_adjusted")
    if value is not None and not isinstance(value, bool):
        raise UniverseConfigError(f"{path}: close_is_adjusted must be true or false, got {value!r}")
    return value


def load_universe_spec(path: Path) -> UniverseSpec:
    """Parse one universe YAML file."""
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise UniverseConfigError(f"{path}: not valid YAML ({error})") from error
    if not isinstance(raw, dict):
        raise UniverseConfigError(f"{path}: expected a mapping at the top level")
    for key in ("name", "source"):
        if key not in raw:
            raise UniverseConfigError(f"{path}: missing key {key!r}")
    source = raw["source"]
    if source not in SOURCES:
        raise UniverseConfigError(f"{path}: source {source!r} is not one of {SOURCES}")
    instruments = raw.get("instruments") or []
    if source != "synthetic" and not instruments:
        raise UniverseConfigError(f"{path}: a {source!r} universe needs a non-empty 'instruments' list")
    for index, item in enumerate(instruments):
        missing = [key for key in UNIVERSE_COLUMNS if key not in (item or {})]
        if missing:
            raise UniverseConfigError(f"{path}: instruments[{index}] lacks {missing}")
    frame = pl.DataFrame(
        [{key: str(item[key]) for key in UNIVERSE_COLUMNS} for item in instruments], schema=UNIVERSE_COLUMNS
    )
    return UniverseSpec(
        name=str(raw["name"]),
        source=source,
        config_path=path,
        description=str(raw.get("description", "")),
        benchmark=raw.get("benchmark"),
        holidays=tuple(_date(path, "holidays", day) for day in raw.get("holidays", []) or []),
        split=_split(path, raw.get("splits")),
        instruments=frame,
        options=raw.get(source, {}) or {},
        close_is_adjusted=_close_is_adjusted(path, raw),
    )


def load_universe_catalog(extra_dirs: Iterable[Path] = ()) -> dict[str, UniverseSpec]:
    """All universes: the packaged ones, then those in `extra_dirs` (a name may be defined only once)."""
    catalog: dict[str, UniverseSpec] = {}
    for directory in (PACKAGED_UNIVERSE_DIR, *extra_dirs):
        for path in sorted(Path(directory).glob("*.yaml")):
            spec = load_universe_spec(path)
            if spec.name in catalog:
                raise UniverseConfigError(
                    f"{path}: universe {spec.name!r} is already defined in {catalog[spec.name].config_path}"
                )
            catalog[spec.name] = spec
    return catalog


def synthetic_params(spec: UniverseSpec) -> SyntheticMarketParams:
    """SyntheticMarketParams with the universe's overrides (unknown keys are an error, not ignored)."""
    known = {f.name for f in dataclasses.fields(SyntheticMarketParams)}
    unknown = set(spec.options) - known
    if unknown:
        raise UniverseConfigError(f"{spec.config_path}: unknown synthetic parameter(s) {sorted(unknown)}")
    overrides = {
        key: _date(spec.config_path, f"synthetic.{key}", value) if key in ("start", "end") else value
        for key, value in spec.options.items()
    }
    return dataclasses.replace(SyntheticMarketParams(), **overrides)


def universe_frame(spec: UniverseSpec) -> pl.DataFrame:
    """The universe's instruments (ticker, name, sector, industry), sorted by ticker."""
    if spec.source == "synthetic":
        params = synthetic_params(spec)
        # Instruments depend only on the static draws, so a one-week panel yields the same universe.
        short = dataclasses.replace(params, end=params.start + dt.timedelta(days=7))
        return generate_synthetic_market(short).universe.sort(c.TICKER)
    return spec.instruments.sort(c.TICKER)
