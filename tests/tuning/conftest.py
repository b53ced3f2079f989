"""The default pipeline shortened for tuning (see support.studies)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.studies import TUNE_SHORT

from mlalgo.config import PipelineConfig


@pytest.fixture
def tune_cfg(make_short_config, tmp_path: Path):
    def make(*extra: str) -> PipelineConfig:
        return make_short_config(tmp_path / "models", *TUNE_SHORT, *extra)

    return make
