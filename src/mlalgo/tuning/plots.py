"""Optuna's optimisation history, parameter importances and fold curves as PNG figures."""

from __future__ import annotations

import logging
import warnings

import optuna
from matplotlib.figure import Figure
from optuna.trial import TrialState
from optuna.visualization import matplotlib as ovm

log = logging.getLogger(__name__)


def figures(study: optuna.Study) -> list[tuple[str, Figure]]:
    """Every plot the study supports; importances need two complete trials that differ."""
    out = []
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    plots = [
        ("plots/optimization_history.png", ovm.plot_optimization_history),
        ("plots/intermediate_values.png", ovm.plot_intermediate_values),
    ]
    if len(complete) >= 2:
        plots.append(("plots/param_importances.png", ovm.plot_param_importances))
    for path, plot in plots:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # experimental-API and degenerate-importance notes
                ax = plot(study)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            log.info("skipped %s: %s", path, exc)
            continue
        fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
        fig.set_size_inches(9, 5)
        fig.tight_layout()
        out.append((path, fig))
    return out


def close(fig: Figure) -> None:
    """Optuna draws through pyplot, which keeps every figure alive until closed."""
    import matplotlib.pyplot as plt

    plt.close(fig)
