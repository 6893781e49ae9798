"""The strategy configurations tried on the default market while the strategy defaults were chosen.

Every configuration evaluated on the research span could have been chosen, so each is a trial of the
registry (compute/backtest/trials.py, kind "design") and the deflated Sharpe counts it. The chosen
defaults (StrategyParams) are strategy partitions and counted there, so they are not listed here.
`benchmarks/strategy_defaults.py` re-evaluates every book below on a stored run (docs/studies.md,
"Choosing the top-k book").
"""

from __future__ import annotations

from typing import Final

from quantlab_assets.compute.portfolio.names import QP, TOP_N
from quantlab_assets.compute.portfolio.strategies import AlphaColumn, LongShortParams, StrategyParams, TopkParams

# Per alpha column the books read: (k, n_drop, buffer, every) of the top-k books tried, (fraction, every)
# of the long-short books, and the other books tried with their default parameters.
TOPK_TRIED: Final[dict[AlphaColumn, tuple[tuple[int, int, int, int], ...]]] = {
    "alpha_combined": (
        (10, 2, 0, 5), (10, 1, 0, 5), (10, 2, 10, 5), (10, 1, 10, 5), (10, 2, 10, 21), (10, 2, 20, 5), (15, 2, 10, 5),
        (20, 2, 0, 5), (20, 2, 5, 5), (20, 2, 10, 5), (20, 2, 15, 5), (20, 3, 10, 5), (20, 4, 10, 5), (20, 2, 10, 10),
        (20, 4, 10, 10), (25, 2, 10, 5),
    ),
    "alpha_21d": ((10, 2, 0, 5), (10, 1, 0, 5), (15, 2, 10, 5), (20, 2, 10, 5), (20, 3, 10, 5), (25, 2, 10, 5)),
}
LONG_SHORT_TRIED: Final[dict[AlphaColumn, tuple[tuple[float, int], ...]]] = {
    "alpha_combined": ((0.2, 21), (0.1, 21), (0.3, 21), (0.2, 63)),
    "alpha_21d": ((0.2, 63),),
}
DEFAULT_BOOKS_TRIED: Final[dict[AlphaColumn, tuple[str, ...]]] = {"alpha_combined": (QP, TOP_N)}
# Alphas tried under every strategy: the stack with the seed's step-function calibrator, with its
# unconstrained meta-learner, and the models without the price-volume features.
MODEL_VARIANTS_TRIED: Final = (
    "every strategy on the stack with the step-function isotonic calibrator",
    "every strategy on the stack with an unconstrained meta-learner",
    "every strategy on the models without the volume_signed_return features",
)


def topk_params(alpha: AlphaColumn, k: int, n_drop: int, buffer: int, every: int) -> StrategyParams:
    return StrategyParams(alpha=alpha, topk=TopkParams(k=k, n_drop=n_drop, buffer=buffer, every=every))


def long_short_params(alpha: AlphaColumn, fraction: float, every: int) -> StrategyParams:
    return StrategyParams(alpha=alpha, long_short=LongShortParams(fraction=fraction, every=every))


def topk_name(alpha: str, k: int, n_drop: int, buffer: int, every: int) -> str:
    return f"topk_dropout k={k} n_drop={n_drop} buffer={buffer} every={every} on {alpha}"


def long_short_name(alpha: str, fraction: float, every: int) -> str:
    return f"long_short fraction={fraction} every={every} on {alpha}"


def design_trials() -> tuple[str, ...]:
    """One name per configuration tried (the registry's design trials)."""
    return (
        *(topk_name(alpha, *variant) for alpha, variants in TOPK_TRIED.items() for variant in variants),
        *(long_short_name(alpha, *variant) for alpha, variants in LONG_SHORT_TRIED.items() for variant in variants),
        *(f"{book} on {alpha}" for alpha, books in DEFAULT_BOOKS_TRIED.items() for book in books),
        *MODEL_VARIANTS_TRIED,
    )
