"""The tracker's notion of now: the real clock, or a moment a test or a demo has set (app.config["NOW"])."""
from datetime import UTC, datetime

from .models import utcnow


def now() -> datetime:
    """Return the current moment in UTC; app.config["NOW"] (a datetime or a callable) overrides it."""
    from flask import current_app, has_app_context

    if has_app_context() and (fixed := current_app.config.get("NOW")) is not None:
        moment = fixed() if callable(fixed) else fixed
        return aware(moment)
    return utcnow()


def aware(moment: datetime) -> datetime:
    """Return a moment as aware UTC; naive moments read back from SQLite are UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
