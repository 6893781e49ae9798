"""Universe YAML files: the packaged catalog, user directories, and errors that name the file."""

from __future__ import annotations

import dataclasses
import datetime as dt
import textwrap
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.synthetic import SyntheticMarketParams, generate_synthetic_market
from quantlab_assets.compute.schemas.base import validate
from quantlab_assets.compute.schemas.data import UniverseSchema
from quantlab_assets.compute.universe import (
    DEFAULT_SPLIT,
    TemporalSplit,
    PACKAGED_UNIVERSE_DIR,
    SOURCES,
    MEMBERSHIP_COLUMNS,
    UNIVERSE_COLUMNS,
    UniverseConfigError,
    load_universe_catalog,
    load_universe_spec,
    synthetic_params,
    universe_frame,
)

INSTRUMENT = "  - {ticker: AAA, name: A Corp, sector: Tech, industry: Software}\n"


def _yaml(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def test_catalog_loads_the_three_packaged_universes() -> None:
    catalog = load_universe_catalog()
    assert set(catalog) == {"synthetic", "sp500_sample", "yfinance_us_large_caps"}
    assert {name: spec.source for name, spec in catalog.items()} == {
        "synthetic": "synthetic", "sp500_sample": "sp500_sample", "yfinance_us_large_caps": "yfinance",
    }
    for name, spec in catalog.items():
        assert spec.config_path == PACKAGED_UNIVERSE_DIR / f"{name}.yaml"
        assert spec.description


def test_packaged_universe_details() -> None:
    catalog = load_universe_catalog()
    synthetic = catalog["synthetic"]
    assert dict(synthetic.options) == {"seed": 42, "n_instruments": 50, "start": dt.date(2005, 1, 3)}
    assert synthetic.benchmark is None and synthetic.instruments.height == 0
    sp500 = catalog["sp500_sample"]
    assert sp500.benchmark == "^GSPC" and sp500.instruments.height == 22
    yahoo = catalog["yfinance_us_large_caps"]
    assert yahoo.benchmark == "SPY" and yahoo.instruments.height == 11
    assert dict(yahoo.options) == {"batch_size": 50, "max_retries": 3, "backoff_seconds": 2.0}


@pytest.mark.parametrize("name", ["synthetic", "sp500_sample", "yfinance_us_large_caps"])
def test_every_packaged_universe_frame_conforms_to_its_schema(name: str) -> None:
    frame = universe_frame(load_universe_catalog()[name])
    validate(UniverseSchema, frame, asset="universe", partition=name)
    assert frame[c.TICKER].is_sorted()


def test_catalog_adds_user_directories(tmp_path: Path) -> None:
    _yaml(tmp_path, "mine.yaml", "name: mine\nsource: csv\ncsv: {paths: [prices/*.csv]}\ninstruments:\n" + INSTRUMENT)
    (tmp_path / "notes.txt").write_text("not a universe")
    catalog = load_universe_catalog([tmp_path])
    assert set(catalog) == {"synthetic", "sp500_sample", "yfinance_us_large_caps", "mine"}
    assert catalog["mine"].config_path == tmp_path / "mine.yaml"
    assert dict(catalog["mine"].options) == {"paths": ["prices/*.csv"]}


def test_a_name_defined_twice_across_directories_names_both_files(tmp_path: Path) -> None:
    duplicate = _yaml(tmp_path, "my_synthetic.yaml", "name: synthetic\nsource: synthetic\n")
    with pytest.raises(UniverseConfigError) as error:
        load_universe_catalog([tmp_path])
    message = str(error.value)
    assert str(duplicate) in message
    assert str(PACKAGED_UNIVERSE_DIR / "synthetic.yaml") in message
    assert "'synthetic'" in message


def test_a_name_defined_twice_across_user_directories_names_both_files(tmp_path: Path) -> None:
    first = _yaml(tmp_path / "one", "u.yaml", "name: mine\nsource: synthetic\n")
    second = _yaml(tmp_path / "two", "v.yaml", "name: mine\nsource: synthetic\n")
    with pytest.raises(UniverseConfigError) as error:
        load_universe_catalog([tmp_path / "one", tmp_path / "two"])
    assert str(first) in str(error.value) and str(second) in str(error.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("name: [unclosed\nsource: csv\n", "not valid YAML", id="malformed-yaml"),
        pytest.param("- name: x\n- source: csv\n", "mapping at the top level", id="top-level-list"),
        pytest.param("", "mapping at the top level", id="empty-file"),
        pytest.param("source: synthetic\n", "missing key 'name'", id="missing-name"),
        pytest.param("name: x\n", "missing key 'source'", id="missing-source"),
        pytest.param("name: x\nsource: bloomberg\n", "source 'bloomberg' is not one of", id="unknown-source"),
        pytest.param("name: x\nsource: csv\n", "needs a non-empty 'instruments' list", id="csv-without-instruments"),
        pytest.param(
            "name: x\nsource: yfinance\ninstruments: []\n", "needs a non-empty 'instruments' list", id="empty-instruments",
        ),
        pytest.param(
            "name: x\nsource: csv\ninstruments:\n  - {ticker: AAA, name: A}\n", "instruments[0] lacks ['sector', 'industry']",
            id="instrument-missing-keys",
        ),
        pytest.param(
            "name: x\nsource: csv\ninstruments:\n  - AAA\n", "instruments[0] lacks", id="instrument-not-a-mapping",
        ),
        pytest.param(
            "name: x\nsource: csv\nholidays: [christmas]\ninstruments:\n" + INSTRUMENT, "holidays",
            id="holiday-not-a-date",
        ),
    ],
)
def test_a_malformed_universe_file_raises_naming_the_file(tmp_path: Path, text: str, expected: str) -> None:
    path = _yaml(tmp_path, "broken.yaml", text)
    with pytest.raises(UniverseConfigError) as error:
        load_universe_spec(path)
    message = str(error.value)
    assert message.startswith(f"{path}:"), message
    assert expected in message


