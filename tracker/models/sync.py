"""Field devices and the receipts that make pushing from them safe to repeat."""
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from .base import utcnow


class Device(SQLModel, table=True):
    """An assessor's field device, known by the id it made for itself and a hashed bearer token."""

    id: uuid.UUID = Field(primary_key=True)  # made on the device, never by the server
    user_id: uuid.UUID = Field(foreign_key="user_account.id", index=True)
    name: str = Field(max_length=200)
    token_hash: str = Field(max_length=64, unique=True, index=True)  # sha256 hex; the token itself is never stored
    created_at: datetime = Field(default_factory=utcnow)
    last_seen_at: datetime | None = None
    last_push_at: datetime | None = None
    revoked_at: datetime | None = None
    revoked_by_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    revoked_reason: str | None = Field(default=None, max_length=500)
    expires_at: datetime
    schema_version: str = Field(max_length=20)
    protocol_version: int


class SyncReceipt(SQLModel, table=True):
    """The answer given to one pushed item, kept so a repeat of the item gets the same answer."""

    __table_args__ = (UniqueConstraint("device_id", "seq"),)
    item_id: uuid.UUID = Field(primary_key=True)  # the id the device gave the item
    device_id: uuid.UUID = Field(foreign_key="device.id")
    seq: int  # the device's own sequence number: FIFO per device, never a clock
    kind: str = Field(max_length=40)
    content_hash: str = Field(max_length=64)  # canonical hash of kind and payload
    verdict: str = Field(max_length=20)  # "applied", "conflict" or "refused"
    code: str | None = Field(default=None, max_length=60)
    message: str | None = Field(default=None, sa_type=Text)
    result: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    received_at: datetime = Field(default_factory=utcnow)


class OutboxItem(SQLModel, table=True):
    """A change made on a field device, queued for the centre in the same transaction as the change (G19)."""

    item_id: uuid.UUID = Field(primary_key=True)  # made on the device when queued (G1)
    seq: int = Field(unique=True)  # the device's own order, from 1 (G12)
    kind: str = Field(max_length=40)
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    evidence_id: uuid.UUID | None = Field(default=None, index=True)  # the evidence the item changes
    state: str = Field(default="pending", max_length=20, index=True)  # pending, attempted, held, parked, sent
    attempts: int = 0
    # The centre gave this device a final answer it keeps a receipt of (applied, refused, conflict); the device
    # checks at each sync that the centre still holds every one (G21).
    acknowledged: bool = False
    code: str | None = Field(default=None, max_length=60)
    message: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow)
    attempted_at: datetime | None = None
    sent_at: datetime | None = None


class SyncState(SQLModel, table=True):
    """A field device's one row of sync state: who it is, where the centre is, how far it has pulled."""

    id: int = Field(default=1, primary_key=True)
    device_id: uuid.UUID
    user_id: uuid.UUID | None = None
    server_url: str = Field(max_length=500)
    cursor: str | None = Field(default=None, max_length=200)  # written with the rows it covers (G9)
    last_success_at: datetime | None = None
    last_attempt_at: datetime | None = None
    last_error: str | None = Field(default=None, sa_type=Text)
    needs: str | None = Field(default=None, max_length=20)  # "sign_in" or "update" when the centre said so
    clock_offset: float | None = None  # the centre's clock minus this device's, in seconds, at the last sync (G24)
    notice: str | None = Field(default=None, sa_type=Text)  # what the last sync did that the assessor should know


class Tombstone(SQLModel, table=True):
    """A record deleted on the centre, kept so that a late retry from a device never brings it back."""

    entity_id: uuid.UUID = Field(primary_key=True)  # the deleted record's id (made on the device for evidence)
    entity_type: str = Field(max_length=40)
    candidate_id: uuid.UUID | None = Field(default=None, index=True)
    deleted_by_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    reason: str = Field(default="", max_length=500)
    deleted_at: datetime = Field(default_factory=utcnow)


class Upload(SQLModel, table=True):
    """A file a device is sending in parts, named by the sha256 it declared; gone once the blob is stored.

    Each device has its own upload of a file (and its own spool file), so no other device can block or spoil it.
    """

    device_id: uuid.UUID = Field(foreign_key="device.id", primary_key=True)
    sha256: str = Field(primary_key=True, max_length=64)
    size: int  # the total the device declared
    received: int = 0  # bytes written to the spool file so far, always a prefix of the file
    started_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class SyncConflict(SQLModel, table=True):
    """A change from a device made on a version the centre had already replaced: both kept until a person decides
    (G13). Its id is the item the device sent."""

    item_id: uuid.UUID = Field(primary_key=True)
    device_id: uuid.UUID = Field(foreign_key="device.id")
    user_id: uuid.UUID = Field(foreign_key="user_account.id", index=True)
    evidence_id: uuid.UUID = Field(index=True)
    candidate_id: uuid.UUID | None = Field(default=None, index=True)
    kind: str = Field(max_length=40)
    base_hash: str | None = Field(default=None, max_length=64)  # the version the device changed
    centre_hash: str = Field(max_length=64)  # the centre's version at the time
    centre_version: int
    proposed: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)  # the device's change, as sent
    created_at: datetime = Field(default_factory=utcnow)
    resolved_at: datetime | None = None
    resolved_by_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    resolution: str | None = Field(default=None, max_length=20)  # "device", "centre" or "merged"


class ConflictCopy(SQLModel, table=True):
    """On a field device: the centre's current copy of evidence this device holds a conflict on, pulled whole, to
    show beside the device's own version until the assessor decides (G13)."""

    evidence_id: uuid.UUID = Field(primary_key=True)
    centre_hash: str = Field(max_length=64)
    centre_version: int
    rows: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)  # the pulled rows, table by table
    pulled_at: datetime = Field(default_factory=utcnow)
