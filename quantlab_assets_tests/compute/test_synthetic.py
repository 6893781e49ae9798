"""The seeded synthetic market: reproducible, prefix-stable, and with the features it promises."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.cleaning import ACTION_REJECTED, CleaningParams, clean_bars
from quantlab_assets.compute.data.raw import as_raw_frame
from quantlab_assets.compute.data import synthetic
from quantlab_assets.compute.data.synthetic import (
    DEFECT_KINDS,
    SyntheticMarket,
    SyntheticMarketParams,
    business_days,
    generate_synthetic_market,
    planted_oracle_rank_ic,
    price_signal_score,
    synthetic_tickers,
)

# Defect kind planted by the generator -> the cleaning rule that must catch it.
DEFECT_RULES = {
    "price_spike_x10": "reverted_spike",
    "non_positive_price": "non_positive_price",
    "high_below_low": "ohlc_inconsistent",
    "negative_volume": "negative_volume",
}
COVID = next(e for e in SyntheticMarketParams().crisis_episodes if e.name == "covid_2020")


def _assert_markets_equal(left: SyntheticMarket, right: SyntheticMarket) -> None:
    assert_frame_equal(left.bars, right.bars, check_exact=True)
    assert_frame_equal(left.oracle, right.oracle, check_exact=True)
    assert_frame_equal(left.universe, right.universe, check_exact=True)


def _log_returns(bars: pl.DataFrame) -> pl.DataFrame:
    return bars.sort(c.TICKER, c.DATE).with_columns(
        pl.col(c.CLOSE).log().diff().over(c.TICKER).alias(c.LOG_RETURN)
    ).drop_nulls(c.LOG_RETURN)


def test_same_seed_gives_a_bit_identical_market(small_market_params: SyntheticMarketParams) -> None:
    _assert_markets_equal(generate_synthetic_market(small_market_params), generate_synthetic_market(small_market_params))


def test_a_different_seed_gives_a_different_market(small_market: SyntheticMarket, small_market_params) -> None:
    other = generate_synthetic_market(dataclasses.replace(small_market_params, seed=small_market_params.seed + 1))
    joined = small_market.bars.join(other.bars, on=[c.DATE, c.TICKER], suffix="_other")
    assert joined.height > 1000
    assert (joined[c.CLOSE] != joined[f"{c.CLOSE}_other"]).mean() > 0.99


@pytest.mark.parametrize(
    "short_end",
    [
        pytest.param(dt.date(2019, 1, 2), id="two-days"),
        pytest.param(dt.date(2020, 3, 6), id="inside-crisis"),
        pytest.param(dt.date(2021, 6, 29), id="one-day-short"),
    ],
)
def test_panel_is_prefix_stable(small_market: SyntheticMarket, small_market_params, short_end: dt.date) -> None:
    short = generate_synthetic_market(dataclasses.replace(small_market_params, end=short_end))
    head = SyntheticMarket(
        bars=small_market.bars.filter(pl.col(c.DATE) <= short_end),
        oracle=small_market.oracle.filter(pl.col(c.DATE) <= short_end),
        universe=small_market.universe,
    )
    assert short.bars.height > 0
    _assert_markets_equal(short, head)


def test_bars_are_sorted_unique_on_business_days(small_market: SyntheticMarket, small_market_params) -> None:
    bars = small_market.bars
    assert_frame_equal(bars, bars.sort(c.DATE, c.TICKER))
    assert bars.select(c.DATE, c.TICKER).is_duplicated().sum() == 0
    assert bars[c.DATE].dt.weekday().max() <= 5
    assert bars[c.DATE].min() >= small_market_params.start and bars[c.DATE].max() <= small_market_params.end
    assert set(bars[c.TICKER].unique()) <= set(synthetic_tickers(small_market_params.n_instruments))
    assert_frame_equal(small_market.oracle.select(c.DATE, c.TICKER), bars.select(c.DATE, c.TICKER))


def test_universe_has_one_row_per_instrument_with_nested_industries(small_market: SyntheticMarket) -> None:
    universe = small_market.universe
    assert universe[c.TICKER].to_list() == synthetic_tickers(6)
    assert universe.columns == [c.TICKER, c.NAME, c.SECTOR, c.INDUSTRY, c.TRADABLE, c.LISTED, c.DELISTED, c.DELISTING_RETURN]
    # An industry belongs to exactly one sector, and is named after it.
    assert universe.group_by(c.INDUSTRY).agg(pl.col(c.SECTOR).n_unique())[c.SECTOR].max() == 1
    assert all(industry.startswith(sector + ".") for sector, industry in universe.select(c.SECTOR, c.INDUSTRY).iter_rows())


def test_business_days_are_monday_to_friday_inclusive() -> None:
    days = business_days(dt.date(2024, 1, 5), dt.date(2024, 1, 15))  # Friday .. Monday
    assert [str(day) for day in days] == [
        "2024-01-05", "2024-01-08", "2024-01-09", "2024-01-10", "2024-01-11", "2024-01-12", "2024-01-15",
    ]


def test_fewer_than_two_business_days_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least 2 business days"):
        generate_synthetic_market(SyntheticMarketParams(start=dt.date(2024, 1, 6), end=dt.date(2024, 1, 8)))


def test_crisis_episode_has_higher_realised_market_vol_than_calm_periods(small_market_params) -> None:
    params = dataclasses.replace(small_market_params, defect_probability=0.0, missing_day_probability=0.0)
    returns = _log_returns(generate_synthetic_market(params).bars)
    market = returns.group_by(c.DATE).agg(pl.col(c.LOG_RETURN).mean())
    in_crisis = pl.col(c.DATE).is_between(COVID.start, COVID.end)
    crisis_vol = market.filter(in_crisis)[c.LOG_RETURN].std()
    calm_vol = market.filter(~in_crisis)[c.LOG_RETURN].std()
    # Designed at 5x; the realised ratio on ~20 crisis days is noisy, but far above 1.
    assert crisis_vol > 2.0 * calm_vol


def test_volume_rises_with_absolute_return(small_market_params) -> None:
    params = dataclasses.replace(small_market_params, defect_probability=0.0)
    returns = _log_returns(generate_synthetic_market(params).bars)
    per_instrument = returns.group_by(c.TICKER).agg(
        pl.corr(pl.col(c.VOLUME), pl.col(c.LOG_RETURN).abs(), method="spearman").alias("rho")
    )
    assert per_instrument["rho"].min() > 0.2


def test_late_listings_and_missing_days_exist(small_market: SyntheticMarket, small_market_params) -> None:
    spans = small_market.bars.group_by(c.TICKER).agg(
        pl.col(c.DATE).min().alias("first"), pl.col(c.DATE).max().alias("last"), pl.len().alias("rows")
    )
    assert spans.filter(pl.col("first") > small_market_params.start).height >= 1
    assert spans.filter(pl.col("first") == small_market_params.start).height >= 1
    calendar = small_market.bars[c.DATE].unique()
    expected = spans.with_columns(
        pl.struct("first", "last").map_elements(
            lambda span: calendar.filter(calendar.is_between(span["first"], span["last"])).len(), return_dtype=pl.Int64
        ).alias("expected")
    )
    missing = expected.select((pl.col("expected") - pl.col("rows")).sum()).item()
    assert missing > 0


def test_every_defect_kind_is_planted(small_market: SyntheticMarket) -> None:
    planted = set(small_market.oracle[c.PLANTED_DEFECT].drop_nulls().unique())
    assert planted == set(DEFECT_KINDS)


def test_defects_look_like_their_kind(small_market: SyntheticMarket) -> None:
    rows = small_market.bars.join(small_market.oracle, on=[c.DATE, c.TICKER])
    kind = pl.col(c.PLANTED_DEFECT)
    assert rows.filter(kind == "non_positive_price").select((pl.col(c.CLOSE) <= 0).all()).item()
    assert rows.filter(kind == "high_below_low").select((pl.col(c.HIGH) < pl.col(c.LOW)).all()).item()
    assert rows.filter(kind == "negative_volume").select((pl.col(c.VOLUME) < 0).all()).item()
    clean_rows = rows.filter(kind.is_null())
    assert clean_rows.select((pl.col(c.HIGH) >= pl.max_horizontal(c.OPEN, c.CLOSE)).all()).item()
    assert clean_rows.select((pl.col(c.LOW) <= pl.min_horizontal(c.OPEN, c.CLOSE)).all()).item()
    assert clean_rows.select((pl.col(c.LOW) > 0).all() & (pl.col(c.VOLUME) >= 0).all()).item()


def test_every_planted_defect_is_quarantined_by_its_rule(small_market: SyntheticMarket, small_market_params) -> None:
    raw = as_raw_frame(small_market.bars, source="synthetic", source_file="synthetic")
    # A short history requirement, so that every row is judged by the series rules (with the default 252
    # days a young instrument's rows are dropped as insufficient history).
    params = CleaningParams(min_history_days=20, max_missing_share=1.0)
    result = clean_bars(
        raw, small_market.universe[c.TICKER], window=(small_market_params.start, small_market_params.end),
        as_of=small_market_params.end, params=params,
    )
    defects = small_market.oracle.filter(pl.col(c.PLANTED_DEFECT).is_not_null()).select(c.DATE, c.TICKER, c.PLANTED_DEFECT)
    judged = defects.join(result.quarantine, on=[c.DATE, c.TICKER], how="left")
    assert judged.height == defects.height  # one quarantine row per defect, no more
    for row in judged.iter_rows(named=True):
        expected_rule = DEFECT_RULES[row[c.PLANTED_DEFECT]]
        assert (row[c.RULE], row[c.ACTION]) == (expected_rule, ACTION_REJECTED), row
    # A quarantined spike's day is forward-filled from the last good close: its price never reaches a return.
    spikes = defects.filter(pl.col(c.PLANTED_DEFECT) == "price_spike_x10")
    filled = spikes.join(result.cleaned, on=[c.DATE, c.TICKER])
    assert filled.height == spikes.height and filled[c.IS_FILLED].all()


def test_with_default_cleaning_no_spike_reaches_cleaned_bars(small_market: SyntheticMarket, small_market_params) -> None:
    raw = as_raw_frame(small_market.bars, source="synthetic", source_file="synthetic")
    result = clean_bars(
        raw, small_market.universe[c.TICKER], window=(small_market_params.start, small_market_params.end),
        as_of=small_market_params.end,
    )
    spikes = small_market.oracle.filter(pl.col(c.PLANTED_DEFECT) == "price_spike_x10")
    assert spikes.height > 0
    judged = spikes.join(result.quarantine, on=[c.DATE, c.TICKER])
    assert judged.height == spikes.height and set(judged[c.RULE]) == {"reverted_spike"}
    received = spikes.join(result.cleaned, on=[c.DATE, c.TICKER]).filter(~pl.col(c.IS_FILLED))
    assert received.height == 0


def latent_oracle_ic(market: SyntheticMarket) -> float:
    """The latent signal's rank IC against the next day's return."""
    return planted_oracle_rank_ic(market, c.PLANTED_SIGNAL, horizon_days=1)


def _design_ic(params: SyntheticMarketParams) -> float:
    """signal_strength x the average share idio vol / total vol, over the parameter ranges."""
    idio = np.linspace(*params.idio_annual_vol_range, 101)[:, None]
    beta = np.linspace(*params.beta_range, 101)[None, :]
    total = np.sqrt((beta * params.market_annual_vol) ** 2 + params.sector_annual_vol**2 + idio**2)
    return float(params.signal_strength * np.mean(idio / total))


def test_oracle_ic_is_positive_and_near_its_design_value() -> None:
    params = SyntheticMarketParams(seed=11, n_instruments=50, start=dt.date(2012, 1, 2), end=dt.date(2014, 12, 31))
    design = _design_ic(params)
    assert 0.04 < design < 0.06
    ic = latent_oracle_ic(generate_synthetic_market(params))
    assert ic > 0
    assert ic == pytest.approx(design, rel=0.35)


def test_oracle_ic_grows_with_signal_strength() -> None:
    base = SyntheticMarketParams(seed=11, n_instruments=50, start=dt.date(2012, 1, 2), end=dt.date(2014, 12, 31))
    strong = dataclasses.replace(base, signal_strength=0.2)
    assert latent_oracle_ic(generate_synthetic_market(strong)) == pytest.approx(_design_ic(strong), rel=0.35)


def test_oracle_ic_is_zero_without_signal() -> None:
    params = SyntheticMarketParams(
        seed=11, n_instruments=50, start=dt.date(2012, 1, 2), end=dt.date(2014, 12, 31), signal_strength=0.0
    )
    assert abs(latent_oracle_ic(generate_synthetic_market(params))) < 0.015


def test_planted_signal_is_a_unit_variance_persistent_score(small_market: SyntheticMarket) -> None:
    signal = small_market.oracle.sort(c.TICKER, c.DATE)
    assert signal[c.PLANTED_SIGNAL].std() == pytest.approx(1.0, abs=0.25)
    lag_corr = signal.select(
        pl.corr(pl.col(c.PLANTED_SIGNAL), pl.col(c.PLANTED_SIGNAL).shift(1).over(c.TICKER))
    ).item()
    # Half-life 21 days: lag-one autocorrelation 0.5 ** (1 / 21) ~ 0.967.
    assert lag_corr == pytest.approx(0.5 ** (1 / 21), abs=0.03)


PRICE_SIGNAL_MARKET = SyntheticMarketParams(seed=11, n_instruments=50, start=dt.date(2010, 1, 4), end=dt.date(2014, 12, 31))


@pytest.fixture(scope="module")
def price_signal_market() -> SyntheticMarket:
    return generate_synthetic_market(PRICE_SIGNAL_MARKET)


def _oracle_ic_by_hand(market: SyntheticMarket, signal: str, horizon: int) -> float:
    """The oracle rank IC recomputed on the dense (date x ticker) grid with scipy, independently of polars."""
    from scipy.stats import spearmanr

    rows = market.bars.join(market.oracle, on=[c.DATE, c.TICKER]).with_columns(
        pl.when(pl.col(c.PLANTED_DEFECT).is_null()).then(pl.col(c.CLOSE).log()).alias("log_close")
    )
    close = rows.pivot(on=c.TICKER, index=c.DATE, values="log_close").sort(c.DATE).drop(c.DATE).to_numpy()
    values = rows.pivot(on=c.TICKER, index=c.DATE, values=signal).sort(c.DATE).drop(c.DATE).to_numpy()
    forward = close[horizon:] - close[:-horizon]
    daily = []
    for today, ahead in zip(values[:-horizon], forward, strict=True):
        both = np.isfinite(today) & np.isfinite(ahead)
        if both.sum() >= 5 and np.ptp(today[both]) > 0:
            daily.append(spearmanr(today[both], ahead[both]).statistic)
    return float(np.mean(daily))


@pytest.mark.parametrize("signal", [c.PLANTED_EXPECTED_RETURN, c.PLANTED_SIGNAL])
def test_oracle_rank_ic_is_recomputed_from_the_generator(price_signal_market: SyntheticMarket, signal: str) -> None:
    assert planted_oracle_rank_ic(price_signal_market, signal, 21) == pytest.approx(
        _oracle_ic_by_hand(price_signal_market, signal, 21), abs=1e-9
    )


def test_price_signal_oracle_ic_at_21_days_is_learnable_but_not_trivial(price_signal_market: SyntheticMarket) -> None:
    # Designed for 0.08-0.15 at 21 days (0.120 on the default market, docs/studies.md); 5 years of 50 names.
    assert 0.08 < planted_oracle_rank_ic(price_signal_market, c.PLANTED_EXPECTED_RETURN, 21) < 0.15


def test_without_strength_the_price_signal_plants_nothing() -> None:
    params = dataclasses.replace(PRICE_SIGNAL_MARKET, price_signal_strength=0.0, signal_strength=0.0)
    market = generate_synthetic_market(params)
    assert (market.oracle[c.PLANTED_EXPECTED_RETURN] == 0.0).all()


def test_price_signal_score_amplifies_a_reversal_on_a_volume_shock() -> None:
    live = np.array([1.0, 1.0, 1.0, 1.0, 0.0])
    short = np.array([0.02, 0.02, -0.01, -0.03, 0.5])
    shock = np.array([1.0, -1.0, 0.0, 0.0, 9.0])
    score = price_signal_score(short, shock, live, base_reversal=1.0)
    z_short = (short[:4] - short[:4].mean()) / short[:4].std()
    z_shock = (shock[:4] - shock[:4].mean()) / shock[:4].std()
    np.testing.assert_allclose(score[:4], -z_short * (1 + np.tanh(z_shock)))
    assert score[4] == 0.0  # not a member: no score, whatever its prices
    # Same short-horizon rise, heavier volume: the stronger expected reversal, the lower score.
    assert score[0] < score[1] < 0
    # With no base reversal, a rise on thin volume is expected to continue.
    thin = price_signal_score(short, shock, live, base_reversal=0.0)
    assert thin[1] > 0 > thin[0]


def test_the_price_signal_at_t_is_causal() -> None:
    """Changing every input from day t+1 on leaves the expected return of days up to t unchanged."""
    rng = np.random.default_rng(3)
    days, n, t = 300, 8, 200
    base_ret = 0.01 * rng.standard_normal((days, n))
    total_vol = np.full((days, n), 0.015)
    noise = 0.25 * rng.standard_normal((days, n))
    live = np.ones((days, n), dtype=bool)
    idio_vol = np.full(n, 0.012)
    params = SyntheticMarketParams()
    planted = synthetic._plant_price_signal(base_ret, total_vol, noise, live, idio_vol, params)
    later = slice(t + 1, None)
    base_ret[later] += 0.05 * rng.standard_normal((days - t - 1, n))
    noise[later] *= 3.0
    total_vol[later] *= 2.0
    perturbed = synthetic._plant_price_signal(base_ret, total_vol, noise, live, idio_vol, params)
    np.testing.assert_array_equal(perturbed.expected_return[: t + 1], planted.expected_return[: t + 1])
    np.testing.assert_array_equal(perturbed.log_ret[: t + 1], planted.log_ret[: t + 1])
    assert not np.allclose(perturbed.expected_return[t + 1 :], planted.expected_return[t + 1 :])


def test_the_price_signal_is_a_function_of_past_closes_and_volumes() -> None:
    """Recomputed from the bars alone (exponential averages of log returns, of log volumes and of the raw
    score), the score at t is the planted expected return divided by a per-instrument constant
    (strength x idio vol)."""
    params = dataclasses.replace(
        PRICE_SIGNAL_MARKET, n_instruments=12, start=dt.date(2005, 1, 3), late_listing_share=0.0, delisting_share=0.0,
        missing_day_probability=0.0, defect_probability=0.0,
    )
    market = generate_synthetic_market(params)
    bars = market.bars.sort(c.TICKER, c.DATE)

    def ema(expr: pl.Expr, half_life: float) -> pl.Expr:
        return expr.ewm_mean(half_life=half_life, adjust=False).over(c.TICKER)

    log_volume = pl.col(c.VOLUME).log()
    states = bars.with_columns(pl.col(c.CLOSE).log().diff().over(c.TICKER).fill_null(0.0).alias("r")).with_columns(
        ema(pl.col("r"), params.reversal_half_life_days).alias("short"),
        ema(log_volume - ema(log_volume, params.volume_baseline_half_life_days).shift(1).over(c.TICKER),
            params.volume_shock_half_life_days).alias("shock"),
    ).sort(c.DATE, c.TICKER).join(market.oracle, on=[c.DATE, c.TICKER])
    raw = [
        price_signal_score(day["short"].to_numpy(), day["shock"].to_numpy(), np.ones(day.height), params.base_reversal)
        for day in states.partition_by(c.DATE, maintain_order=True)
    ]
    smoothed = states.with_columns(pl.Series("raw", np.concatenate(raw))).sort(c.TICKER, c.DATE).with_columns(
        ema(pl.col("raw"), params.price_signal_half_life_days).alias("smoothed")
    ).sort(c.DATE, c.TICKER)
    standardised = pl.col("smoothed") - pl.col("smoothed").mean()
    # Every average forgets its start (the generator starts from 0, the bars from the first value) after
    # ~1,500 days (0.5 ** (1500 / 63) < 1e-7).
    recomputed = smoothed.with_columns(
        (standardised / pl.col("smoothed").std(ddof=0)).over(c.DATE).alias("score")
    ).filter(pl.col(c.DATE).rank("dense") > 1500)
    ratio = recomputed.group_by(c.TICKER).agg(
        (pl.col(c.PLANTED_EXPECTED_RETURN) / pl.col("score")).filter(pl.col("score").abs() > 0.2).alias("k")
    )
    assert ratio.height == params.n_instruments
    for constants in ratio["k"]:
        assert constants.len() > 500 and constants.std() / constants.mean() < 1e-4
