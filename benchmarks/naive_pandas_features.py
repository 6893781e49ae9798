"""A naive pandas reference for the features benchmark (benchmarks/features.py), written the seed's way.

What "the seed's way" means here: a long frame sorted by (ticker, date), one
`df.groupby("ticker")[col].transform(lambda s: s.rolling(w).<stat>())` per feature and window,
`rolling(w).apply(python_function, raw=True)` for the path statistics (maximum drawdown, days since the
high), `rolling(w).cov/corr` against the market series for the cross-asset features, and
`groupby("date")` for the market proxy, breadth and the per-date preprocessing. No shared intermediates
beyond what the seed code keeps as columns, no numpy kernels.

It reimplements this subset of the asset's raw features (definitions: quantlab_assets/compute/features/),
on the same inputs and with the same null conventions, so the benchmark can compare them value by value:

- price: ret_{1,5,21,63,126,252}d, vol_{5,21,63,126,252}d, mom_{21,63,126,252}d, mdd_{21,63,126,252}d
- technical: mom_12_1, reversal_1m, ma_gap_{20,50,200}, rsi_14 (Wilder), dd_252d, days_since_high_252d
- microstructure: volume_ratio_{5,21}d_63d, turnover_21d, log_dollar_volume_21d, amihud_21d
- cross-asset (against the equal-weighted market proxy): corr_{21,63,126}d, beta_{63,126,252}d,
  rel_strength_{21,63,126}d, rank_ret_21d, rank_vol_21d, rank_mom_12_1
- regime: vol_ratio_21d_126d, volume_shock_{5,21}d, gap_mean_21d, gap_std_21d, gap_maxabs_21d,
  breadth_up, adv_decline_ratio, breadth_above_ma50, breadth_ma_21d
- preprocessing: `<name>__rz` (rolling 252-row z-score) of the asset's default list and `<name>__wz`
  (winsorised [1 %, 99 %] per date, then z-scored within date and industry) of the asset's default list

Price-path features read the return index exp(cumulative log return), as the asset does (base.py): the
cleaned bars' capped returns then agree with the path features. The asset's FFD features are not part of
compute_features and not reimplemented.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SQRT_YEAR = np.sqrt(252.0)

RZ_FEATURES = ("ret_1d", "ret_5d", "ret_21d", "vol_21d", "amihud_21d", "log_dollar_volume_21d")
WZ_FEATURES = (
    "mom_12_1", "reversal_1m", "ma_gap_20", "ma_gap_50", "ma_gap_200", "rsi_14", "vol_21d", "dd_252d",
    "days_since_high_252d", "volume_ratio_5d_63d", "volume_ratio_21d_63d", "turnover_21d", "amihud_21d",
)


def max_drawdown(prices: np.ndarray) -> float:
    """Maximum drawdown of a price window (<= 0): min of price / running maximum - 1."""
    return float(np.min(prices / np.maximum.accumulate(prices)) - 1.0)


def rows_since_max(values: np.ndarray) -> float:
    """Rows since the window's (latest) maximum."""
    return float(np.argmax(values[::-1] == values.max()))


