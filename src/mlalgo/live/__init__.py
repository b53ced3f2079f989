"""The live side: journal, and (next) feeds, brokers, risk and the executor loop.

Nothing here imports pandas, MLflow, Optuna or scikit-learn.
"""
