"""Cron arithmetic on aware datetimes: which fires fall in a window, and when the next one is.

Expressions are the standard five fields (or an ``@daily``-style shorthand), evaluated in an IANA
time zone by croniter, which also moves a fire that lands in a spring-forward gap. The one DST
rule added here is cron's own for the fall-back hour: a job at a fixed hour runs once, not at
both instants that show the same wall time; a job whose hour field is ``*`` keeps running by
elapsed time through the repeated hour.

croniter (and the dateutil it pulls in) is imported where a cron expression is evaluated, not
with this module: every process that reads a pipeline config imports the schedule section's
model, the live executor included, and most never evaluate a schedule.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from itertools import islice
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

SHORTHANDS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day-of-month", 1, 31),
    ("month", 1, 12),
    ("day-of-week", 0, 7),
)
_MISSED_CAP = 1000  # counting skipped fires is for the log; a week of minutely fires stops here


@dataclass(frozen=True)
class Fire:
    """The fire to run now, and how many earlier fires in the window it stands in for."""

    at: datetime
    missed: int


def cron_problem(expr: str) -> str | None:
    """Why ``expr`` is not a usable cron expression, or None when it is.

    >>> cron_problem("61 * * * *")
    "'61 * * * *' is not a valid cron expression (minute 61 out of range 0-59)"
    >>> cron_problem("0 22 * * 1-5") is None
    True
    """
    text = _expand(expr)
    if text is None:
        known = ", ".join(SHORTHANDS)
        return f"{expr!r} is not a valid cron expression (unknown shorthand; use one of: {known})"
    fields = text.split()
    if len(fields) != 5:
        return (
            f"{expr!r} is not a valid cron expression (expected 5 fields: minute hour "
            f"day-of-month month day-of-week, got {len(fields)})"
        )
    from croniter import CroniterBadDateError, CroniterError, croniter

    try:
        croniter(text)
    except CroniterError as exc:
        return f"{expr!r} is not a valid cron expression ({_field_problem(fields) or exc})"
    try:
        croniter(text, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except CroniterBadDateError:
        return f"{expr!r} never fires (no such date)"
    return None


def timezone_problem(name: str) -> str | None:
    """Why ``name`` is not an IANA time zone, with the closest real name; None when it is one."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        zones = {z.lower(): z for z in available_timezones() | {"UTC"}}
        close = difflib.get_close_matches(name.lower(), zones, n=1)
        hint = f"did you mean {zones[close[0]]}?" if close else "e.g. UTC or America/New_York"
        return f"{name!r} is not an IANA time zone name ({hint})"
    return None


def next_fire(expr: str, tz: tzinfo, after: datetime) -> datetime:
    """The first fire strictly after ``after`` (aware), in UTC."""
    return next(_fires(expr, tz, after))


def latest_fire(expr: str, tz: tzinfo, after: datetime, now: datetime) -> Fire | None:
    """The latest fire in ``(after, now]``, or None when there is none.

    Only the latest is returned: after downtime a scheduler runs one catch-up, not one per
    missed fire. The walk starts a day before croniter's previous fire rather than at ``after``,
    so a long gap costs nothing, and it walks forward so it agrees with :func:`next_fire`.
    """
    from croniter import croniter

    first = next_fire(expr, tz, after)
    if first > now:
        return None
    local_now = _utc(now).replace(microsecond=0).astimezone(tz) + timedelta(seconds=1)
    prev = croniter(_text(expr), local_now).get_prev(datetime).astimezone(UTC)
    start = max(_utc(after), prev - timedelta(days=1))
    latest = first
    for fire in _fires(expr, tz, start):
        if fire > now:
            break
        latest = fire
    missed = sum(1 for _ in islice(_until(_fires(expr, tz, after), latest), _MISSED_CAP))
    return Fire(at=latest, missed=missed)


def _fires(expr: str, tz: tzinfo, after: datetime) -> Iterator[datetime]:
    from croniter import croniter

    text = _text(expr)
    fixed_hour = not text.split()[1].startswith("*")
    it = croniter(text, _utc(after).astimezone(tz))
    while True:
        local = it.get_next(datetime).astimezone(tz)
        if fixed_hour and _repeated_wall_time(local):
            continue
        yield local.astimezone(UTC)


def _until(fires: Iterator[datetime], end: datetime) -> Iterator[datetime]:
    for fire in fires:
        if fire >= end:
            return
        yield fire


def _repeated_wall_time(local: datetime) -> bool:
    """The second of two instants that show the same wall time (the fall-back hour)."""
    return local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset()


def _expand(expr: str) -> str | None:
    text = " ".join(expr.split())
    if text.startswith("@"):
        return SHORTHANDS.get(text.lower())
    return text


def _text(expr: str) -> str:
    text = _expand(expr)
    if text is None:
        raise ValueError(cron_problem(expr))
    return text


def _field_problem(fields: list[str]) -> str | None:
    """Name the field croniter rejected, and the number out of range when there is one."""
    from croniter import croniter

    for i, (name, low, high) in enumerate(_FIELDS):
        probe = ["*"] * 5
        probe[i] = fields[i]
        if croniter.is_valid(" ".join(probe)):
            continue
        for number in re.findall(r"(?<![/#\d])\d+", fields[i]):
            if not low <= int(number) <= high:
                return f"{name} {number} out of range {low}-{high}"
        return f"{name} field {fields[i]!r} is not valid"
    return None


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{moment} has no time zone; pass an aware datetime (UTC)")
    return moment.astimezone(UTC)
