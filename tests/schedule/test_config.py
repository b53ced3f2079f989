"""The schedule: section is checked at load time, with messages naming the file and the key."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from mlalgo.config import ConfigError
from mlalgo.schedule import ScheduleConfig, load_job

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("61 * * * *", "'61 * * * *' is not a valid cron expression (minute 61 out of range 0-59)"),
        ("0 24 * * *", "(hour 24 out of range 0-23)"),
        ("0 22 * 13 *", "(month 13 out of range 1-12)"),
        ("0 22 * * MON-FRX", "(day-of-week field 'MON-FRX' is not valid)"),
        ("* * *", "(expected 5 fields: minute hour day-of-month month day-of-week, got 3)"),
        ("0 0 * * * 0", "got 6"),
        ("@reboot", "unknown shorthand"),
        ("0 0 30 2 *", "'0 0 30 2 *' never fires"),
    ],
)
def test_a_bad_cron_expression_says_what_is_wrong(cron, message):
    with pytest.raises(ValidationError) as err:
        ScheduleConfig(cron=cron)

    assert message in str(err.value)


@pytest.mark.parametrize("cron", ["0 22 * * 1-5", "*/15 9-16 * * MON-FRI", "@daily", "0 0 29 2 *"])
def test_valid_cron_expressions(cron):
    assert ScheduleConfig(cron=cron).cron == cron


def test_an_unknown_timezone_suggests_the_closest_name():
    with pytest.raises(ValidationError, match="did you mean America/New_York"):
        ScheduleConfig(cron="0 22 * * *", timezone="America/New_Yrok")


def test_defaults_mean_not_scheduled():
    cfg = ScheduleConfig()

    assert (cfg.cron, cfg.timezone, cfg.retries, cfg.timeout_minutes) == (None, "UTC", 0, None)
    with pytest.raises(ValueError, match=r"no schedule\.cron"):
        cfg.next_fire(datetime(2024, 1, 8, tzinfo=UTC))


def test_backoff_doubles_from_the_first_delay():
    cfg = ScheduleConfig(retry_delay_seconds=60)

    assert [cfg.retry_delay(n) for n in (1, 2, 3)] == [60, 120, 240]


def test_frozen():
    cfg = ScheduleConfig(cron="0 22 * * *")

    with pytest.raises(ValidationError):
        cfg.retries = 3  # type: ignore[misc]


def pipeline(tmp_path: Path, schedule: str, name: str = "retrain") -> Path:
    """The default pipeline under another name, with a schedule section appended."""
    text = (ROOT / "pipelines" / "train.yaml").read_text().replace("name: train", f"name: {name}")
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"{text}\nschedule:\n{schedule}")
    return path


def test_load_job_reads_the_name_and_the_schedule(tmp_path):
    path = pipeline(
        tmp_path, '  cron: "0 22 * * 1-5"\n  timezone: America/New_York\n  retries: 2\n'
    )

    job = load_job(path)

    assert job.name == "retrain"
    assert job.path == path.absolute()
    assert job.schedule == ScheduleConfig(
        cron="0 22 * * 1-5", timezone="America/New_York", retries=2
    )


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ('  cron: "61 * * * *"\n', "schedule.cron: '61 * * * *' is not a valid cron expression"),
        ('  cron: "0 22 * * *"\n  retires: 2\n', "schedule.retires: unknown key (did you mean "),
        ('  cron: "0 22 * * *"\n  retries: -1\n', "schedule.retries: input should be greater"),
        ('  cron: "0 22 * * *"\n  timezone: Mars\n', "schedule.timezone: 'Mars' is not an IANA"),
        ("  - 0 22 * * *\n", "schedule: input should be a valid dictionary"),
        ("  timezone: UTC\n", "schedule.cron: required to schedule this pipeline"),
    ],
)
def test_load_job_errors_name_the_file_and_the_key(tmp_path, schedule, message):
    path = pipeline(tmp_path, schedule)

    with pytest.raises(ConfigError) as err:
        load_job(path)

    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)


def test_once_does_not_need_a_cron(tmp_path):
    path = pipeline(tmp_path, "  retries: 1\n")

    assert load_job(path, require_cron=False).schedule.cron is None


def test_the_rest_of_the_pipeline_is_validated_at_load(tmp_path):
    path = pipeline(tmp_path, '  cron: "0 22 * * *"\n')
    path.write_text(path.read_text().replace("num_leaves:", "num_leavs:"))

    with pytest.raises(ConfigError, match="num_leavs: unknown key"):
        load_job(path)


def test_a_pipeline_name_that_is_not_a_file_name_is_refused(tmp_path):
    path = pipeline(tmp_path, '  cron: "0 22 * * *"\n', name="retrain")
    path.write_text(path.read_text().replace("name: retrain", "name: ../retrain"))

    with pytest.raises(ConfigError, match=r"name: pipeline name '\.\./retrain'"):
        load_job(path)
