"""The append-only, hash-chained audit log."""
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index
from sqlmodel import Field, SQLModel

from .base import utcnow


class AuditEntry(SQLModel, table=True):
    """Who changed what, when, and from which device; never updated or deleted.

    ``seq`` numbers the entries in commit order with no gaps (writers take the chain head's lock), so it is
    also the cursor a field device pulls changes after. ``hash`` covers the entry and ``prev_hash``, the hash of
    the entry before it, so changing or removing any entry breaks every link after it.
    """

    # A candidate's newest entry is found from this index alone (pages and pulls ask for it on every request).
    __table_args__ = (Index("ix_auditentry_candidate_seq", "candidate_id", "seq"),)
    id: int | None = Field(default=None, primary_key=True)
    seq: int = Field(sa_type=BigInteger, unique=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    actor_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id", index=True)
    device_id: uuid.UUID | None = None
    action: str = Field(max_length=60)
    entity_type: str = Field(max_length=60)
    entity_id: str = Field(max_length=64, index=True)
    candidate_id: uuid.UUID | None = Field(default=None)  # the candidate the change concerns, if any
    details: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64, unique=True)


class AuditHead(SQLModel, table=True):
    """The newest link of the audit chain: one row, locked by every writer while it appends."""

    id: int = Field(default=1, primary_key=True)
    seq: int = Field(default=0, sa_type=BigInteger)
    hash: str = Field(max_length=64)
