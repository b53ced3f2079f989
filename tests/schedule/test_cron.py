"""Fire times: weekdays, DST in both directions, and the one catch-up after downtime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from mlalgo.schedule import ScheduleConfig
from mlalgo.schedule.cron import latest_fire, next_fire

NEW_YORK = ZoneInfo("America/New_York")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_weekdays_only_skips_the_weekend():
    cfg = ScheduleConfig(cron="0 22 * * 1-5")
    friday_night = utc(2024, 1, 5, 22, 30)

    assert cfg.next_fire(friday_night) == utc(2024, 1, 8, 22, 0)  # Monday


def test_next_fire_is_strictly_after():
    cfg = ScheduleConfig(cron="0 22 * * *")

    assert cfg.next_fire(utc(2024, 1, 8, 22, 0)) == utc(2024, 1, 9, 22, 0)


@pytest.mark.parametrize(
    ("after", "fire"),
    [
        (utc(2024, 1, 10, 12), utc(2024, 1, 11, 3)),  # EST: 22:00 is 03:00 UTC
        (utc(2024, 7, 10, 12), utc(2024, 7, 11, 2)),  # EDT: 22:00 is 02:00 UTC
        (utc(2024, 3, 9, 12), utc(2024, 3, 10, 3)),  # the evening before spring forward
        (utc(2024, 3, 10, 12), utc(2024, 3, 11, 2)),  # the first evening on EDT
    ],
)
def test_local_time_follows_daylight_saving(after, fire):
    cfg = ScheduleConfig(cron="0 22 * * *", timezone="America/New_York")

    assert cfg.next_fire(after) == fire
    assert cfg.next_fire(after).astimezone(NEW_YORK).hour == 22


def fires(expr: str, after: datetime, until: datetime) -> list[datetime]:
    out = [next_fire(expr, NEW_YORK, after)]
    while (following := next_fire(expr, NEW_YORK, out[-1])) < until:
        out.append(following)
    return out


def test_a_fixed_hour_in_the_repeated_fall_back_hour_fires_once():
    # 2024-11-03 01:30 happens twice in New York: at 05:30 and at 06:30 UTC.
    got = fires("30 1 * * *", utc(2024, 11, 2, 12), utc(2024, 11, 5))

    assert got == [utc(2024, 11, 3, 5, 30), utc(2024, 11, 4, 6, 30)]


def test_an_every_hour_job_keeps_running_through_the_repeated_hour():
    got = fires("30 * * * *", utc(2024, 11, 3, 4), utc(2024, 11, 3, 8))

    assert got == [utc(2024, 11, 3, h, 30) for h in (4, 5, 6, 7)]


def test_after_downtime_only_the_latest_fire_is_returned_with_the_count_it_replaces():
    monday_21 = utc(2024, 1, 8, 21)
    next_monday_23 = monday_21 + timedelta(days=7, hours=2)

    fire = latest_fire("0 22 * * 1-5", UTC, monday_21, next_monday_23)

    assert fire is not None
    assert fire.at == utc(2024, 1, 15, 22)
    assert fire.missed == 5  # Monday to Friday of the first week


def test_no_fire_in_the_window():
    assert latest_fire("0 22 * * *", UTC, utc(2024, 1, 8, 22), utc(2024, 1, 9, 21, 59)) is None


def test_latest_fire_agrees_with_next_fire_across_spring_forward():
    # croniter's get_prev and get_next disagree about a 02:30 that does not exist; walking
    # forward keeps the two in step, so the moved fire is neither lost nor doubled.
    expr, after = "30 2 * * *", utc(2024, 3, 9, 12)
    moved = next_fire(expr, NEW_YORK, after)

    fire = latest_fire(expr, NEW_YORK, after, moved + timedelta(minutes=5))

    assert fire is not None and fire.at == moved and fire.missed == 0


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="no time zone"):
        ScheduleConfig(cron="0 22 * * *").next_fire(datetime(2024, 1, 8, 22))
