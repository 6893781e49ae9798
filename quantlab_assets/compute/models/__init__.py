"""Model 2: purged CV folds, out-of-fold base models, stacking, calibration and diagnostics."""
