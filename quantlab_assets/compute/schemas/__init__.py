"""Every pandera (polars) schema of the lab, one module per domain, and the one validation entry point.

Import a schema from its domain module, e.g.
`from quantlab_assets.compute.schemas.data import CleanedBarsSchema`:

- `base`: `validate`, `schema_failures`, `conform`, `empty_frame`, `SchemaViolation` and checks shared by
  several domains (finite values).
- `data`: raw bars as received, cleaned bars, the quarantine, the universe.
- `features`: features, fractional-differencing orders, labels.
- `models`: CV folds, out-of-fold predictions, the stacked alpha, scorecards, meta-labels, hyper-parameter
  trials, and the one schema of out-of-fold upper-barrier probabilities every barrier classifier writes.
- `portfolio`: target weights (also what the RL agent writes) and the daily backtest.
- `regimes`: market state, the HMM and its parameters, clusters, regime labels.
- `deep`: deep forecasters' diagnostics and interpretation, quantile forecasts, the TBM and SupCon
  classifiers, the masked encoder's curve and embeddings.
- `hedging`: the deep-hedging study's simulated paths, trained policies and metrics.

Each asset's frame is validated on write with `base.validate`, which raises a `SchemaViolation` naming
the asset, the partition, each failing column and rule, and example rows, so a violation can be found
without opening a debugger.
"""
