"""The study's figures (seed 000's paper targets) as PNG files: the CVaR frontier, a QQ plot of crisis
P&L (ERM vs the selected IRM), and the lambda / beta sweeps of crisis CVaR with t intervals across seeds;
and one self-contained HTML study page with the figures embedded and the success-criterion table."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and in tests
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from quantlab_assets.compute.hedging.config import ERM, IRM_HEAD, VREX, HedgingConfig  # noqa: E402
from quantlab_assets.compute.stats import t_interval  # noqa: E402
from quantlab_assets.compute.storage import write_atomic, write_text_atomic  # noqa: E402

CRISIS = "crisis"


def _by_configuration(metrics: pl.DataFrame, environment: str, column: str, config: HedgingConfig) -> pl.DataFrame:
    rows = []
    frame = metrics.filter(pl.col("environment") == environment)
    for (method, strength), group in frame.group_by("method", "strength", maintain_order=True):
        mean, low, high = t_interval(group[column].to_numpy(), config.confidence)
        rows.append({"method": method, "strength": strength, "mean": mean, "low": low, "high": high})
    return pl.DataFrame(rows, schema={"method": pl.String, "strength": pl.Float64, "mean": pl.Float64,
                                      "low": pl.Float64, "high": pl.Float64}).sort("method", "strength")


def _error(frame: pl.DataFrame) -> np.ndarray:
    """Asymmetric error bars; zero where the interval is undefined (one seed)."""
    mean = frame["mean"].to_numpy()
    return np.vstack([mean - frame["low"].fill_null(frame["mean"]).to_numpy(),
                      frame["high"].fill_null(frame["mean"]).to_numpy() - mean])


def frontier(metrics: pl.DataFrame, config: HedgingConfig, path: Path) -> Path:
    risk, turnover = (_by_configuration(metrics, CRISIS, col, config) for col in ("cvar95", "turnover"))
    figure, axis = plt.subplots(figsize=(6, 4.5))
    for method, marker in ((ERM, "s"), (IRM_HEAD, "o"), (VREX, "^")):
        r, t = risk.filter(pl.col("method") == method), turnover.filter(pl.col("method") == method)
        if r.is_empty():
            continue
        axis.errorbar(t["mean"], r["mean"], xerr=_error(t), yerr=_error(r), fmt=marker, capsize=3, label=method)
        for x, y, s in zip(t["mean"], r["mean"], r["strength"], strict=True):
            axis.annotate(f"{s:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    axis.set(xlabel="crisis turnover (shares per option)", ylabel="crisis CVaR-95 of the loss",
             title="CVaR frontier (mean and 95 % t interval across seeds)")
    axis.legend()
    return _save(figure, path)


def qq_plot(erm_pnl: np.ndarray, irm_pnl: np.ndarray, irm_label: str, path: Path) -> Path:
    levels = np.linspace(0.005, 0.995, 199)
    x, y = np.quantile(erm_pnl, levels), np.quantile(irm_pnl, levels)
    figure, axis = plt.subplots(figsize=(5, 5))
    axis.plot(x, y, ".", markersize=3)
    edges = [min(x.min(), y.min()), max(x.max(), y.max())]
    axis.plot(edges, edges, "k--", linewidth=0.8)
    axis.set(xlabel="ERM crisis P&L quantile", ylabel=f"{irm_label} crisis P&L quantile",
             title="QQ plot of crisis P&L\n(above the diagonal: IRM better)")
    return _save(figure, path)


def sweeps(metrics: pl.DataFrame, config: HedgingConfig, path: Path) -> Path:
    risk = _by_configuration(metrics, CRISIS, "cvar95", config)
    erm = risk.filter(pl.col("method") == ERM)
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, method, symbol in ((axes[0], IRM_HEAD, "lambda"), (axes[1], VREX, "beta")):
        frame = risk.filter(pl.col("method") == method)
        if not frame.is_empty():
            axis.errorbar(frame["strength"], frame["mean"], yerr=_error(frame), fmt="o-", capsize=3, label=method)
        if not erm.is_empty():
            axis.axhline(erm["mean"][0], color="k", linestyle="--", linewidth=0.8, label="ERM")
            axis.axhline(erm["mean"][0] * (1 - config.min_cvar_improvement), color="g", linestyle=":",
                         linewidth=0.8, label="ERM - 10 % (target)")
        axis.set_xscale("log")
        axis.set(xlabel=symbol, ylabel="crisis CVaR-95", title=f"{symbol}-sweep ({method})")
        axis.legend(fontsize=7)
    return _save(figure, path)


def _save(figure: plt.Figure, path: Path) -> Path:
    figure.tight_layout()
    # The format is named: the temporary file's name ends in .tmp, not in the image format.
    write_atomic(path, lambda temporary: figure.savefig(temporary, dpi=110, format=path.suffix.removeprefix(".")))
    plt.close(figure)
    return path


def _percent(value: float | None) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{100 * value:+.1f} %"


def study_page(figures: dict[str, Path], success: pl.DataFrame, config: HedgingConfig, path: Path) -> Path:
    """One HTML file: the criterion per configuration (means and t intervals across seeds, verdict,
    selected on `high`) and every figure, embedded as base64 PNG so the file stands alone."""
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in (
            row["method"], f"{row['strength']:g}", row["n_seeds"],
            f"{_percent(row['improvement'])} [{_percent(row['improvement_low'])}, {_percent(row['improvement_high'])}]",
            f"{_percent(row['turnover_increase'])} [{_percent(row['turnover_increase_low'])}, "
            f"{_percent(row['turnover_increase_high'])}]",
            row["verdict"], "yes" if row["selected"] else "")) + "</tr>"
        for row in success.iter_rows(named=True))
    images = "".join(
        f"<figure><img alt='{html.escape(name)}' src='data:image/png;base64,"
        f"{base64.b64encode(figure.read_bytes()).decode()}'><figcaption>{html.escape(name)}</figcaption></figure>"
        for name, figure in figures.items())
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Invariant deep-hedging study</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px}img{max-width:640px}</style></head><body>"
        "<h1>Invariant deep hedging: ERM vs head-only IRM vs V-REx</h1>"
        f"<p>Success criterion: at least {100 * config.min_cvar_improvement:g} % lower crisis CVaR-95 than ERM with at most "
        f"{100 * config.max_turnover_increase:g} % more turnover, judged on {100 * config.confidence:g} % t intervals "
        "across seeds (met / not met / inconclusive). Strengths are selected on <code>high</code> only.</p>"
        "<table><tr><th>method</th><th>strength</th><th>seeds</th><th>crisis CVaR improvement vs ERM</th>"
        f"<th>turnover change</th><th>verdict</th><th>selected on high</th></tr>{rows}</table>{images}</body></html>"
    )
    return write_text_atomic(page, path)
