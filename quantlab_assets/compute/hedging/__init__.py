"""Seed 000's invariant deep-hedging study: environments, the policy, CVaR, ERM / head-only IRM / V-REx
training, evaluation and figures. Plain numpy/torch; the Dagster wiring is defs/assets/hedging.py."""
