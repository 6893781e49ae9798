"""The strategy configurations tried on the default market while the strategy defaults were chosen.

Every configuration evaluated on the research span could have been chosen, so each is a trial of the
registry (compute/backtest/trials.py, kind "design") and the deflated Sharpe counts it. The chosen
defaults (StrategyParams) are strategy partitions and counted there, so they are not listed here.
`benchmarks/strategy_defaults.py` re-evaluates every configuration below on a stored run
(docs/studies.md, "Choosing the top-k book").
"""

from __future__ import annotations

import dataclasses
from typing import Final

from quantlab_assets.compute.portfolio.strategies import LongShortParams, StrategyParams, TopkParams

# (k, n_drop, buffer, every) of the top-k books, (fraction, every) of the long-short books, on alpha_combined.
TOPK_TRIED: Final = (
    (10, 2, 0, 5), (10, 1, 0, 5), (10, 2, 10, 5), (10, 1, 10, 5), (10, 2, 10, 21), (10, 2, 20, 5), (15, 2, 10, 5),
    (20, 2, 0, 5), (20, 2, 5, 5), (20, 2, 10, 5), (20, 2, 15, 5), (20, 3, 10, 5), (20, 2, 10, 10), (20, 4, 10, 10),
    (25, 2, 10, 5),
)
LONG_SHORT_TRIED: Final = ((0.1, 21), (0.3, 21), (0.2, 63))
# The same books on the 21-day alpha alone (alpha_21d in place of alpha_combined), and the QP on it.
TOPK_TRIED_ON_ALPHA_21D: Final = ((10, 2, 0, 5), (10, 1, 0, 5), (20, 2, 10, 5))
LONG_SHORT_TRIED_ON_ALPHA_21D: Final = ((0.2, 21), (0.2, 63))
ON_ALPHA_21D: Final = " on alpha_21d"
# Alphas tried under every strategy: the stack with the seed's step-function calibrator, with its
# unconstrained meta-learner, and the models without the price-volume features.
MODEL_VARIANTS_TRIED: Final = (
    "every strategy on the stack with the step-function isotonic calibrator",
    "every strategy on the stack with an unconstrained meta-learner",
    "every strategy on the models without the volume_signed_return features",
)


def topk_params(k: int, n_drop: int, buffer: int, every: int) -> StrategyParams:
    return dataclasses.replace(StrategyParams(), topk=TopkParams(k=k, n_drop=n_drop, buffer=buffer, every=every))


def long_short_params(fraction: float, every: int) -> StrategyParams:
    return dataclasses.replace(StrategyParams(), long_short=LongShortParams(fraction=fraction, every=every))


def topk_name(k: int, n_drop: int, buffer: int, every: int) -> str:
    return f"topk_dropout k={k} n_drop={n_drop} buffer={buffer} every={every}"


def long_short_name(fraction: float, every: int) -> str:
    return f"long_short fraction={fraction} every={every}"


def design_trials() -> tuple[str, ...]:
    """One name per configuration tried (the registry's design trials)."""
    return (
        *(topk_name(*variant) for variant in TOPK_TRIED),
        *(long_short_name(*variant) for variant in LONG_SHORT_TRIED),
        *(topk_name(*variant) + ON_ALPHA_21D for variant in TOPK_TRIED_ON_ALPHA_21D),
        *(long_short_name(*variant) + ON_ALPHA_21D for variant in LONG_SHORT_TRIED_ON_ALPHA_21D),
        "qp_optimal" + ON_ALPHA_21D,
        *MODEL_VARIANTS_TRIED,
    )
