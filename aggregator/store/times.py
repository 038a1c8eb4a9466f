"""How times are written in the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def format_time(value: datetime) -> str:
    """UTC ISO 8601 with a Z, second precision: sorts as text, reads as a time."""
    return value.astimezone(UTC).strftime(_TIME_FORMAT)


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    if len(value) == 20 and value[10] == "T" and value[19] == "Z":
        # The format we write, read ~20x faster than strptime (linking reads thousands).
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    return datetime.strptime(value, _TIME_FORMAT).replace(tzinfo=UTC)


def format_time_ceil(value: datetime) -> str:
    """Like format_time, rounded up: a "not before" time must never come early."""
    if value.microsecond:
        value = value.replace(microsecond=0) + timedelta(seconds=1)
    return format_time(value)
