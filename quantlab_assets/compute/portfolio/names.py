"""The names of the lab's strategies (one partition each); kept free of heavy imports for the partitions."""

QP, TOP_N, EQUAL, BUY_AND_HOLD = "qp_optimal", "top_n_equal", "equal_weight", "buy_and_hold_benchmark"
SNIPER, AUDITED, RECKLESS = "sniper", "audited", "reckless"
STRATEGY_NAMES = (QP, TOP_N, EQUAL, BUY_AND_HOLD, SNIPER, AUDITED, RECKLESS)
BENCHMARK = BUY_AND_HOLD
