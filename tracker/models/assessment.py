"""Assessment decisions, unit sign-off, assignment results and IQA reviews."""
import uuid
from datetime import date, datetime

from sqlalchemy import CheckConstraint, Text
from sqlmodel import Field, SQLModel

from .base import new_id, utcnow


class CriterionDecision(SQLModel, table=True):
    """An eligible assessor's judgement of one criterion; the newest current one counts."""

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    candidate_id: uuid.UUID = Field(foreign_key="candidate.id", index=True)
    criterion_id: int = Field(foreign_key="criterion.id", index=True)
    assessor_id: uuid.UUID = Field(foreign_key="user_account.id", index=True)
    outcome: str = Field(max_length=20)  # "met" or "not_met"
    note: str = Field(default="", sa_type=Text)
    current: bool = True
    decided_at: datetime = Field(default_factory=utcnow)


class DecisionEvidence(SQLModel, table=True):
    """The evidence a decision rests on."""

    decision_id: uuid.UUID = Field(foreign_key="criteriondecision.id", primary_key=True)
    evidence_id: uuid.UUID = Field(foreign_key="evidence.id", primary_key=True)


class UnitSignOff(SQLModel, table=True):
    """An assessor's signed declaration that a candidate has achieved a unit."""

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    candidate_id: uuid.UUID = Field(foreign_key="candidate.id", index=True)
    unit_id: int = Field(foreign_key="unit.id")
    assessor_id: uuid.UUID = Field(foreign_key="user_account.id")
    declaration: str = Field(sa_type=Text)
    content_hash: str = Field(max_length=64)
    signed_at: datetime = Field(default_factory=utcnow)
    reopened_at: datetime | None = None
    reopened_by_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    reopen_reason: str | None = Field(default=None, sa_type=Text)


class AssignmentResult(SQLModel, table=True):
    """The internally marked outcome of a unit assessed by assignment (Unit 001)."""

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    candidate_id: uuid.UUID = Field(foreign_key="candidate.id", index=True)
    unit_id: int = Field(foreign_key="unit.id")
    outcome: str = Field(max_length=20)  # "pass" or "refer"
    marked_by_id: uuid.UUID = Field(foreign_key="user_account.id")
    marked_on: date
    note: str = Field(default="", sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow)


class IqaReview(SQLModel, table=True):
    """An internal quality assurer's review of one assessment decision (interim) or one unit sign-off (summative)."""

    __table_args__ = (CheckConstraint(
        "(decision_id IS NOT NULL AND signoff_id IS NULL) OR (decision_id IS NULL AND signoff_id IS NOT NULL)",
        name="ck_iqareview_one_subject"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    iqa_id: uuid.UUID = Field(foreign_key="user_account.id", index=True)
    decision_id: uuid.UUID | None = Field(default=None, foreign_key="criteriondecision.id", index=True)
    signoff_id: uuid.UUID | None = Field(default=None, foreign_key="unitsignoff.id", index=True)
    verdict: str = Field(max_length=20)  # "agree" or "disagree"
    reasons: str = Field(default="", sa_type=Text)
    practice_feedback: str = Field(default="", sa_type=Text)  # on the assessor's planning, feedback and judgement
    created_at: datetime = Field(default_factory=utcnow)
