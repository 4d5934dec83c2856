"""The append-only audit log."""
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON
from sqlmodel import Field, SQLModel

from .base import utcnow


class AuditEntry(SQLModel, table=True):
    """Who changed what, when, and from which device; never updated or deleted."""

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    actor_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id", index=True)
    device_id: uuid.UUID | None = None
    action: str = Field(max_length=60)
    entity_type: str = Field(max_length=60)
    entity_id: str = Field(max_length=64, index=True)
    details: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
