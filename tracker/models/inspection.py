"""Time-limited inspection access for external quality assurers, and portfolio packs received from other centres."""
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Text
from sqlmodel import Field, SQLModel

from .base import new_id, utcnow


class EqaGrant(SQLModel, table=True):
    """An administrator's grant of read-only access to named candidates for a limited time."""

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    eqa_id: uuid.UUID = Field(foreign_key="user_account.id", index=True)
    starts_at: datetime
    ends_at: datetime
    reason: str = Field(sa_type=Text)
    granted_by_id: uuid.UUID = Field(foreign_key="user_account.id")
    granted_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None
    revoked_by_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    revoked_reason: str | None = Field(default=None, max_length=500)


class EqaGrantCandidate(SQLModel, table=True):
    """A candidate a grant opens to the EQA."""

    grant_id: uuid.UUID = Field(foreign_key="eqagrant.id", primary_key=True)
    candidate_id: uuid.UUID = Field(foreign_key="candidate.id", primary_key=True, index=True)


class ImportedPack(SQLModel, table=True):
    """A portfolio pack received from another centre, kept whole (its manifest is the sending centre's record)."""

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    candidate_id: uuid.UUID = Field(foreign_key="candidate.id", unique=True)
    manifest_sha256: str = Field(max_length=64, unique=True)
    sending_centre: str = Field(max_length=300)
    manifest: dict[str, Any] = Field(sa_type=JSON)
    people: list[str] = Field(default_factory=list, sa_type=JSON)  # accounts created for the sending centre's people
    imported_by_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    imported_at: datetime = Field(default_factory=utcnow)
