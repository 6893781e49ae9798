"""The shell interface: `dagster asset materialize` exit codes, blocking checks, and bad files.

A user's CSV universe is declared in a temporary QUANTLAB_UNIVERSE_DIR, which the definitions read
when they load, so each test runs the real CLI in a subprocess.
"""

import datetime as dt
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from quantlab_assets_tests.defs.conftest import run_cli

pytestmark = pytest.mark.slow

MODULE = ["-m", "quantlab_assets.definitions"]
MONTH = "2024-03-01|my_csv"


def _write_universe(directory: Path, csv_glob: str = "prices/*.csv", close_is_adjusted: str = "true") -> None:
    """A CSV universe without an adjusted close column; its closes are declared adjusted unless told."""
    directory.mkdir(parents=True, exist_ok=True)
    declaration = f"close_is_adjusted: {close_is_adjusted}" if close_is_adjusted else ""
    (directory / "my_csv.yaml").write_text(
        textwrap.dedent(
            f"""\
            name: my_csv
            source: csv
            description: two instruments from a user's CSV files
            csv:
              paths: ["{csv_glob}"]
              ticker_from_filename: true
              columns: {{date: Date, open: Open, high: High, low: Low, close: Close, volume: Volume}}
            {declaration}
            instruments:
              - {{ticker: AAA, name: Alpha, sector: Tech, industry: Software}}
              - {{ticker: BBB, name: Beta, sector: Energy, industry: Oil}}
            """
        )
    )


def _write_prices(directory: Path, ticker: str, start: dt.date, days: int, bad_rows: int = 0) -> Path:
    """A plausible random walk over `days` business days; the last `bad_rows` closes are negative."""
    dates = np.busday_offset(np.datetime64(start), np.arange(days), roll="forward")
    rng = np.random.default_rng(abs(hash(ticker)) % 2**32)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, days)))
    if bad_rows:
        close[-bad_rows:] = -close[-bad_rows:]
    frame = pl.DataFrame(
        {"Date": dates.astype(str), "Open": close, "High": np.abs(close) * 1.01, "Low": np.abs(close) * 0.99,
         "Close": close, "Volume": np.full(days, 1e6)}
    ).with_columns(pl.col("Open").abs())
    path = directory / "prices" / f"{ticker}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_csv(path)
    return path


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    return {
        "DAGSTER_HOME": str(home),
        "QUANTLAB_DATA_DIR": str(tmp_path / "data"),
        "QUANTLAB_UNIVERSE_DIR": str(tmp_path / "universes"),
        "QUANTLAB_AS_OF": "2024-06-28",
    }


def _materialise(env: dict[str, str], select: str, partition: str) -> subprocess.CompletedProcess[str]:
    return run_cli(["asset", "materialize", *MODULE, "--select", select, "--partition", partition], env)


def test_a_failed_blocking_check_fails_the_run_and_the_cli_exits_non_zero(env: dict[str, str], tmp_path: Path) -> None:
    universes = tmp_path / "universes"
    _write_universe(universes)
    _write_prices(universes, "AAA", dt.date(2023, 1, 2), 320)
    _write_prices(universes, "BBB", dt.date(2023, 1, 2), 320, bad_rows=8)  # 8 of 30 March rows: 13 %
    assert _materialise(env, "universe", "my_csv").returncode == 0
    history = run_cli(
        ["asset", "materialize", *MODULE, "--select", "raw_ohlcv", "--partition-range",
         "2023-01-01|my_csv...2024-02-01|my_csv"],
        env,
    )
    assert history.returncode == 0, history.stderr[-3000:]

    run = _materialise(env, "raw_ohlcv,cleaned_bars,rejected_bars", MONTH)

    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]
    assert "cleaned_bars_rejected_share" in run.stdout + run.stderr
    data = Path(env["QUANTLAB_DATA_DIR"])
    assert not (data / "cleaned_bars" / "my_csv" / "2024-03.parquet").exists()
    quarantine = pl.read_parquet(data / "rejected_bars" / "my_csv" / "2024-03.parquet")
    negative = quarantine.filter(pl.col("rule") == "non_positive_price")
    assert negative.height == 8
    assert negative["source_file"].str.ends_with("BBB.csv").all()
    assert negative["source_row"].min() > 1  # a CSV line number, the header being line 1

    # The same month passes once the threshold admits it: the threshold is the only reason it failed.
    relaxed = {**env, "QUANTLAB_MAX_REJECTED_SHARE": "0.5"}
    assert _materialise(relaxed, "raw_ohlcv,cleaned_bars,rejected_bars", MONTH).returncode == 0
    assert (data / "cleaned_bars" / "my_csv" / "2024-03.parquet").exists()


def test_a_malformed_file_fails_naming_it_and_loses_nothing_already_stored(env: dict[str, str], tmp_path: Path) -> None:
    universes = tmp_path / "universes"
    _write_universe(universes)
    _write_prices(universes, "AAA", dt.date(2024, 3, 1), 20)
    bbb = _write_prices(universes, "BBB", dt.date(2024, 3, 1), 20)
    assert _materialise(env, "raw_ohlcv", MONTH).returncode == 0
    stored = Path(env["QUANTLAB_DATA_DIR"]) / "raw_ohlcv" / "my_csv" / "2024-03.parquet"
    before = stored.read_bytes()

    # Line 3 has more fields than the header: the file is not the table it claims to be.
    bbb.write_text("Date,Open,High,Low,Close,Volume\n2024-03-01,1,2,0.5,1.5,100\n2024-03-04,1,2,0.5,1.5,100,7,8\n")
    run = _materialise(env, "raw_ohlcv", MONTH)

    assert run.returncode == 1
    assert str(bbb) in run.stdout + run.stderr
    assert stored.read_bytes() == before
    assert [p.name for p in stored.parent.iterdir()] == ["2024-03.parquet"]  # no temporary left behind


def test_a_partition_range_backfills_in_one_run_from_the_shell(env: dict[str, str]) -> None:
    run = run_cli(
        ["asset", "materialize", *MODULE, "--select", "raw_ohlcv", "--partition-range",
         "2024-01-01|synthetic...2024-06-01|synthetic"],
        env,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    stored = sorted(p.name for p in (Path(env["QUANTLAB_DATA_DIR"]) / "raw_ohlcv" / "synthetic").iterdir())
    assert stored == [f"2024-{m:02d}.parquet" for m in range(1, 7)]
    june = pl.read_parquet(Path(env["QUANTLAB_DATA_DIR"]) / "raw_ohlcv" / "synthetic" / "2024-06.parquet")
    assert june["date"].max() == dt.date(2024, 6, 28)  # the as-of date bounds the synthetic market


def test_closes_without_an_adjusted_column_in_an_undeclared_universe_fail_the_cleaning_naming_the_key(
    env: dict[str, str], tmp_path: Path
) -> None:
    universes = tmp_path / "universes"
    _write_universe(universes, close_is_adjusted="")
    _write_prices(universes, "AAA", dt.date(2024, 3, 1), 20)
    _write_prices(universes, "BBB", dt.date(2024, 3, 1), 20)
    assert _materialise(env, "universe", "my_csv").returncode == 0

    run = _materialise(env, "raw_ohlcv,cleaned_bars,rejected_bars", MONTH)

    assert run.returncode == 1
    output = run.stdout + run.stderr
    assert "UniverseConfigError" in output and "close_is_adjusted" in output
    assert str(universes / "my_csv.yaml") in output and "AAA.csv" in output
    assert not (Path(env["QUANTLAB_DATA_DIR"]) / "cleaned_bars" / "my_csv" / "2024-03.parquet").exists()
