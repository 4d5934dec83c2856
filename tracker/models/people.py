"""People, their roles, their credentials, and candidates' registrations."""
import uuid
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Text, UniqueConstraint
from sqlmodel import Field, Relationship, SQLModel

from .base import new_id, utcnow


class Role(StrEnum):
    """The roles one account can hold, any number at once."""

    ADMINISTRATOR = "administrator"
    ASSESSOR = "assessor"
    EXPERT_WITNESS = "expert_witness"
    WITNESS = "witness"
    CANDIDATE = "candidate"
    IQA = "iqa"
    EQA = "eqa"


class User(SQLModel, table=True):
    """One account per person."""

    __tablename__ = "user_account"
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    email: str = Field(max_length=254, unique=True, index=True)
    name: str = Field(max_length=200)
    password_hash: str | None = Field(default=None, max_length=255)
    active: bool = True
    # Every signed-in session names the count it began under; ending all of a person's sessions (sign-out, a new
    # password, a closed account) moves the count on, in the database every server process reads.
    session_epoch: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    roles: list["RoleGrant"] = Relationship(
        back_populates="user", sa_relationship_kwargs={"foreign_keys": "RoleGrant.user_id", "lazy": "selectin"}
    )

    @property
    def role_names(self) -> frozenset[str]:
        """Return the names of the roles this person holds."""
        return frozenset(g.role for g in self.roles)


class RoleGrant(SQLModel, table=True):
    """A role held by a person."""

    user_id: uuid.UUID = Field(foreign_key="user_account.id", primary_key=True)
    role: str = Field(primary_key=True, max_length=20)
    granted_at: datetime = Field(default_factory=utcnow)
    granted_by_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    lead: bool = False  # on an IQA grant: the lead IQA, who sees every IQA's overdue actions
    user: User = Relationship(back_populates="roles", sa_relationship_kwargs={"foreign_keys": "RoleGrant.user_id"})


class AssessorQualification(SQLModel, table=True):
    """An assessing or teaching qualification from the handbook's §2 list, verified by the centre."""

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="user_account.id", index=True)
    qualification_code: str = Field(max_length=40)
    awarded_on: date | None = None
    verified_by_id: uuid.UUID = Field(foreign_key="user_account.id")
    verified_on: date
    certificate_sha256: str | None = Field(default=None, max_length=64)
    withdrawn_on: date | None = None
    withdrawn_reason: str | None = Field(default=None, max_length=500)


class OccupationalCompetence(SQLModel, table=True):
    """The centre's record that a person is occupationally competent or knowledgeable."""

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="user_account.id", index=True)
    level: str = Field(max_length=20)  # "competent" or "knowledgeable"
    area: str = Field(max_length=200)
    evidence: str = Field(sa_type=Text)
    verified_by_id: uuid.UUID = Field(foreign_key="user_account.id")
    verified_on: date
    withdrawn_on: date | None = None
    withdrawn_reason: str | None = Field(default=None, max_length=500)


class ExpertWitnessApproval(SQLModel, table=True):
    """A centre's approval of an expert witness, with the handbook's three conditions recorded."""

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="user_account.id", index=True)
    working_knowledge: str = Field(sa_type=Text)
    occupational_competence: str = Field(sa_type=Text)
    assessment_qualification: str | None = Field(default=None, max_length=300)
    evaluating_role: str | None = Field(default=None, max_length=300)
    approved_by_id: uuid.UUID = Field(foreign_key="user_account.id")
    approved_on: date
    withdrawn_on: date | None = None
    withdrawn_reason: str | None = Field(default=None, max_length=500)


class IqaQualification(SQLModel, table=True):
    """An internal quality assurance qualification (recommended, not required)."""

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="user_account.id", index=True)
    qualification_code: str = Field(max_length=40)
    awarded_on: date | None = None
    verified_by_id: uuid.UUID = Field(foreign_key="user_account.id")
    verified_on: date


class Candidate(SQLModel, table=True):
    """A person registered with the awarding body for a qualification."""

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="user_account.id", unique=True)
    qualification_id: int = Field(foreign_key="qualification.id")
    registration_number: str = Field(max_length=40, unique=True)
    date_of_birth: date
    registration_date: date
    workplace: str = Field(max_length=300)
    work_setting: str = Field(max_length=40)
    declaration_accepted_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    user: User = Relationship()


class CandidateAssignment(SQLModel, table=True):
    """A member of staff or a witness attached to a candidate in one role."""

    __table_args__ = (UniqueConstraint("candidate_id", "user_id", "role"),)
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    candidate_id: uuid.UUID = Field(foreign_key="candidate.id", index=True)
    user_id: uuid.UUID = Field(foreign_key="user_account.id", index=True)
    role: str = Field(max_length=20)
    assigned_on: date
    ended_on: date | None = None


class SignInAttempt(SQLModel, table=True):
    """One attempt to sign in (with a password, on a page or a device), counted to slow password guessing.

    Kept in the database so that every server process counts the same attempts. The account is named by the sha256
    of the email address typed, so the table never holds addresses, known or not.
    """

    id: int | None = Field(default=None, primary_key=True)
    address: str = Field(max_length=64, index=True)  # the client's IP address, as the trusted proxy gave it
    account: str = Field(max_length=64, index=True)  # sha256 hex of the email address as typed, normalised
    failed: bool = True
    at: datetime = Field(default_factory=utcnow, index=True)
