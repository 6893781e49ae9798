"""Print, as a Markdown table, every bar of a universe beyond the 10-sigma outlier bound and its verdict.

    .venv/bin/python scripts/outlier_review.py [universe]      # default: sp500_sample

Each bar is one a return-capping rule would have rewritten; the verdict says what cleaning does with it
now: a reverted tick is quarantined, a real move is kept exactly as it happened (docs/real_data.md).
"""

from __future__ import annotations

import datetime as dt
import sys

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.outlier_review import VERDICT, review_capped_bars
from quantlab_assets.compute.data.sources import fetch_raw_bars
from quantlab_assets.compute.universe import load_universe_catalog, universe_frame

EARLIEST, LATEST = dt.date(1900, 1, 1), dt.date.today()


def main(universe: str = "sp500_sample") -> None:
    spec = load_universe_catalog()[universe]
    raw = fetch_raw_bars(spec, EARLIEST, LATEST, as_of=LATEST).bars
    window = (raw[c.DATE].min(), raw[c.DATE].max())
    review = review_capped_bars(
        raw, universe_frame(spec)[c.TICKER], window=window, as_of=LATEST, holidays=spec.holidays,
        close_is_adjusted=spec.close_is_adjusted,
    )
    print("| date | ticker | log return | verdict |")
    print("|---|---|---:|---|")
    for row in review.iter_rows(named=True):
        print(f"| {row[c.DATE]} | {row[c.TICKER]} | {row[c.LOG_RETURN]:+.4f} | {row[VERDICT]} |")
    counts = review[VERDICT].value_counts(sort=True).iter_rows()
    print(f"\n{review.height} bars beyond the bound, {window[0]} .. {window[1]}: " + ", ".join(f"{n} {v}" for v, n in counts))


if __name__ == "__main__":
    main(*sys.argv[1:])
