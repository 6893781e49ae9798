"""Windows gathered by index equal the materialised windows, cover exactly the complete windows, and
never read a row after their last day."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.torch_runtime.windows import build_window_panel, gather_windows, shuffled_batches

SEQ_LEN = 5


@pytest.fixture
def frame() -> pl.DataFrame:
    """3 instruments x 12 days x 2 features + 1 target; B lists late, C misses a day and a feature value."""
    rng = np.random.default_rng(0)
    days = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(12)]
    rows = [(d, t) for t in ("A", "B", "C") for i, d in enumerate(days) if not (t == "B" and i < 3) and not (t == "C" and i == 6)]
    out = pl.DataFrame(rows, schema={c.DATE: pl.Date, c.TICKER: pl.String}, orient="row").with_columns(
        pl.Series("f0", rng.normal(size=len(rows))), pl.Series("f1", rng.normal(size=len(rows))),
        pl.Series("y", rng.normal(size=len(rows))),
    )
    # C's feature is null on day 9; A's target is unknown on its last day (its window is not a sample).
    out = out.with_columns(
        pl.when((pl.col(c.TICKER) == "C") & (pl.col(c.DATE) == days[9])).then(None).otherwise(pl.col("f1")).alias("f1"),
        pl.when((pl.col(c.TICKER) == "A") & (pl.col(c.DATE) == days[11])).then(None).otherwise(pl.col("y")).alias("y"),
    )
    return out


def _materialised(frame: pl.DataFrame, ticker: str) -> tuple[list[dt.date], np.ndarray]:
    rows = frame.filter(pl.col(c.TICKER) == ticker).sort(c.DATE)
    return rows[c.DATE].to_list(), sliding_window_view(rows.select("f0", "f1").to_numpy(), SEQ_LEN, axis=0).transpose(0, 2, 1)


def test_gathered_windows_equal_the_materialised_ones_and_only_complete_ones_exist(frame) -> None:
    panel = build_window_panel(frame, ["f0", "f1"], ["y"], SEQ_LEN)
    assert panel.values.shape == (3, 12, 2) and panel.values.dtype == torch.float32 and panel.values.is_contiguous()
    x, y = gather_windows(panel, panel.starts)
    instrument, last_day = panel.last_rows(panel.starts)
    got = {(panel.instruments[i], panel.dates[e]): x[k].numpy()
           for k, (i, e) in enumerate(zip(instrument.tolist(), last_day.tolist(), strict=True))}
    expected = {}
    for ticker in panel.instruments:
        dates, windows = _materialised(frame, ticker)
        for end, window in zip(dates[SEQ_LEN - 1 :], windows, strict=True):
            consecutive = (end - dates[dates.index(end) - SEQ_LEN + 1]).days == SEQ_LEN - 1
            target = frame.filter((pl.col(c.TICKER) == ticker) & (pl.col(c.DATE) == end))["y"][0]
            if consecutive and np.isfinite(window).all() and target is not None:
                expected[(ticker, end)] = window.astype(np.float32)
    assert got.keys() == expected.keys()
    for key, window in expected.items():
        np.testing.assert_array_equal(got[key], window)
    assert y.shape == (len(expected), 1) and torch.isfinite(y).all()
    # B's first window ends on its 5th day; C has no window touching day 6 (missing) or day 9 (null).
    ends_of = {t: sorted(d for (tt, d) in got if tt == t) for t in panel.instruments}
    assert ends_of["B"][0] == dt.date(2024, 1, 8) and ends_of["A"][-1] == dt.date(2024, 1, 11)
    assert all(not (dt.date(2024, 1, 7) <= d <= dt.date(2024, 1, 14)) for d in ends_of["C"])


def test_a_window_reads_no_day_after_its_last(frame) -> None:
    day_number = frame.with_columns(pl.col(c.DATE).rank("dense").cast(pl.Float64).alias("f0"))
    panel = build_window_panel(day_number, ["f0"], ["y"], SEQ_LEN)
    x, _ = gather_windows(panel, panel.starts)
    last_day = panel.last_rows(panel.starts)[1].to(torch.float32) + 1  # dense rank starts at 1
    assert torch.equal(x[:, -1, 0], last_day) and torch.equal(x.amax(dim=(1, 2)), last_day)


def test_a_shuffled_epoch_visits_every_window_once_in_a_seeded_order(frame) -> None:
    panel = build_window_panel(frame, ["f0", "f1"], ["y"], SEQ_LEN)
    x_all, _ = gather_windows(panel, panel.starts)

    def epoch(seed: int) -> torch.Tensor:
        return torch.cat([x for x, _ in shuffled_batches(panel, panel.starts, batch_size=4, seed=seed)])

    first = epoch(7)
    assert torch.equal(first, epoch(7)) and not torch.equal(first, epoch(8))
    assert sorted(map(tuple, first.flatten(1).tolist())) == sorted(map(tuple, x_all.flatten(1).tolist()))


def test_fold_windows_are_selected_by_their_last_date(frame) -> None:
    panel = build_window_panel(frame, ["f0", "f1"], ["y"], SEQ_LEN)
    inside = panel.starts_between(dt.date(2024, 1, 8), dt.date(2024, 1, 9))
    assert {panel.dates[int(e)] for e in panel.last_rows(inside)[1]} == {dt.date(2024, 1, 8), dt.date(2024, 1, 9)}
    with pytest.raises(ValueError, match="seq_len"):
        build_window_panel(frame, ["f0"], ["y"], 0)


def test_blocks_of_instruments_find_the_same_windows(frame, monkeypatch: pytest.MonkeyPatch) -> None:
    from quantlab_assets.compute.torch_runtime import windows

    whole = build_window_panel(frame, ["f0", "f1"], ["y"], SEQ_LEN).starts
    monkeypatch.setattr(windows, "_BLOCK", 2)
    assert torch.equal(build_window_panel(frame, ["f0", "f1"], ["y"], SEQ_LEN).starts, whole)
