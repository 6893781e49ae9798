"""A seeded synthetic daily OHLCV market: the lab's embedded, offline default universe.

The market is a factor model with the features a cleaning pipeline and the research assets downstream
must cope with:

- a market factor with stochastic volatility (AR(1) log-vol) and dated crisis episodes
  (`SyntheticMarketParams.crisis_episodes`: autumn 2008, August 2011, March 2020) in which volatility
  is multiplied and the drift turns negative;
- sector factors (and industries nested in sectors), instrument betas, idiosyncratic noise;
- overnight gaps (a share of each day's move happens between the previous close and the open),
  intraday ranges proportional to volatility, volume that rises with |return|;
- late listings and delistings, occasional missing days, and a small rate of planted data defects
  (10x price spikes, non-positive prices, high < low, negative volume) that cleaning must catch;
- two **planted cross-sectional signals** (docs/studies.md, "The synthetic market's planted signals"):
  - the **price signal**, observable: each day's raw score is computed from the instruments' own past
    returns and volumes (`price_signal_score`: a short-horizon reversal amplified by a volume shock),
    averaged over days (half-life `price_signal_half_life_days`) and standardised across the members;
    the expected log return from close t to close t+1 is raised by
    `price_signal_strength * idio_vol_daily[i] * score[t, i]` (`planted_expected_return`). A model on
    the lab's features can recover it; its oracle is
    `planted_oracle_rank_ic(market, PLANTED_EXPECTED_RETURN, 21)`.
  - the **latent signal**, not observable: a per-instrument AR(1) score `s[t, i]` (unit variance,
    half-life `signal_half_life_days`) that no price reveals directly (its persistent drift leaves a
    weak momentum in past returns), which shifts the expected log return
    from close t to close t+1 by `signal_strength * idio_vol_daily[i] * s[t, i]` (`planted_signal`).
    Its oracle is the ceiling of a model that is *given* the latent score (the leakage canaries);
    a model of prices stays far below it.

Every random component is drawn from its own child stream with shape (days, instruments), so the
panel is **prefix-stable**: extending `end` appends days and never changes the days already generated
(the daily refresh of the newest partition never rewrites history). The price signal feeds back into the
returns it is computed from, so the days are generated in order (one vectorised step over instruments
per day); each step reads only days up to t. Same parameters → bit-identical panel.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from quantlab_assets.compute import columns as c

TRADING_DAYS_PER_YEAR = 252


@dataclass(frozen=True)
class CrisisEpisode:
    """A dated stress window: market volatility is multiplied and the daily drift turns negative."""

    name: str
    start: dt.date
    end: dt.date
    vol_multiplier: float
    annual_drift: float


@dataclass(frozen=True)
class SyntheticMarketParams:
    """Every knob of the synthetic market, with defaults chosen to look like a US large-cap panel."""

    seed: int = 42
    n_instruments: int = 50
    start: dt.date = dt.date(2005, 1, 3)
    # 20 years of business days (no exchange holidays: the synthetic calendar is Monday to Friday).
    end: dt.date = dt.date(2024, 12, 31)
    n_sectors: int = 5
    industries_per_sector: int = 2
    market_annual_drift: float = 0.07
    market_annual_vol: float = 0.16
    # Log-vol AR(1): persistence close to 1 gives vol clustering lasting weeks to months.
    vol_persistence: float = 0.985
    vol_of_vol: float = 0.08
    sector_annual_vol: float = 0.10
    idio_annual_vol_range: tuple[float, float] = (0.15, 0.40)
    beta_range: tuple[float, float] = (0.6, 1.4)
    # Share of a day's move that happens overnight (close -> open), plus independent gap noise.
    gap_share: float = 0.3
    gap_noise_annual_vol: float = 0.05
    # Intraday range (high/low beyond open/close) as a multiple of the day's volatility.
    range_vol_multiple: float = 0.5
    base_volume_range: tuple[float, float] = (2e5, 5e6)
    # log(volume) rises by this much per unit of |standardised return|.
    volume_return_sensitivity: float = 0.35
    volume_noise: float = 0.25
    initial_price_range: tuple[float, float] = (20.0, 200.0)
    missing_day_probability: float = 0.002
    # Share of instruments that list after `start` (up to `max_listing_delay_days` later) / delist early.
    late_listing_share: float = 0.1
    max_listing_delay_days: int = 1500
    delisting_share: float = 0.04
    # Planted defects per instrument-day; each is one of DEFECT_KINDS.
    defect_probability: float = 2e-4
    # Latent AR(1) signal (unobservable from prices): strength in units of the daily idio vol.
    signal_strength: float = 0.06
    signal_half_life_days: float = 21.0
    # Price-observable signal: strength in units of the daily idio vol; the half-lives of the exponential
    # averages of the short-horizon return and of the log-volume shock over its slow baseline
    # (price_signal_score), and of the raw score itself (the signal's persistence); the reversal of a
    # move on ordinary volume (a volume shock adds up to +-1 to it).
    price_signal_strength: float = 0.06
    reversal_half_life_days: float = 3.0
    volume_shock_half_life_days: float = 3.0
    volume_baseline_half_life_days: float = 63.0
    price_signal_half_life_days: float = 10.0
    base_reversal: float = 0.25
    crisis_episodes: tuple[CrisisEpisode, ...] = field(
        default=(
            CrisisEpisode("gfc_2008", dt.date(2008, 9, 15), dt.date(2009, 3, 9), 3.5, -0.60),
            CrisisEpisode("euro_2011", dt.date(2011, 8, 1), dt.date(2011, 10, 3), 2.2, -0.35),
            CrisisEpisode("covid_2020", dt.date(2020, 2, 24), dt.date(2020, 3, 23), 5.0, -2.50),
        )
    )


DEFECT_KINDS = ("price_spike_x10", "non_positive_price", "high_below_low", "negative_volume")


@dataclass(frozen=True)
class SyntheticMarket:
    """The generated panel: bars as a data vendor would send them, and the oracle behind them.

    bars: long frame (date, ticker, open, high, low, close, adj_close, volume), sorted by date, ticker.
    oracle: long frame (date, ticker, planted_signal, planted_expected_return, planted_defect) on the same
    rows as `bars`: the latent score (its drift over (t, t+1] is `signal_strength * idio vol * score`),
    the price signal's expected log return over (t, t+1], and the planted defect kind.
    universe: one row per instrument (ticker, name, sector, industry, and the membership columns of
    compute/universe.py: every instrument tradable, `listed` the first bar of a late listing, `delisted`
    the last bar of a delisting, no delisting return: a synthetic delisting is a cash exit at the last price).
    """

    bars: pl.DataFrame
    oracle: pl.DataFrame
    universe: pl.DataFrame


def business_days(start: dt.date, end: dt.date) -> np.ndarray:
    """Monday-to-Friday dates in [start, end] as datetime64[D]."""
    days = np.arange(np.datetime64(start, "D"), np.datetime64(end, "D") + 1, dtype="datetime64[D]")
    return days[np.is_busday(days)]


def synthetic_tickers(n_instruments: int) -> list[str]:
    return [f"SYN{i:03d}" for i in range(n_instruments)]


def _ar1(innovations: np.ndarray, persistence: float, initial: np.ndarray) -> np.ndarray:
    """Stationary unit-variance AR(1) along axis 0, started from `initial` (shape (n,))."""
    scaled = innovations * np.sqrt(1.0 - persistence**2)
    # Imported here: scipy.signal takes 0.7 s to import, and every run process loads this module.
    from scipy.signal import lfilter

    path, _ = lfilter([1.0], [1.0, -persistence], scaled, axis=0, zi=(persistence * initial)[None, :])
    return path


def _cross_sectional_z(values: np.ndarray, live: np.ndarray) -> np.ndarray:
    """(x - mean) / std over the live instruments of one day (population std); 0 elsewhere and where the
    live instruments have no dispersion. `live` is a 0/1 float mask (arithmetic, not boolean indexing:
    this runs several times per generated day)."""
    count = live.sum()
    if count < 2:
        return np.zeros_like(values)
    centred = (values - (values * live).sum() / count) * live
    std = np.sqrt((centred * centred).sum() / count)
    return centred / std if std > 0 else np.zeros_like(values)


def price_signal_score(
    short_return: np.ndarray, volume_shock: np.ndarray, live: np.ndarray, base_reversal: float
) -> np.ndarray:
    """The price signal's raw score on one day: minus the short-horizon return, times a volume-shock gain.

    -z(short_return) * (base_reversal + tanh(z(volume_shock))), z the day's cross-sectional z-score over
    the live instruments (`live`: a 0/1 float mask; 0 elsewhere). A recent move on heavy volume is
    expected to revert, one on thin volume to continue (the gain changes sign below a volume shock of
    about -0.26 sd at base_reversal 0.25): a nonlinear interaction that no single feature column holds
    and a linear model of the features reads only in part. The generator averages it over days.
    """
    return -_cross_sectional_z(short_return, live) * (base_reversal + np.tanh(_cross_sectional_z(volume_shock, live)))


def _ema_weight(half_life_days: float) -> float:
    """The weight of the newest value in an exponential average of half-life `half_life_days`."""
    return 1.0 - 0.5 ** (1.0 / half_life_days)


@dataclass(frozen=True)
class _PlantedPrices:
    log_ret: np.ndarray  # (days, instruments): every planted drift included
    log_volume_move: np.ndarray  # (days, instruments): log(volume / base volume), before rounding
    expected_return: np.ndarray  # (days, instruments): the price signal's drift over (t, t+1]


def _plant_price_signal(
    base_ret: np.ndarray,
    total_vol: np.ndarray,
    volume_noise: np.ndarray,
    live: np.ndarray,
    idio_vol: np.ndarray,
    params: SyntheticMarketParams,
) -> _PlantedPrices:
    """Returns and volumes with the price signal planted, one day at a time (each day's drift is a
    function of the days before it), vectorised over instruments.

    base_ret: every other component of the log return (market, sectors, latent drift, idio noise);
    volume_noise: the volume's own noise term; live: (days, instruments) True where listed and not yet delisted.
    """
    n_days, n = base_ret.shape
    log_ret, log_volume_move = base_ret.copy(), np.empty_like(base_ret)
    expected = np.zeros_like(base_ret)
    short_weight = _ema_weight(params.reversal_half_life_days)
    shock_weight = _ema_weight(params.volume_shock_half_life_days)
    baseline_weight = _ema_weight(params.volume_baseline_half_life_days)
    score_weight = _ema_weight(params.price_signal_half_life_days)
    short, shock, baseline, score = (np.zeros(n) for _ in range(4))
    drift_scale = params.price_signal_strength * idio_vol
    live_weight = live.astype(np.float64)
    for t in range(n_days):
        if t > 0:
            log_ret[t] += expected[t - 1]
        log_volume_move[t] = params.volume_return_sensitivity * np.abs(log_ret[t]) / total_vol[t] + volume_noise[t]
        short += short_weight * (log_ret[t] - short)
        # The shock: recent log volume above its slow baseline (updated after, so today is not its own baseline).
        shock += shock_weight * (log_volume_move[t] - baseline - shock)
        baseline += baseline_weight * (log_volume_move[t] - baseline)
        score += score_weight * (price_signal_score(short, shock, live_weight[t], params.base_reversal) - score)
        expected[t] = drift_scale * _cross_sectional_z(score, live_weight[t])
    return _PlantedPrices(log_ret=log_ret, log_volume_move=log_volume_move, expected_return=expected)


def _instrument_streams(params: SyntheticMarketParams) -> dict[str, np.random.Generator]:
    names = (
        "static", "market", "log_vol", "sector", "idio", "signal", "gap", "range_hi", "range_lo",
        "volume", "missing", "defect_where", "defect_kind",
    )
    children = np.random.SeedSequence(params.seed).spawn(len(names))
    return {name: np.random.default_rng(seq) for name, seq in zip(names, children, strict=True)}


def generate_synthetic_market(params: SyntheticMarketParams = SyntheticMarketParams()) -> SyntheticMarket:
    """Generate the whole panel from `params.start` to `params.end` (vectorised over days x instruments)."""
    days = business_days(params.start, params.end)
    n_days, n = len(days), params.n_instruments
    if n_days < 2:
        raise ValueError(f"synthetic market needs at least 2 business days, got {n_days}")
    rng = _instrument_streams(params)
    daily = 1.0 / np.sqrt(TRADING_DAYS_PER_YEAR)

    # Static, per-instrument draws (independent of the number of days: keeps the panel prefix-stable).
    static = rng["static"]
    n_industries = params.n_sectors * params.industries_per_sector
    industry = static.integers(0, n_industries, size=n)
    sector = industry // params.industries_per_sector
    beta = static.uniform(*params.beta_range, size=n)
    idio_vol = static.uniform(*params.idio_annual_vol_range, size=n) * daily
    base_volume = np.exp(static.uniform(*np.log(params.base_volume_range), size=n))
    initial_price = static.uniform(*params.initial_price_range, size=n)
    signal_start = static.standard_normal(n)
    log_vol_start = static.standard_normal(1)
    listing_delay = np.where(
        static.uniform(size=n) < params.late_listing_share,
        static.integers(1, params.max_listing_delay_days, size=n),
        0,
    )
    delist_draw = static.uniform(size=n)
    delist_after = static.integers(2 * TRADING_DAYS_PER_YEAR, 10 * TRADING_DAYS_PER_YEAR, size=n)

    # Market factor: stochastic vol times crisis multipliers, drift negative inside crises.
    log_vol = _ar1(rng["log_vol"].standard_normal((n_days, 1)), params.vol_persistence, log_vol_start)
    vol_scale = np.exp(params.vol_of_vol / np.sqrt(1 - params.vol_persistence**2) * log_vol[:, 0])
    vol_scale /= np.exp(0.5 * (params.vol_of_vol**2 / (1 - params.vol_persistence**2)))
    crisis_mult = np.ones(n_days)
    drift = np.full(n_days, params.market_annual_drift / TRADING_DAYS_PER_YEAR)
    for episode in params.crisis_episodes:
        inside = (days >= np.datetime64(episode.start)) & (days <= np.datetime64(episode.end))
        crisis_mult[inside] = episode.vol_multiplier
        drift[inside] = episode.annual_drift / TRADING_DAYS_PER_YEAR
    market_vol = params.market_annual_vol * daily * vol_scale * crisis_mult  # (days,)
    market = drift + market_vol * rng["market"].standard_normal(n_days)

    # Sector factors share the market's vol regime (crises hit every sector).
    sector_ret = (params.sector_annual_vol * daily) * (vol_scale * crisis_mult)[:, None] * rng[
        "sector"
    ].standard_normal((n_days, params.n_sectors))

    # Membership: listed, not delisted (static draws, so a day's membership does not depend on `end`).
    day_index = np.arange(n_days)[:, None]
    delisted_at = np.where(delist_draw < params.delisting_share, listing_delay + delist_after, n_days)
    live = (day_index >= listing_delay[None, :]) & (day_index < delisted_at[None, :])

    # Latent signal: known at close t, shifts the expected return over (t, t+1]; no price reveals it.
    persistence = 0.5 ** (1.0 / params.signal_half_life_days)
    signal = _ar1(rng["signal"].standard_normal((n_days, n)), persistence, signal_start)
    signal_drift = np.zeros((n_days, n))
    signal_drift[1:] = params.signal_strength * idio_vol[None, :] * signal[:-1]
    idio_scale = np.sqrt(crisis_mult)[:, None] * idio_vol[None, :]
    idio = idio_scale * rng["idio"].standard_normal((n_days, n))
    base_ret = beta[None, :] * market[:, None] + sector_ret[:, sector] + signal_drift + idio
    base_ret[0] = 0.0
    total_vol = np.sqrt((beta[None, :] * market_vol[:, None]) ** 2 + idio_scale**2)
    # Price signal: computed from the returns and volumes up to close t, shifts the return over (t, t+1].
    volume_noise = params.volume_noise * rng["volume"].standard_normal((n_days, n))
    planted = _plant_price_signal(base_ret, total_vol, volume_noise, live, idio_vol, params)
    log_ret = planted.log_ret

    close = initial_price[None, :] * np.exp(np.cumsum(log_ret, axis=0))
    gap = params.gap_share * log_ret + params.gap_noise_annual_vol * daily * rng["gap"].standard_normal(
        (n_days, n)
    )
    gap[0] = 0.0
    prev_close = np.vstack([close[:1], close[:-1]])
    open_ = prev_close * np.exp(gap)
    range_hi = np.abs(rng["range_hi"].standard_normal((n_days, n))) * params.range_vol_multiple * total_vol
    range_lo = np.abs(rng["range_lo"].standard_normal((n_days, n))) * params.range_vol_multiple * total_vol
    high = np.maximum(open_, close) * np.exp(range_hi)
    low = np.minimum(open_, close) * np.exp(-range_lo)
    volume = np.round(base_volume[None, :] * np.exp(planted.log_volume_move))

    # Observed rows: members, not randomly missing.
    observed = live & (rng["missing"].uniform(size=(n_days, n)) >= params.missing_day_probability)

    defect_where = rng["defect_where"].uniform(size=(n_days, n)) < params.defect_probability
    defect_kind = rng["defect_kind"].integers(0, len(DEFECT_KINDS), size=(n_days, n))
    defect_where[0] = False
    spike = defect_where & (defect_kind == 0)
    close = np.where(spike, close * 10.0, close)
    high = np.where(spike, np.maximum(high, close), high)
    non_positive = defect_where & (defect_kind == 1)
    close = np.where(non_positive, 0.0, close)
    low = np.where(non_positive, 0.0, low)
    swapped = defect_where & (defect_kind == 2)
    high, low = np.where(swapped, low, high), np.where(swapped, high, low)
    volume = np.where(defect_where & (defect_kind == 3), -volume, volume)
    defect_code = np.where(defect_where, defect_kind, -1)

    rows_day, rows_instr = np.nonzero(observed)  # row-major: sorted by date, then ticker
    tickers = pl.Series(c.TICKER, synthetic_tickers(n), dtype=pl.String)
    row_tickers = tickers.gather(rows_instr)
    row_defects = pl.Series(defect_code[rows_day, rows_instr]).replace_strict(
        dict(enumerate(DEFECT_KINDS)), default=None, return_dtype=pl.String
    )
    bars = pl.DataFrame(
        {
            c.DATE: days[rows_day],
            c.TICKER: row_tickers,
            c.OPEN: open_[rows_day, rows_instr],
            c.HIGH: high[rows_day, rows_instr],
            c.LOW: low[rows_day, rows_instr],
            c.CLOSE: close[rows_day, rows_instr],
            c.ADJ_CLOSE: close[rows_day, rows_instr],
            c.VOLUME: volume[rows_day, rows_instr],
        },
        schema_overrides={c.DATE: pl.Date},
    )
    oracle = pl.DataFrame(
        {
            c.DATE: days[rows_day],
            c.TICKER: row_tickers,
            c.PLANTED_SIGNAL: signal[rows_day, rows_instr],
            c.PLANTED_EXPECTED_RETURN: planted.expected_return[rows_day, rows_instr],
            c.PLANTED_DEFECT: row_defects,
        },
        schema_overrides={c.DATE: pl.Date},
    )
    # Membership dates from the static draws alone (the k-th business day from `start`), so they do not
    # depend on `end`: a delisting drawn past the panel's end is a date no bar reaches yet.
    first_day = np.datetime64(params.start, "D")
    delists = delist_draw < params.delisting_share
    universe = pl.DataFrame(
        {
            c.TICKER: tickers,
            c.NAME: [f"Synthetic instrument {i}" for i in range(n)],
            c.SECTOR: [f"sector_{s}" for s in sector],
            c.INDUSTRY: [f"sector_{s}.industry_{i % params.industries_per_sector}" for s, i in zip(sector, industry, strict=True)],
            c.TRADABLE: np.ones(n, dtype=bool),
            c.LISTED: pl.Series(np.busday_offset(first_day, listing_delay, roll="forward")).cast(pl.Date),
            c.DELISTED: pl.Series(
                np.busday_offset(first_day, listing_delay + delist_after - 1, roll="forward")
            ).cast(pl.Date),
            c.DELISTING_RETURN: pl.Series([None] * n, dtype=pl.Float64),
        }
    ).with_columns(
        pl.when(pl.Series(listing_delay > 0)).then(pl.col(c.LISTED)),
        pl.when(pl.Series(delists)).then(pl.col(c.DELISTED)),
    )
    return SyntheticMarket(bars=bars, oracle=oracle, universe=universe)


def planted_oracle_rank_ic(market: SyntheticMarket, signal: str, horizon_days: int, min_names: int = 5) -> float:
    """The oracle rank IC of a planted signal: the mean over dates of the Spearman correlation, across the
    members at t, between `signal` (an oracle column: PLANTED_EXPECTED_RETURN or PLANTED_SIGNAL) at t
    and the realised log return from close t to close t + `horizon_days` business days.

    Returns come from the defect-free closes (a row with a planted defect, at t or at t + h, is left out),
    and a date counts when at least `min_names` members have both ends and the signal varies across them. It is the IC a forecast equal to
    the planted signal reaches against the raw forward return, the yardstick of a model's rank IC.
    """
    day = pl.col(c.DATE).rank("dense").cast(pl.Int64).alias("_day")
    clean = (
        market.bars.select(c.DATE, c.TICKER, c.CLOSE)
        .join(market.oracle, on=[c.DATE, c.TICKER])
        .filter(pl.col(c.PLANTED_DEFECT).is_null())
        .with_columns(day, pl.col(c.CLOSE).log().alias("_log_close"))
    )
    ahead = clean.select(c.TICKER, (pl.col("_day") - horizon_days).alias("_day"), pl.col("_log_close").alias("_ahead"))
    per_date = (
        clean.join(ahead, on=[c.TICKER, "_day"])
        .group_by(c.DATE)
        .agg(pl.corr(signal, pl.col("_ahead") - pl.col("_log_close"), method="spearman").alias("ic"), pl.len().alias("n"))
    )
    # A date whose signal has no dispersion (the first day of the price signal) has no correlation.
    return float(per_date.filter((pl.col("n") >= min_names) & pl.col("ic").is_not_nan())["ic"].mean())
