"""The ``schedule:`` section of a pipeline YAML.

It is checked when the file loads, like every other section, so a cron typo fails at
``mlalgo schedule`` start-up instead of silently never firing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, field_validator

from mlalgo.schedule.cron import cron_problem, next_fire, timezone_problem


class ScheduleConfig(BaseModel):
    """When a pipeline retrains and how hard a failed run is retried.

    ``cron: null`` (the default) means the pipeline is not scheduled; ``mlalgo schedule --once``
    can still run it. Retry ``n`` waits ``retry_delay_seconds * 2 ** (n - 1)``. A run that times
    out is retried like a failed one; one that exits 2 (bad configuration or input) is not, since
    the same run would fail the same way.

    >>> ScheduleConfig(cron="0 22 * * 1-5", timezone="America/New_York").retries
    0
    """

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    cron: str | None = None  # five fields (or @daily, ...), evaluated in `timezone`
    timezone: str = "UTC"  # IANA name; DST is applied by croniter
    retries: Annotated[int, Field(ge=0)] = 0  # extra attempts after a failed run
    retry_delay_seconds: Annotated[float, Field(ge=0)] = 60.0  # doubles each retry
    timeout_minutes: PositiveFloat | None = None  # a longer run is killed and counts as failed

    @field_validator("cron")
    @classmethod
    def _cron_parses(cls, value: str | None) -> str | None:
        if value is not None and (problem := cron_problem(value)):
            raise ValueError(problem)
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if problem := timezone_problem(value):
            raise ValueError(problem)
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def timeout_seconds(self) -> float | None:
        return None if self.timeout_minutes is None else self.timeout_minutes * 60

    def retry_delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based) before the next one."""
        return self.retry_delay_seconds * 2 ** (attempt - 1)

    def next_fire(self, after: datetime) -> datetime:
        """The first fire strictly after ``after`` (aware), in UTC."""
        if self.cron is None:
            raise ValueError("this pipeline has no schedule.cron, so it never fires")
        return next_fire(self.cron, self.zone, after)
