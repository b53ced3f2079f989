"""Run history and fire cursors survive restarts and read back as written."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mlalgo.schedule import History, RunRecord, Status, format_history

T0 = datetime(2024, 1, 8, 22, 0, tzinfo=UTC)


def record(pipeline: str, minutes: int, status: Status = Status.OK, **extra) -> RunRecord:
    start = T0 + timedelta(minutes=minutes)
    return RunRecord(
        pipeline=pipeline,
        pipeline_path=Path(f"/p/{pipeline}.yaml"),
        scheduled_for=T0,
        started_at=start,
        ended_at=start + timedelta(seconds=75),
        attempt=1,
        status=status,
        **extra,
    )


@pytest.fixture
def history(tmp_path: Path) -> History:
    return History(tmp_path / "schedule.db")


def test_runs_are_newest_first_and_filter_by_pipeline(history):
    history.add(record("a", 0, Status.FAILED, exit_code=1, message="Traceback\nBoom"))
    history.add(record("b", 1))
    history.add(record("a", 2, mlflow_run_id="abc123", log_path=Path("/logs/a.log")))

    assert [(r.pipeline, r.started_at.minute) for r in history.runs()] == [
        ("a", 2),
        ("b", 1),
        ("a", 0),
    ]
    assert [r.started_at.minute for r in history.runs("a")] == [2, 0]
    assert len(history.runs(limit=1)) == 1
    last = history.last("a")
    assert last is not None
    assert (last.status, last.mlflow_run_id, last.log_path) == (
        Status.OK,
        "abc123",
        Path("/logs/a.log"),
    )
    assert history.last("nobody") is None


def test_a_record_reads_back_as_written(history):
    written = record("a", 0, Status.TIMEOUT, exit_code=-15, message="killed after 120 min")

    row_id = history.add(written)

    assert history.runs()[0] == RunRecord(**{**written.__dict__, "id": row_id})


def test_history_persists_in_wal_mode(tmp_path, history):
    history.add(record("a", 0))

    assert len(History(tmp_path / "schedule.db").runs()) == 1
    with sqlite3.connect(tmp_path / "schedule.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_fire_is_claimed_once_and_never_backwards(history):
    assert history.handled_through("a") is None
    assert history.start_tracking("a", T0 - timedelta(hours=1))
    assert not history.start_tracking("a", T0)  # already tracked: the cursor stays

    assert history.claim("a", T0)
    assert not history.claim("a", T0)
    assert not history.claim("a", T0 - timedelta(minutes=30))
    assert history.handled_through("a") == T0


def test_format_history_shows_one_line_per_attempt_with_the_error(history):
    history.add(
        record("retrain", 0, Status.FAILED, exit_code=1, message="Traceback\nValueError: x")
    )
    history.add(record("retrain", 5, mlflow_run_id="0123456789abcdef"))

    lines = format_history(history.runs()).splitlines()

    assert lines[0].split() == [
        "id", "pipeline", "scheduled", "started", "took", "try", "status", "exit", "mlflow",
        "message",
    ]  # fmt: skip
    assert "ok" in lines[1].split() and "0123456789ab" in lines[1] and "1m15s" in lines[1]
    assert lines[2].endswith("ValueError: x") and "failed" in lines[2].split()
    assert "2024-01-08 22:00:00" in lines[2]
