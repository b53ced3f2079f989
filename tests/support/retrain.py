"""pipelines/retrain.yaml on a growing file of real AAPL and MSFT bars, shortened for tests."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
RETRAIN_YAML = ROOT / "pipelines" / "retrain.yaml"
NAME = "sig"
START = "2003-01-01"


def retrain_overrides(root: Path, bars_file: Path) -> list[str]:
    return [
        "stages.fetch.source=file",
        f"stages.fetch.path={bars_file}",
        "stages.fetch.symbols=[AAPL, MSFT]",
        f"stages.fetch.start={START}",
        "stages.backtest.min_train_bars=252",
        "stages.backtest.retrain_every=126",
        "stages.train.n_estimators=60",
        f"stages.export.model_name={NAME}",
        f"stages.export.dir={root / 'models'}",
        f"stages.backtest.report_dir={root / 'reports'}",
    ]


def write_bars(bars: pd.DataFrame, path: Path, end: str) -> None:
    """The sample's AAPL and MSFT bars from START to ``end``, as the file a feed appends to."""
    part = bars.loc[["AAPL", "MSFT"]]
    times = part.index.get_level_values("time")
    part.loc[(times >= START) & (times <= end)].reset_index().to_csv(path, index=False)
