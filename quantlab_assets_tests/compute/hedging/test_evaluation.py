"""MSI, IG/WG and the success criterion's verdicts on hand-made cases."""

import numpy as np
import polars as pl
import pytest
from scipy import stats

from quantlab_assets.compute.hedging.config import SMOKE
from quantlab_assets.compute.hedging.evaluation import METRIC_SCHEMA, diagnostics, msi, success_table
from quantlab_assets.compute.stats import INCONCLUSIVE, MET, NOT_MET


def test_msi_is_one_for_the_training_distribution_and_one_half_one_std_away() -> None:
    reference = np.random.default_rng(0).standard_normal((5000, 3))
    assert msi(reference, reference, 99) == 1.0
    # A shift by one training std moves every quantile by exactly that std: D = 1, MSI = 1 / 2.
    assert msi(reference + reference.std(axis=0), reference, 99) == pytest.approx(0.5)
    assert msi(np.ones((10, 2)), np.ones((10, 2)), 9) is None  # every unit constant: undefined


def _metrics(crisis: dict[str, list[tuple[float, float]]], high: dict[str, list[float]] | None = None) -> pl.DataFrame:
    """Rows of (policy key prefix) -> per seed (crisis CVaR, crisis turnover); high CVaR optional."""
    rows = []
    for prefix, values in crisis.items():
        method, strength = prefix.rsplit("_", 1)
        for seed, (risk, turnover) in enumerate(values):
            base = {"policy": f"{prefix}_seed{seed}", "method": method, "strength": float(strength), "seed": seed,
                    "var95": 0.0, "mean_pnl": 0.0, "std_pnl": 1.0, "sharpe": 0.0, "msi": 1.0}
            rows.append({**base, "environment": "crisis", "cvar95": risk, "turnover": turnover})
            rows.append({**base, "environment": "high", "cvar95": (high or {}).get(prefix, [risk] * 9)[seed],
                         "turnover": turnover})
    return pl.DataFrame(rows, schema=METRIC_SCHEMA)


def test_verdicts_met_not_met_and_inconclusive() -> None:
    erm = [(10.0, 1.0), (12.0, 1.0), (8.0, 1.0)]
    metrics = _metrics({
        "erm_0": erm,
        "irm_head_0.1": [(7.9, 1.05), (9.6, 1.04), (6.3, 1.06)],  # 21 %, 20 %, 21.25 % better; +5 % turnover
        "irm_head_1": [(10.0, 1.0), (12.1, 1.0), (7.9, 1.0)],  # about no change
        "vrex_5": [(5.0, 1.0), (12.0, 1.0), (8.0, 1.0)],  # one large gain, two none: wide interval
        "vrex_10": [(7.0, 2.0), (8.4, 2.1), (5.6, 1.9)],  # 30 % better, but turnover doubles
    })
    table = success_table(metrics, SMOKE)
    verdicts = dict(zip(table["method"] + "_" + table["strength"].cast(pl.String), table["verdict"], strict=True))
    assert verdicts == {"irm_head_0.1": MET, "irm_head_1.0": NOT_MET, "vrex_5.0": INCONCLUSIVE, "vrex_10.0": NOT_MET}
    row = table.filter(pl.col("method") == "irm_head", pl.col("strength") == 0.1).row(0, named=True)
    improvements = np.array([0.21, 0.2, 0.2125])
    half = stats.t.ppf(0.975, 2) * improvements.std(ddof=1) / np.sqrt(3)
    assert row["improvement"] == pytest.approx(improvements.mean())
    assert row["improvement_low"] == pytest.approx(improvements.mean() - half)
    assert row["n_seeds"] == 3


def test_one_seed_is_inconclusive_and_selection_uses_high_only() -> None:
    metrics = _metrics(
        {"erm_0": [(10.0, 1.0)], "irm_head_0.01": [(5.0, 1.0)], "irm_head_1": [(9.0, 1.0)]},
        high={"erm_0": [4.0], "irm_head_0.01": [3.0], "irm_head_1": [2.0]},
    )
    table = success_table(metrics, SMOKE)
    assert set(table["verdict"]) == {INCONCLUSIVE}
    # The crisis favours lambda 0.01, but selection looks at high only, where lambda 1 is better.
    assert table.filter(pl.col("selected"))["strength"].to_list() == [1.0]


def test_diagnostics_by_hand() -> None:
    frame = pl.DataFrame({"policy": ["p"] * 3, "environment": ["low", "medium", "crisis"], "cvar95": [1.0, 3.0, 8.0]})
    row = diagnostics(frame).row(0, named=True)
    assert (row["ig_train"], row["wg_train"], row["wg_var_train"]) == (2.0, 3.0, 1.0)
    assert (row["ig_all"], row["wg_all"]) == (7.0, 8.0)
