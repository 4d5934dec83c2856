"""Shared column helpers for the table models."""
import uuid
from datetime import datetime

import uuid6

from .. import clock


def new_id() -> uuid.UUID:
    """Return a time-ordered UUIDv7, made wherever the record is captured."""
    return uuid.UUID(int=uuid6.uuid7().int)  # a plain UUID, as the columns read back


def utcnow() -> datetime:
    """Return the current time in UTC, as every timestamp column stores it (the tracker's one clock)."""
    return clock.now()
