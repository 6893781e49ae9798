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
      - {ticker: LEH, ..., listed: 1994-05-02, delisted: 2008-09-17, delisting_return: -0.95}
      - {ticker: SPY, ..., tradable: false}    # a benchmark: feeds the market state, never held by a model
    membership: members.csv      # optional: ticker,listed,delisted,delisting_return (relative to this file)
    synthetic: {seed: 42, n_instruments: 50, ...}        # SyntheticMarketParams overrides
    csv: {paths: [prices/*.csv], columns: {...}, ticker_from_filename: false, date_format: "%Y-%m-%d"}
    yfinance: {batch_size: 50, max_retries: 3, backoff_seconds: 1.0}

Membership (point in time): an instrument is a member of the universe from `listed` (null: from its first
bar) to `delisted` (its last trading day; null: still listed), one spell per instrument (a name that left
and came back needs two tickers). `delisting_return` is the proceeds of the delisting relative to the last
price (CRSP's convention: -0.3 = holders got 70 % of the last close). The dates come from the instrument
entries or from a membership CSV named by `membership` (not both for one ticker). `tradable: false` marks
an index or benchmark ETF: its bars feed the benchmark and the market state, and no model, alpha or
portfolio ever holds it (see compute/data/membership.py for how each step uses these columns).
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
    instruments: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=UNIVERSE_COLUMNS | MEMBERSHIP_COLUMNS))
    options: Mapping[str, Any] = field(default_factory=dict)
    # How to read a close that comes without an adjusted close; None: undeclared (an error if needed).
    close_is_adjusted: bool | None = None


UNIVERSE_COLUMNS = {c.TICKER: pl.String, c.NAME: pl.String, c.SECTOR: pl.String, c.INDUSTRY: pl.String}
MEMBERSHIP_COLUMNS = {c.TRADABLE: pl.Boolean, c.LISTED: pl.Date, c.DELISTED: pl.Date, c.DELISTING_RETURN: pl.Float64}
# The optional per-instrument keys of the YAML (and the membership CSV's columns besides ticker).
SPELL_KEYS = (c.LISTED, c.DELISTED, c.DELISTING_RETURN)


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


def _spell(where: str, item: Mapping[str, Any]) -> dict[str, Any]:
    """listed, delisted, delisting_return of one instrument entry or membership row (absent/empty -> null)."""
    given = {key: item.get(key) for key in SPELL_KEYS if item.get(key) not in (None, "")}
    spell: dict[str, Any] = {key: None for key in SPELL_KEYS}
    for key in (c.LISTED, c.DELISTED):
        if key in given:
            spell[key] = _date(Path(where), key, given[key])
    if c.DELISTING_RETURN in given:
        try:
            spell[c.DELISTING_RETURN] = float(given[c.DELISTING_RETURN])
        except (TypeError, ValueError) as error:
            raise UniverseConfigError(f"{where}: delisting_return {given[c.DELISTING_RETURN]!r} is not a number") from error
        if not spell[c.DELISTING_RETURN] > -1.0:
            raise UniverseConfigError(f"{where}: delisting_return must be > -1 (a loss of at most 100 %)")
        if spell[c.DELISTED] is None:
            raise UniverseConfigError(f"{where}: delisting_return without a delisted date")
    if spell[c.LISTED] and spell[c.DELISTED] and spell[c.DELISTED] < spell[c.LISTED]:
        raise UniverseConfigError(f"{where}: delisted {spell[c.DELISTED]} precedes listed {spell[c.LISTED]}")
    return spell


def _membership_file(path: Path, name: object, tickers: list[str]) -> dict[str, dict[str, Any]]:
    """Spells by ticker from the membership CSV `name` (relative to the YAML's directory)."""
    file = (path.parent / str(name)).resolve()
    if not file.is_file():
        raise UniverseConfigError(f"{path}: membership file {file} does not exist")
    try:
        frame = pl.read_csv(file, infer_schema=False)
    except pl.exceptions.PolarsError as error:
        raise UniverseConfigError(f"{file}: not a readable CSV ({error})") from error
    if c.TICKER not in frame.columns or not set(frame.columns) <= {c.TICKER, *SPELL_KEYS}:
        raise UniverseConfigError(f"{file}: expected columns ticker, {', '.join(SPELL_KEYS)}; got {frame.columns}")
    spells: dict[str, dict[str, Any]] = {}
    for line, row in enumerate(frame.iter_rows(named=True), start=2):  # line 1 is the header
        where = f"{file}: row {line}"
        ticker = row[c.TICKER]
        if ticker not in tickers:
            raise UniverseConfigError(f"{where}: {ticker!r} is not an instrument of the universe")
        if ticker in spells:
            raise UniverseConfigError(f"{where}: {ticker!r} has a second membership spell (one per instrument)")
        spells[ticker] = _spell(where, row)
    return spells


def _instrument_table(path: Path, instruments: list[Mapping[str, Any]], membership: object) -> pl.DataFrame:
    """One row per instrument: UNIVERSE_COLUMNS and MEMBERSHIP_COLUMNS."""
    rows = []
    for index, item in enumerate(instruments):
        tradable = item.get(c.TRADABLE, True)
        if not isinstance(tradable, bool):
            raise UniverseConfigError(f"{path}: instruments[{index}].tradable must be true or false")
        rows.append({key: str(item[key]) for key in UNIVERSE_COLUMNS} | {c.TRADABLE: tradable}
                    | _spell(f"{path}: instruments[{index}]", item))
    if membership is not None:
        from_file = _membership_file(path, membership, [row[c.TICKER] for row in rows])
        for row in rows:
            if row[c.TICKER] in from_file:
                if any(row[key] is not None for key in SPELL_KEYS):
                    raise UniverseConfigError(f"{path}: {row[c.TICKER]} has membership dates both inline and in {membership}")
                row.update(from_file[row[c.TICKER]])
    return pl.DataFrame(rows, schema=UNIVERSE_COLUMNS | MEMBERSHIP_COLUMNS)


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
    if source == "synthetic" and raw.get("membership") is not None:
        raise UniverseConfigError(f"{path}: a synthetic universe generates its listings; no membership file")
    frame = _instrument_table(path, instruments, raw.get("membership"))
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
    """The universe's instruments (UNIVERSE_COLUMNS, MEMBERSHIP_COLUMNS), sorted by ticker."""
    if spec.source == "synthetic":
        params = synthetic_params(spec)
        # Instruments depend only on the static draws, so a one-week panel yields the same universe.
        short = dataclasses.replace(params, end=params.start + dt.timedelta(days=7))
        return generate_synthetic_market(short).universe.sort(c.TICKER)
    return spec.instruments.sort(c.TICKER)
