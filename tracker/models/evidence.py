"""Evidence, its frozen versions, criteria mapping, attachments and signatures."""
import uuid
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Index, Text, UniqueConstraint
from sqlmodel import Field, Relationship, SQLModel

from .base import new_id, utcnow


class Method(StrEnum):
    """The ways evidence is gathered; a unit's strategy says which it allows."""

    OBSERVATION = "observation"
    WORK_PRODUCT = "work_product"
    WITNESS_TESTIMONY = "witness_testimony"
    PROFESSIONAL_DISCUSSION = "professional_discussion"
    QUESTIONING = "questioning"


class Status(StrEnum):
    """Where a piece of evidence is in its lifecycle."""

    DRAFT = "draft"
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    REFERRED = "referred"
    RESUBMITTED = "resubmitted"


class SignatureKind(StrEnum):
    """What a signature attests."""

    AUTHENTICITY = "authenticity"  # candidate: this is my own work
    COUNTERSIGNATURE = "countersignature"  # candidate: the observation is a true record
    WITNESS = "witness"  # witness: my testimony is true
    OBSERVER = "observer"  # assessor or expert witness: I observed this


class Evidence(SQLModel, table=True):
    """A piece of evidence; its content lives in versions."""

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    candidate_id: uuid.UUID = Field(foreign_key="candidate.id", index=True)
    unit_id: int = Field(foreign_key="unit.id")
    method: str = Field(max_length=40)
    status: str = Field(default=Status.DRAFT, max_length=20, index=True)
    created_by_id: uuid.UUID = Field(foreign_key="user_account.id")
    created_at: datetime = Field(default_factory=utcnow)
    device_id: uuid.UUID | None = None
    current_version: int = 1
    versions: list["EvidenceVersion"] = Relationship(
        back_populates="evidence", sa_relationship_kwargs={"order_by": "EvidenceVersion.number"}
    )


class EvidenceVersion(SQLModel, table=True):
    """One version of a piece of evidence's content; frozen once signed or submitted."""

    __table_args__ = (UniqueConstraint("evidence_id", "number"),)
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    evidence_id: uuid.UUID = Field(foreign_key="evidence.id", index=True)
    number: int = 1
    replaces_id: uuid.UUID | None = Field(default=None, foreign_key="evidenceversion.id")
    author_id: uuid.UUID = Field(foreign_key="user_account.id")
    title: str = Field(max_length=200)
    activity_date: date
    setting: str | None = Field(default=None, max_length=40)
    setting_detail: str | None = Field(default=None, max_length=300)
    simulated: bool = False
    narrative: str = Field(sa_type=Text)
    seen_in_place: bool = False
    location: str | None = Field(default=None, max_length=300)
    witness_name: str | None = Field(default=None, max_length=200)
    witness_role: str | None = Field(default=None, max_length=200)
    witness_relationship: str | None = Field(default=None, max_length=200)
    witness_contact: str | None = Field(default=None, max_length=300)
    witness_related: bool = False
    content_hash: str = Field(max_length=64)
    captured_at: datetime | None = None  # the device's clock: evidence metadata only
    created_at: datetime = Field(default_factory=utcnow)
    submitted_at: datetime | None = None
    evidence: Evidence = Relationship(back_populates="versions")
    criteria: list["EvidenceCriterion"] = Relationship()
    range_items: list["EvidenceRangeItem"] = Relationship()
    attachments: list["Attachment"] = Relationship(sa_relationship_kwargs={"order_by": "Attachment.position"})
    signatures: list["Signature"] = Relationship(sa_relationship_kwargs={"order_by": "Signature.signed_at"})


class EvidenceCriterion(SQLModel, table=True):
    """A criterion a version is mapped to, with a note on how it is covered."""

    version_id: uuid.UUID = Field(foreign_key="evidenceversion.id", primary_key=True)
    criterion_id: int = Field(foreign_key="criterion.id", primary_key=True, index=True)
    note: str = Field(default="", sa_type=Text)


class EvidenceRangeItem(SQLModel, table=True):
    """A range item a version says it used."""

    version_id: uuid.UUID = Field(foreign_key="evidenceversion.id", primary_key=True)
    range_item_id: int = Field(foreign_key="rangeitem.id", primary_key=True)


class Blob(SQLModel, table=True):
    """A stored file, named by the sha256 of its bytes, kept once however often it is attached."""

    sha256: str = Field(primary_key=True, max_length=64)
    size: int
    media_type: str = Field(max_length=100)
    created_at: datetime = Field(default_factory=utcnow)


class BlobHolder(SQLModel, table=True):
    """A person who has sent a stored file's bytes, and so may attach it wherever else it is attached."""

    sha256: str = Field(foreign_key="blob.sha256", primary_key=True, max_length=64)
    user_id: uuid.UUID = Field(foreign_key="user_account.id", primary_key=True)
    proven_at: datetime = Field(default_factory=utcnow)


class BlobRendition(SQLModel, table=True):
    """A smaller copy of a photo (the screen size or the thumbnail), itself stored as a blob."""

    original_sha256: str = Field(foreign_key="blob.sha256", primary_key=True, max_length=64)
    size: str = Field(primary_key=True, max_length=10)  # "screen" or "thumb"
    sha256: str = Field(foreign_key="blob.sha256", max_length=64)


class Attachment(SQLModel, table=True):
    """A file attached to a version under the name its author gave it."""

    __table_args__ = (UniqueConstraint("version_id", "sha256"),)
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    version_id: uuid.UUID = Field(foreign_key="evidenceversion.id", index=True)
    sha256: str = Field(foreign_key="blob.sha256", max_length=64)
    filename: str = Field(max_length=255)
    position: int = 0


class Signature(SQLModel, table=True):
    """A signature bound to the hash of the exact content signed."""

    __table_args__ = (UniqueConstraint("version_id", "kind", "signer_name"),)
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    version_id: uuid.UUID = Field(foreign_key="evidenceversion.id", index=True)
    kind: str = Field(max_length=20)
    signer_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    signer_name: str = Field(max_length=200)
    statement: str = Field(sa_type=Text)
    content_hash: str = Field(max_length=64)
    image_sha256: str | None = Field(default=None, foreign_key="blob.sha256", max_length=64)
    signed_at: datetime = Field(default_factory=utcnow)
    device_id: uuid.UUID | None = None


class EvidenceReview(SQLModel, table=True):
    """An assessor's acceptance or referral of a version, with feedback: one decision per version, held by the
    database itself however many requests arrive at once."""

    __table_args__ = (Index("uq_evidencereview_version_id", "version_id", unique=True),)
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    evidence_id: uuid.UUID = Field(foreign_key="evidence.id", index=True)
    version_id: uuid.UUID = Field(foreign_key="evidenceversion.id")
    reviewer_id: uuid.UUID = Field(foreign_key="user_account.id", index=True)
    outcome: str = Field(max_length=20)  # "accepted" or "referred"
    feedback: str = Field(default="", sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow)