def test_a_malformed_file_in_a_user_directory_fails_the_catalog(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "broken.yaml", "name: x\nsource: nowhere\n")
    with pytest.raises(UniverseConfigError, match=str(path)):
        load_universe_catalog([tmp_path])


def test_spec_fields_are_parsed(tmp_path: Path) -> None:
    path = _yaml(
        tmp_path,
        "u.yaml",
        """\
        name: 2024
        source: yfinance
        description: My list
        benchmark: SPY
        holidays: [2024-12-25, "2024-07-04"]
        yfinance: {batch_size: 5}
        instruments:
          - {ticker: BBB, name: B, sector: S, industry: I}
          - {ticker: AAA, name: 1, sector: S, industry: I}
        """,
    )
    spec = load_universe_spec(path)
    assert spec.name == "2024"  # names are strings, whatever YAML makes of them
    assert (spec.source, spec.description, spec.benchmark) == ("yfinance", "My list", "SPY")
    assert spec.holidays == (dt.date(2024, 12, 25), dt.date(2024, 7, 4))
    assert dict(spec.options) == {"batch_size": 5}
    assert spec.instruments.schema == pl.Schema(UNIVERSE_COLUMNS | MEMBERSHIP_COLUMNS)
    assert spec.instruments[c.NAME].to_list() == ["B", "1"]
    assert universe_frame(spec)[c.TICKER].to_list() == ["AAA", "BBB"]


def test_sources_are_the_four_documented_ones() -> None:
    assert SOURCES == ("synthetic", "sp500_sample", "csv", "yfinance")


def _synthetic_spec(tmp_path: Path, options: str):
    return load_universe_spec(_yaml(tmp_path, "syn.yaml", f"name: syn\nsource: synthetic\nsynthetic: {options}\n"))


def test_synthetic_params_apply_overrides_and_parse_dates(tmp_path: Path) -> None:
    spec = _synthetic_spec(tmp_path, "{seed: 3, n_instruments: 6, start: 2019-01-01, end: '2021-06-30'}")
    assert synthetic_params(spec) == dataclasses.replace(
        SyntheticMarketParams(), seed=3, n_instruments=6, start=dt.date(2019, 1, 1), end=dt.date(2021, 6, 30)
    )


