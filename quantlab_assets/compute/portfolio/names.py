"""The names of the lab's strategies (one partition each); kept free of heavy imports for the partitions."""

QP, TOP_N, EQUAL, BUY_AND_HOLD = "qp_optimal", "top_n_equal", "equal_weight", "buy_and_hold_benchmark"
SNIPER, AUDITED, RECKLESS = "sniper", "audited", "reckless"
LONG_SHORT, TOPK_DROPOUT = "long_short", "topk_dropout"
STRATEGY_NAMES = (QP, TOP_N, EQUAL, BUY_AND_HOLD, SNIPER, AUDITED, RECKLESS, LONG_SHORT, TOPK_DROPOUT)
BENCHMARK = BUY_AND_HOLD
# The baselines that trade no forecast: every strategy is compared with equal weight, and neither is a candidate.
PASSIVE = (EQUAL, BUY_AND_HOLD)
# The strategies allowed negative weights; every other book is long-only.
SHORT_SELLING = frozenset({LONG_SHORT})
