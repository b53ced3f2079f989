"""Which fires run: each once, none at first sight, one catch-up after downtime."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime, timedelta

import pytest

from mlalgo.schedule import Status

MON_21 = datetime(2024, 1, 8, 21, 0, tzinfo=UTC)  # a Monday, an hour before the fire
MON_22 = datetime(2024, 1, 8, 22, 0, tzinfo=UTC)
OK = "pass"


def test_a_job_is_due_from_its_fire_until_the_fire_is_handled(make_job, make_scheduler, python):
    job = make_job()
    scheduler = make_scheduler([job], python(OK))
    scheduler.tick(MON_21)

    assert scheduler.due(MON_22 - timedelta(seconds=1)) == []
    assert scheduler.due(MON_22) == [job]
    assert scheduler.tick(MON_22 + timedelta(seconds=3)) == [job]
    scheduler.wait()
    assert scheduler.due(MON_22 + timedelta(minutes=10)) == []
    assert scheduler.due(MON_22 + timedelta(days=1)) == [job]

    (run,) = scheduler.history.runs()
    assert (run.status, run.scheduled_for, run.attempt) == (Status.OK, MON_22, 1)


def test_a_restarted_scheduler_does_not_rerun_a_handled_fire(make_job, make_scheduler, python):
    job = make_job()
    first = make_scheduler([job], python(OK))
    first.tick(MON_21)
    first.tick(MON_22)
    first.wait()

    restarted = make_scheduler([job], python(OK))

    assert restarted.due(MON_22 + timedelta(minutes=5)) == []
    assert restarted.tick(MON_22 + timedelta(minutes=5)) == []
    assert restarted.tick(MON_22 + timedelta(days=1)) == [job]
    restarted.wait()
    assert [r.scheduled_for for r in restarted.history.runs()] == [
        MON_22 + timedelta(days=1),
        MON_22,
    ]


def test_a_new_schedule_waits_for_its_next_fire(make_job, make_scheduler, python):
    job = make_job()
    scheduler = make_scheduler([job], python(OK))

    assert scheduler.tick(MON_22 + timedelta(minutes=1)) == []  # first sight, fire just passed
    assert scheduler.due(MON_22 + timedelta(hours=2)) == []
    assert scheduler.history.runs() == []


def test_after_downtime_only_the_latest_missed_fire_runs(make_job, make_scheduler, python, caplog):
    job = make_job()
    make_scheduler([job], python(OK)).tick(MON_21)
    a_week_later = MON_22 + timedelta(days=7, hours=1)

    restarted = make_scheduler([job], python(OK))
    with caplog.at_level(logging.WARNING, logger="mlalgo.schedule"):
        assert restarted.tick(a_week_later) == [job]
    restarted.wait()

    (run,) = restarted.history.runs()
    assert run.scheduled_for == MON_22 + timedelta(days=7)
    assert "5 fire(s) missed" in caplog.text
    assert restarted.tick(a_week_later + timedelta(minutes=1)) == []


def test_a_job_without_cron_is_never_due(make_job, make_scheduler, python):
    job = make_job(cron=None)
    scheduler = make_scheduler([job], python(OK))
    scheduler.tick(MON_21)

    assert scheduler.tick(MON_22 + timedelta(days=3)) == []


def test_pipeline_names_must_be_distinct(make_job, make_scheduler, python):
    with pytest.raises(ValueError, match="distinct"):
        make_scheduler([make_job(), make_job()], python(OK))


WAIT_FOR_OTHER = """
import pathlib, sys, time
mine, other = pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
mine.touch()
deadline = time.monotonic() + 30
while not other.exists() and time.monotonic() < deadline:
    time.sleep(0.05)
sys.exit(0 if other.exists() else 1)
"""


def test_different_pipelines_run_at_the_same_time(make_job, make_scheduler, tmp_path):
    # Each job waits for the other to have started: they both succeed only if they overlap.
    def command(job, summary):
        other = "b" if job.name == "a" else "a"
        mine, theirs = tmp_path / f"{job.name}.started", tmp_path / f"{other}.started"
        return [sys.executable, "-c", WAIT_FOR_OTHER, str(summary), str(mine), str(theirs)]

    scheduler = make_scheduler([make_job("a"), make_job("b")], command)
    scheduler.tick(MON_21)
    assert len(scheduler.tick(MON_22)) == 2
    scheduler.wait()

    assert sorted((r.pipeline, r.status) for r in scheduler.history.runs()) == [
        ("a", Status.OK),
        ("b", Status.OK),
    ]
