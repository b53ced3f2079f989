"""Model selection: purged walk-forward splits and sklearn-style estimators."""
