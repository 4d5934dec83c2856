"""Internal quality assurance: sampling strategies, drawn samples and their items, and actions for assessors."""
import uuid
from datetime import date, datetime

from sqlalchemy import Text
from sqlmodel import Field, SQLModel

from .base import new_id, utcnow


class SamplingStrategy(SQLModel, table=True):
    """An IQA's CAMERA sampling strategy for a cohort, with the risk rates the centre sets."""

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    iqa_id: uuid.UUID = Field(foreign_key="user_account.id", index=True)
    name: str = Field(max_length=200)
    kind: str = Field(max_length=20)  # "interim" (decisions) or "summative" (signed-off units)
    cohort: str = Field(default="", sa_type=Text)  # candidate ids, space-separated; empty = everyone the IQA has
    cycle_start: date
    cycle_end: date
    base_rate: int = 10  # percent of ordinary items
    new_assessor_rate: int = 100  # percent of a new assessor's first decisions
    new_assessor_decisions: int = 10  # a new assessor's first N decisions
    new_assessor_months: int = 12  # an assessor qualified within this many months is new
    disagreement_rate: int = 50  # percent for an assessor with a disagreement this cycle
    new_site_rate: int = 50  # percent for evidence from a setting the centre rates as new
    new_sites: str = Field(default="", max_length=500)  # settings rated new, space-separated
    created_at: datetime = Field(default_factory=utcnow)


class Sample(SQLModel, table=True):
    """One seeded draw of a strategy: the same strategy, data and seed give the same items."""

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    strategy_id: uuid.UUID = Field(foreign_key="samplingstrategy.id", index=True)
    seed: int
    drawn_by_id: uuid.UUID = Field(foreign_key="user_account.id")
    drawn_at: datetime = Field(default_factory=utcnow)


class SampleItem(SQLModel, table=True):
    """A decision or unit sign-off chosen for quality assurance, with why it was chosen."""

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    sample_id: uuid.UUID = Field(foreign_key="sample.id", index=True)
    decision_id: uuid.UUID | None = Field(default=None, foreign_key="criteriondecision.id", index=True)
    signoff_id: uuid.UUID | None = Field(default=None, foreign_key="unitsignoff.id")
    candidate_id: uuid.UUID = Field(foreign_key="candidate.id")
    reason: str = Field(sa_type=Text)
    manual: bool = False
    review_id: uuid.UUID | None = Field(default=None, foreign_key="iqareview.id")
    added_at: datetime = Field(default_factory=utcnow)


class IqaAction(SQLModel, table=True):
    """Something an IQA asks an assessor to do, by a date; the assessor answers and the IQA closes it."""

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    iqa_id: uuid.UUID = Field(foreign_key="user_account.id", index=True)
    assessor_id: uuid.UUID = Field(foreign_key="user_account.id", index=True)
    candidate_id: uuid.UUID = Field(foreign_key="candidate.id")
    item_id: uuid.UUID | None = Field(default=None, foreign_key="sampleitem.id")
    text: str = Field(sa_type=Text)
    due_on: date
    status: str = Field(default="open", max_length=20)  # "open", "answered" or "closed"
    response: str | None = Field(default=None, sa_type=Text)
    answered_at: datetime | None = None
    closed_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
