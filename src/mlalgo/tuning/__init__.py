"""``mlalgo tune``: Optuna search over a pipeline's declared space, scored out of sample.

Tuning sees only the bars before the hold-out; every trial is a purged walk-forward whose
after-cost score is reported fold by fold so a pruner can stop it; the chosen configuration
meets the hold-out once, at the end, and the selection is deflated for the number of trials.
"""
