"""Qualifications as loaded from spec packs: units, outcomes, criteria, range items."""
import json
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import JSON, Text, UniqueConstraint
from sqlmodel import Field, Relationship, SQLModel

from ..specpacks.schema import AssessmentStrategy
from .base import utcnow


class SpecPack(SQLModel, table=True):
    """A loaded spec pack, kept whole so a corrected version can be compared."""

    key: str = Field(primary_key=True, max_length=40)
    version: int
    sha256: str = Field(max_length=64)
    awarding_body: str = Field(max_length=200)
    title: str = Field(max_length=300)
    document: dict[str, Any] = Field(sa_type=JSON)
    loaded_at: datetime = Field(default_factory=utcnow)


class QualificationUnit(SQLModel, table=True):
    """Which units make up a qualification."""

    qualification_id: int = Field(foreign_key="qualification.id", primary_key=True)
    unit_id: int = Field(foreign_key="unit.id", primary_key=True)
    position: int = 0


class Qualification(SQLModel, table=True):
    """A qualification a candidate registers for, e.g. 3085-02."""

    __table_args__ = (UniqueConstraint("pack_key", "code"),)
    id: int | None = Field(default=None, primary_key=True)
    pack_key: str = Field(foreign_key="specpack.key", max_length=40)
    code: str = Field(max_length=40, index=True)
    title: str = Field(max_length=300)
    level: int | None = None
    credits: int | None = None
    accreditation_number: str | None = Field(default=None, max_length=40)
    min_age: int | None = None
    units: list["Unit"] = Relationship(link_model=QualificationUnit)


class Unit(SQLModel, table=True):
    """A unit, with its assessment strategy as the pack states it."""

    __table_args__ = (UniqueConstraint("pack_key", "code"),)
    id: int | None = Field(default=None, primary_key=True)
    pack_key: str = Field(foreign_key="specpack.key", max_length=40)
    code: str = Field(max_length=40, index=True)
    title: str = Field(max_length=300)
    reference: str | None = Field(default=None, max_length=40)
    level: int | None = None
    credits: int | None = None
    glh: int | None = None
    aim: str = Field(default="", sa_type=Text)
    assessment: dict[str, Any] = Field(sa_type=JSON)
    outcomes: list["Outcome"] = Relationship(
        back_populates="unit", sa_relationship_kwargs={"order_by": "Outcome.position"}
    )

    @property
    def strategy(self) -> AssessmentStrategy:
        """Return the assessment strategy, validated (once per distinct strategy)."""
        return _strategy(json.dumps(self.assessment, sort_keys=True))


@lru_cache(maxsize=64)
def _strategy(document: str) -> AssessmentStrategy:
    """Validate a strategy once; every rule check reads it, often many times a page."""
    return AssessmentStrategy.model_validate_json(document)


class Outcome(SQLModel, table=True):
    """A learning outcome of a unit."""

    __table_args__ = (UniqueConstraint("unit_id", "number"),)
    id: int | None = Field(default=None, primary_key=True)
    unit_id: int = Field(foreign_key="unit.id", index=True)
    number: str = Field(max_length=40)
    title: str = Field(max_length=500)
    position: int = 0
    unit: Unit = Relationship(back_populates="outcomes")
    criteria: list["Criterion"] = Relationship(
        back_populates="outcome", sa_relationship_kwargs={"order_by": "Criterion.position"}
    )


class Criterion(SQLModel, table=True):
    """An assessment criterion; retired when a corrected pack drops it."""

    __table_args__ = (UniqueConstraint("unit_id", "code"),)
    id: int | None = Field(default=None, primary_key=True)
    unit_id: int = Field(foreign_key="unit.id", index=True)
    outcome_id: int = Field(foreign_key="outcome.id", index=True)
    code: str = Field(max_length=40)
    text: str = Field(sa_type=Text)
    range: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    position: int = 0
    retired: bool = False
    outcome: Outcome = Relationship(back_populates="criteria")


class RangeItem(SQLModel, table=True):
    """One item of a criterion's range, which evidence can say it used."""

    __table_args__ = (UniqueConstraint("criterion_id", "key"),)
    id: int | None = Field(default=None, primary_key=True)
    criterion_id: int = Field(foreign_key="criterion.id", index=True)
    key: str = Field(max_length=200)
    term: str = Field(max_length=200)
    text: str = Field(max_length=500)
    position: int = 0
    retired: bool = False