def test_an_unknown_synthetic_parameter_raises_naming_the_file(tmp_path: Path) -> None:
    spec = _synthetic_spec(tmp_path, "{seed: 3, n_instrument: 6, volatility: 2}")
    with pytest.raises(UniverseConfigError) as error:
        synthetic_params(spec)
    assert str(spec.config_path) in str(error.value)
    assert "['n_instrument', 'volatility']" in str(error.value)


def test_a_synthetic_date_that_is_not_a_date_raises_naming_the_file(tmp_path: Path) -> None:
    spec = _synthetic_spec(tmp_path, "{start: yesterday}")
    with pytest.raises(UniverseConfigError) as error:
        synthetic_params(spec)
    assert str(spec.config_path) in str(error.value)


def test_synthetic_universe_frame_matches_the_generators(tmp_path: Path) -> None:
    spec = _synthetic_spec(tmp_path, "{seed: 5, n_instruments: 6, start: 2019-01-01, end: 2021-06-30}")
    market = generate_synthetic_market(synthetic_params(spec))
    assert_frame_equal(universe_frame(spec), market.universe.sort(c.TICKER))
    assert set(market.bars[c.TICKER].unique()) <= set(universe_frame(spec)[c.TICKER])


def test_packaged_synthetic_universe_frame_matches_the_generators() -> None:
    spec = load_universe_catalog()["synthetic"]
    params = dataclasses.replace(synthetic_params(spec), end=dt.date(2005, 3, 31))
    frame = universe_frame(spec)
    assert frame.height == 50
    assert_frame_equal(frame, generate_synthetic_market(params).universe.sort(c.TICKER))


def test_temporal_splits_come_from_the_yaml_or_the_documented_default(tmp_path: Path) -> None:
    catalog = load_universe_catalog()
    assert catalog["sp500_sample"].split == TemporalSplit(dt.date(2004, 12, 31), dt.date(2011, 12, 31))
    plain = load_universe_spec(_yaml(tmp_path, "plain", "name: plain\nsource: synthetic\n"))
    assert plain.split == DEFAULT_SPLIT


@pytest.mark.parametrize(
    "splits",
    [
        pytest.param("{train_end: 2015-01-01}", id="missing-validation-end"),
        pytest.param("{train_end: 2019-01-01, validation_end: 2015-01-01}", id="reversed"),
        pytest.param("{train_end: soon, validation_end: 2015-01-01}", id="not-a-date"),
    ],
)
def test_malformed_splits_raise_naming_the_file(tmp_path: Path, splits: str) -> None:
    path = _yaml(tmp_path, "bad", f"name: bad\nsource: synthetic\nsplits: {splits}\n")
    with pytest.raises(UniverseConfigError, match=str(path)):
        load_universe_spec(path)


# --- Adjusted closes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "expected"), [("close_is_adjusted: true\n", True), ("close_is_adjusted: false\n", False), ("", None)])
def test_close_is_adjusted_is_read_and_left_undeclared_when_absent(tmp_path: Path, line: str, expected: bool | None) -> None:
    path = _yaml(tmp_path, "u.yaml", "name: x\nsource: csv\n" + line + "instruments:\n" + INSTRUMENT)
    assert load_universe_spec(path).close_is_adjusted is expected


@pytest.mark.parametrize("value", ["yes please", "1", "[true]"])
def test_close_is_adjusted_must_be_a_boolean(tmp_path: Path, value: str) -> None:
    path = _yaml(tmp_path, "u.yaml", f"name: x\nsource: csv\nclose_is_adjusted: {value}\ninstruments:\n" + INSTRUMENT)
    with pytest.raises(UniverseConfigError, match=rf"^{path}: close_is_adjusted must be true or false"):
        load_universe_spec(path)


def test_packaged_universes_without_adjusted_columns_declare_their_closes() -> None:
    catalog = load_universe_catalog()
    # skfolio's closes are adjusted; the synthetic market has no corporate actions.
    assert (catalog["sp500_sample"].close_is_adjusted, catalog["synthetic"].close_is_adjusted) == (True, True)
    # Yahoo always sends an Adj Close: nothing to declare.
    assert catalog["yfinance_us_large_caps"].close_is_adjusted is None
