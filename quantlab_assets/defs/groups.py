"""The lab's asset groups: the core research path and each heavy track, one group apiece.

The UI lists assets by group and materialises a group's lineage in one click; defs/jobs.py turns each group
into the AssetSelection that the launcher (quantlab_assets/pipeline.py), the tests and the docs name.
"""

from __future__ import annotations

# Universe and bars -> labels, features and market state -> regimes -> folds, base models, stack, live alpha,
# barrier classifier -> weights and backtests of every strategy -> metrics and the HTML report, and the desk:
# today's target portfolio, orders, the decision ledger and the live track record. Command 1.
CORE_RESEARCH = "core_research"
# Torch forecasters, the masked encoder and its embeddings, the quantile forecaster, the sequence classifier
# and SupCon: GPU-tagged steps of the `gpu` pool.
DEEP_LEARNING = "deep_learning"
REINFORCEMENT_LEARNING = "reinforcement_learning"
HEDGING = "hedging"
# The Optuna search of the triple-barrier classifier's parameters.
TUNING = "tuning"
