"""The tracker's one notion of now: the moment in UTC, and the day as the centre counts days (its time zone)."""
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

# A UK centre's day runs by UK time: an observation made at 00:30 on 31 March (BST) was made on the 31st, although
# it is still the 30th in UTC. `create_app` sets the centre's zone from its config (TIMEZONE).
DEFAULT_ZONE = "Europe/London"
_zone = ZoneInfo(DEFAULT_ZONE)


def set_zone(name: str) -> None:
    """Make the centre's days run by this IANA time zone."""
    global _zone  # noqa: PLW0603 - one centre per process; every path must count days the same way
    _zone = ZoneInfo(name)


def zone() -> ZoneInfo:
    """Return the centre's time zone."""
    return _zone


def now() -> datetime:
    """Return the current moment in UTC, as every timestamp column stores it."""
    return datetime.now(UTC)


def today() -> date:
    """Return the centre's date at this moment: the rules' notion of today."""
    return day_of(now())


def day_of(moment: datetime) -> date:
    """Return the centre's date at a moment."""
    return aware(moment).astimezone(_zone).date()


def day_start(day: date) -> datetime:
    """Return the moment (UTC) the centre's day begins, so that a range of days covers the centre's whole days."""
    return datetime.combine(day, time.min, _zone).astimezone(UTC)


def aware(moment: datetime) -> datetime:
    """Return a moment as aware UTC; naive moments read back from SQLite are UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
