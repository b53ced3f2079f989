"""What the scheduler did, in SQLite (``<state>/schedule.db``): one row per attempt, and how far
each pipeline's schedule has been handled.

The ``fires`` table is what makes restarts safe. A fire is claimed (``handled_through`` moves to
it) before it runs, with a compare-and-set, so a restarted scheduler, or a second one on the same
state directory, never runs a fire twice. After downtime only the latest missed fire runs, once,
as systemd's ``Persistent=true`` and a Kubernetes CronJob do: a retrain on fresh data supersedes
the ones that were missed, and replaying a week of them would only queue stale work. A pipeline
seen for the first time starts counting from that moment, so adding a schedule never triggers an
immediate run. The price of claiming before running is at-most-once: a run cut short by the
scheduler itself being killed is not repeated (its attempt row is missing; its log remains).

WAL lets ``mlalgo schedule history`` read while runs are being written; each write is one
transaction on its own connection, so worker threads never share a connection.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pipeline TEXT NOT NULL,
    pipeline_path TEXT NOT NULL,
    scheduled_for TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed', 'skipped', 'timeout')),
    exit_code INTEGER,
    mlflow_run_id TEXT,
    message TEXT NOT NULL DEFAULT '',
    log_path TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_pipeline ON runs (pipeline, id);
CREATE TABLE IF NOT EXISTS fires (
    pipeline TEXT PRIMARY KEY,
    handled_through TEXT NOT NULL
);
"""
_COLUMNS = (
    "id, pipeline, pipeline_path, scheduled_for, started_at, ended_at, attempt, status, "
    "exit_code, mlflow_run_id, message, log_path"
)


class Status(StrEnum):
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"  # the pipeline's previous run still held its lock
    TIMEOUT = "timeout"


@dataclass(frozen=True)
class RunRecord:
    """One attempt (or one skipped fire), as stored."""

    pipeline: str
    pipeline_path: Path
    scheduled_for: datetime
    started_at: datetime
    ended_at: datetime
    attempt: int
    status: Status
    exit_code: int | None = None
    mlflow_run_id: str | None = None
    message: str = ""  # the log's tail on failure, the reason for a skip
    log_path: Path | None = None
    id: int | None = None


class History:
    """Run history and fire cursors in one SQLite file; safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._ready = False
        self._guard = threading.Lock()

    def add(self, record: RunRecord) -> int:
        with self._write() as db:
            cur = db.execute(
                f"INSERT INTO runs ({_COLUMNS}) VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.pipeline,
                    str(record.pipeline_path),
                    _iso(record.scheduled_for),
                    _iso(record.started_at),
                    _iso(record.ended_at),
                    record.attempt,
                    str(record.status),
                    record.exit_code,
                    record.mlflow_run_id,
                    record.message,
                    None if record.log_path is None else str(record.log_path),
                ),
            )
            return int(cur.lastrowid or 0)

    def runs(self, pipeline: str | None = None, limit: int = 50) -> list[RunRecord]:
        """Attempts, newest first, of one pipeline or all."""
        where, args = ("WHERE pipeline = ?", (pipeline,)) if pipeline else ("", ())
        with self._read() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM runs {where} ORDER BY id DESC LIMIT ?", (*args, limit)
            ).fetchall()
        return [_record(row) for row in rows]

    def last(self, pipeline: str) -> RunRecord | None:
        rows = self.runs(pipeline, limit=1)
        return rows[0] if rows else None

    def handled_through(self, pipeline: str) -> datetime | None:
        """Every fire of ``pipeline`` at or before this moment has been handled."""
        with self._read() as db:
            row = db.execute(
                "SELECT handled_through FROM fires WHERE pipeline = ?", (pipeline,)
            ).fetchone()
        return None if row is None else datetime.fromisoformat(row[0])

    def start_tracking(self, pipeline: str, now: datetime) -> bool:
        """Count ``pipeline``'s fires from ``now`` on; False when it was already tracked."""
        with self._write() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO fires (pipeline, handled_through) VALUES (?, ?)",
                (pipeline, _iso(now)),
            )
            return cur.rowcount == 1

    def claim(self, pipeline: str, fire: datetime) -> bool:
        """Mark ``fire`` handled; False when it (or a later one) already was, by anyone."""
        with self._write() as db:
            cur = db.execute(
                "UPDATE fires SET handled_through = ? WHERE pipeline = ? AND handled_through < ?",
                (_iso(fire), pipeline, _iso(fire)),
            )
            return cur.rowcount == 1

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        db = self._connect()
        try:
            yield db
        finally:
            db.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        db = self._connect()
        try:
            with db:
                yield db
        finally:
            db.close()

    def _connect(self) -> sqlite3.Connection:
        with self._guard:
            if not self._ready:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with contextlib.closing(sqlite3.connect(self.path, timeout=30)) as db:
                    db.execute("PRAGMA journal_mode=WAL")
                    db.executescript(_SCHEMA)
                self._ready = True
        return sqlite3.connect(self.path, timeout=30)


def format_history(rows: list[RunRecord]) -> str:
    """A fixed-width table of ``rows`` for the terminal (times in UTC).

    >>> format_history([])
    'no runs yet'
    """
    if not rows:
        return "no runs yet"
    header = ("id", "pipeline", "scheduled", "started", "took", "try", "status", "exit", "mlflow")
    table = [header] + [
        (
            str(r.id or ""),
            r.pipeline,
            _short(r.scheduled_for),
            _short(r.started_at),
            _took(r.ended_at - r.started_at),
            str(r.attempt),
            str(r.status),
            "" if r.exit_code is None else str(r.exit_code),
            (r.mlflow_run_id or "")[:12],
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = []
    for row, record in zip(table, [None, *rows], strict=True):
        cells = "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        note = "message" if record is None else _gist(record.message)
        lines.append(f"{cells}  {note}".rstrip())
    return "\n".join(lines)


def _record(row: tuple) -> RunRecord:
    (id_, pipeline, path, scheduled, started, ended, attempt, status, code, run_id, msg, log) = row
    return RunRecord(
        id=id_,
        pipeline=pipeline,
        pipeline_path=Path(path),
        scheduled_for=datetime.fromisoformat(scheduled),
        started_at=datetime.fromisoformat(started),
        ended_at=datetime.fromisoformat(ended),
        attempt=attempt,
        status=Status(status),
        exit_code=code,
        mlflow_run_id=run_id,
        message=msg,
        log_path=None if log is None else Path(log),
    )


def _iso(moment: datetime) -> str:
    """UTC with a fixed width, so stored times compare correctly as text."""
    if moment.tzinfo is None:
        raise ValueError(f"{moment} has no time zone; pass an aware datetime (UTC)")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _short(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _took(elapsed: timedelta) -> str:
    seconds = int(elapsed.total_seconds())
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes}m{seconds:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def _gist(message: str, width: int = 70) -> str:
    """The last non-blank line: of a log tail, the error itself."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    text = lines[-1] if lines else ""
    return text if len(text) <= width else text[: width - 1] + "…"