def _ratio(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    return (numerator / denominator).where(denominator != 0)


def compute_features_naive(bars: pd.DataFrame, universe: pd.DataFrame) -> pd.DataFrame:
    """Features of cleaned bars (date, ticker, open, close, volume, log_return), sorted by (date, ticker)."""
    df = bars[["date", "ticker", "open", "close", "volume", "log_return"]].sort_values(["ticker", "date"])
    df = df.reset_index(drop=True)
    g = df.groupby("ticker", sort=False)

    # Helpers: return index, price change, overnight gap, dollar volume, the market proxy.
    df["log_price"] = g["log_return"].transform(lambda s: s.fillna(0.0).cumsum())
    df["price"] = np.exp(df["log_price"])
    df["price_change"] = g["price"].transform(lambda s: s.diff())
    df["gap"] = np.log(df["open"] / g["close"].transform(lambda s: s.shift(1)))
    df["dollar_volume"] = df["close"] * df["volume"]
    df["bench"] = df.groupby("date")["log_return"].transform("mean")
    g = df.groupby("ticker", sort=False)

    # Price.
    for w in (1, 5, 21, 63, 126, 252):
        df[f"ret_{w}d"] = df["log_return"] if w == 1 else g["log_return"].transform(lambda s: s.rolling(w).sum())
    for w in (5, 21, 63, 126, 252):
        df[f"vol_{w}d"] = g["log_return"].transform(lambda s: s.rolling(w, min_periods=2).std()) * SQRT_YEAR
    for w in (21, 63, 126, 252):
        df[f"mom_{w}d"] = np.exp(df[f"ret_{w}d"]) - 1.0
    for w in (21, 63, 126, 252):
        df[f"mdd_{w}d"] = g["price"].transform(lambda s: s.rolling(w).apply(max_drawdown, raw=True))

    # Technical.
    df["mom_12_1"] = g["log_return"].transform(lambda s: s.rolling(231).sum().shift(21))
    df["reversal_1m"] = -df["ret_21d"]
    for w in (20, 50, 200):
        df[f"ma_gap_{w}"] = df["price"] / g["price"].transform(lambda s: s.rolling(w).mean()) - 1.0

    def wilder(s: pd.Series) -> pd.Series:
        # Seed: the first 14 changes' simple mean, then avg = avg + (x - avg) / 14.
        seeded = s.rolling(14).mean().where(np.arange(len(s)) == 14, s).where(np.arange(len(s)) >= 14)
        return seeded.ewm(alpha=1 / 14, adjust=False).mean()

    df["gain"] = df["price_change"].clip(lower=0.0)
    df["loss"] = (-df["price_change"]).clip(lower=0.0)
    g = df.groupby("ticker", sort=False)
    avg_gain, avg_loss = g["gain"].transform(wilder), g["loss"].transform(wilder)
    df["rsi_14"] = 100.0 * _ratio(avg_gain, avg_gain + avg_loss)
    df["dd_252d"] = np.exp(df["log_price"] - g["log_price"].transform(lambda s: s.rolling(252).max())) - 1.0
    df["days_since_high_252d"] = g["log_price"].transform(lambda s: s.rolling(252).apply(rows_since_max, raw=True))

    # Microstructure.
    volume_mean = {w: g["volume"].transform(lambda s: s.rolling(w).mean()) for w in (5, 21, 63, 252)}
    for w in (5, 21):
        df[f"volume_ratio_{w}d_63d"] = _ratio(volume_mean[w], volume_mean[63])
    dollar_mean = g["dollar_volume"].transform(lambda s: s.rolling(21).mean())
    dollar_median = g["dollar_volume"].transform(lambda s: s.rolling(252).median())
    df["turnover_21d"] = _ratio(dollar_mean, dollar_median)
    df["log_dollar_volume_21d"] = np.log(dollar_mean.where(dollar_mean > 0))
    df["amihud"] = (df["log_return"].abs() / df["dollar_volume"]).where(df["dollar_volume"] > 0)
    df["amihud_traded"] = df["amihud"].notna().astype(float)
    df["amihud"] = df["amihud"].fillna(0.0)
    g = df.groupby("ticker", sort=False)
    amihud_sum = g["amihud"].transform(lambda s: s.rolling(21).sum())
    traded = g["amihud_traded"].transform(lambda s: s.rolling(21).sum())
    df["amihud_21d"] = (1e6 * _ratio(amihud_sum, traded)).where(df["ret_21d"].notna())

    # Cross-asset, against the equal-weighted market proxy (pairs where both returns exist).
    paired = df["log_return"].notna() & df["bench"].notna()
    df["r_p"], df["b_p"] = df["log_return"].where(paired), df["bench"].where(paired)
    g = df.groupby("ticker", sort=False)
    bench = df["b_p"]
    for w in (21, 63, 126):
        corr = g["r_p"].transform(lambda s: s.rolling(w).corr(bench.loc[s.index]))
        df[f"corr_{w}d"] = corr.clip(-1.0, 1.0)
    for w in (63, 126, 252):
        cov = g["r_p"].transform(lambda s: s.rolling(w).cov(bench.loc[s.index]))
        var = g["b_p"].transform(lambda s: s.rolling(w).var())
        df[f"beta_{w}d"] = _ratio(cov, var)
    df["excess"] = df["log_return"] - df["bench"]
    g = df.groupby("ticker", sort=False)
    for w in (21, 63, 126):
        df[f"rel_strength_{w}d"] = g["excess"].transform(lambda s: s.rolling(w).sum())

    # Regime (per instrument).
    df["vol_ratio_21d_126d"] = _ratio(df["vol_21d"], df["vol_126d"])
    for w in (5, 21):
        ratio = volume_mean[w] / volume_mean[252]
        df[f"volume_shock_{w}d"] = np.log(ratio.where((volume_mean[w] > 0) & (volume_mean[252] > 0)))
    df["gap_mean_21d"] = g["gap"].transform(lambda s: s.rolling(21).mean())
    df["gap_std_21d"] = g["gap"].transform(lambda s: s.rolling(21).std())
    df["gap_abs"] = df["gap"].abs()
    g = df.groupby("ticker", sort=False)
    df["gap_maxabs_21d"] = g["gap_abs"].transform(lambda s: s.rolling(21).max())

    # Rolling z-scores over the instrument's last 252 rows.
    for name in RZ_FEATURES:
        mean = g[name].transform(lambda s: s.rolling(252).mean())
        std = g[name].transform(lambda s: s.rolling(252).std())
        df[f"{name}__rz"] = ((df[name] - mean) / std).where(std > 0)

    # Per date from here on.
    df = df.sort_values(["date", "ticker"]).reset_index(drop=True)
    d = df.groupby("date", sort=False)
    has_return = df["log_return"].notna()
    df["up"] = (df["log_return"] > 0).astype(float).where(has_return)
    df["down"] = (df["log_return"] < 0).astype(float)
    df["above_ma50"] = (df["ma_gap_50"] > 0).astype(float).where(df["ma_gap_50"].notna())
    d = df.groupby("date", sort=False)
    df["breadth_up"] = d["up"].transform("mean")
    advances, declines = d["up"].transform("sum"), d["down"].transform("sum")
    df["adv_decline_ratio"] = _ratio(advances, declines)
    df["breadth_above_ma50"] = d["above_ma50"].transform("mean")
    breadth = d["up"].mean().rolling(21).mean()
    df["breadth_ma_21d"] = df["date"].map(breadth)
    for name, source in (("rank_ret_21d", "ret_21d"), ("rank_vol_21d", "vol_21d"), ("rank_mom_12_1", "mom_12_1")):
        rank = d[source].rank(method="average")
        count = d[source].transform("count")
        df[name] = ((rank - 1.0) / (count - 1)).where(count > 1, 0.5).where(df[source].notna())

    # Winsorised per date at [1 %, 99 %], then z-scored within (date, industry).
    df["industry"] = df["ticker"].map(dict(zip(universe["ticker"], universe["industry"], strict=True)))
    for name in WZ_FEATURES:
        clipped = df[name].clip(d[name].transform("quantile", 0.01), d[name].transform("quantile", 0.99))
        df["clipped"] = clipped
        by_industry = df.groupby(["date", "industry"], sort=False)["clipped"]
        mean, std = by_industry.transform("mean"), by_industry.transform("std")
        df[f"{name}__wz"] = ((clipped - mean) / std).where(std > 0)

    columns = [name for name in df.columns if name in FEATURE_COLUMNS]
    return df[["date", "ticker", *columns]]


FEATURE_COLUMNS = frozenset(
    [f"ret_{w}d" for w in (1, 5, 21, 63, 126, 252)]
    + [f"vol_{w}d" for w in (5, 21, 63, 126, 252)]
    + [f"mom_{w}d" for w in (21, 63, 126, 252)]
    + [f"mdd_{w}d" for w in (21, 63, 126, 252)]
    + ["mom_12_1", "reversal_1m", "ma_gap_20", "ma_gap_50", "ma_gap_200", "rsi_14", "dd_252d", "days_since_high_252d"]
    + ["volume_ratio_5d_63d", "volume_ratio_21d_63d", "turnover_21d", "log_dollar_volume_21d", "amihud_21d"]
    + [f"corr_{w}d" for w in (21, 63, 126)]
    + [f"beta_{w}d" for w in (63, 126, 252)]
    + [f"rel_strength_{w}d" for w in (21, 63, 126)]
    + ["rank_ret_21d", "rank_vol_21d", "rank_mom_12_1"]
    + ["vol_ratio_21d_126d", "volume_shock_5d", "volume_shock_21d", "gap_mean_21d", "gap_std_21d", "gap_maxabs_21d"]
    + ["breadth_up", "adv_decline_ratio", "breadth_above_ma50", "breadth_ma_21d"]
    + [f"{name}__rz" for name in RZ_FEATURES]
    + [f"{name}__wz" for name in WZ_FEATURES]
)
