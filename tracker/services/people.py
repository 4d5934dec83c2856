"""People: accounts and roles, staff credentials, expert witness approvals, candidate registration."""
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from datetime import date
from typing import NamedTuple

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import update
from sqlmodel import Session, col, select

from .. import rules
from ..audit import Actor, record, turn
from ..errors import InvalidInput, NotFound, NotPermitted
from ..models import (
    AssessorQualification,
    Candidate,
    CandidateAssignment,
    ExpertWitnessApproval,
    IqaQualification,
    OccupationalCompetence,
    Qualification,
    Role,
    RoleGrant,
    SpecPack,
    Unit,
    User,
)
from . import remembered, validate
from .inputs import Day, Email, Password, code, day, line, paragraphs, text

_hasher = PasswordHasher()  # argon2id, memory-hard, with the library's recommended parameters
EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
ASSIGNABLE = (Role.ASSESSOR, Role.IQA, Role.EXPERT_WITNESS, Role.WITNESS)


def hash_password(password: str) -> str:
    """Hash a password with argon2id."""
    return _hasher.hash(password)


def verify_password(user: User, password: str) -> bool:
    """Check a password against the stored hash, in constant time."""
    if not user.password_hash:
        return False
    try:
        return _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError, UnicodeEncodeError):
        return False


@cache
def _dummy_hash(hasher: PasswordHasher) -> str:
    """Return a hash made with the current parameters, to check a password against when no account matches."""
    return hasher.hash("no account has this password")


def authenticate(session: Session, email: object, password: object) -> User | None:
    """Return the active account whose email and password these are, or None.

    An unknown email address takes as long to refuse as a wrong password: the password is checked against a
    dummy hash, so how long the answer takes never tells which addresses have accounts.
    """
    user = find_user(session, email) if isinstance(email, str) else None
    password = password if isinstance(password, str) else ""
    if user is None or not user.password_hash:
        try:
            _hasher.verify(_dummy_hash(_hasher), password)
        except (VerificationError, InvalidHashError, UnicodeEncodeError):
            pass
        return None
    return user if verify_password(user, password) and user.active else None


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class UserIn(_In):
    """A new account."""

    email: Email = Field(pattern=EMAIL)
    name: line(200, min_length=1)
    password: Password | None = None
    roles: list[Role] = Field(default=[], max_length=len(Role))

    @field_validator("roles")
    @classmethod
    def _not_candidate(cls, value: list[Role]) -> list[Role]:
        if Role.CANDIDATE in value:
            raise ValueError("cannot include candidate: a person becomes a candidate when they are registered, "
                             "with their registration details")
        return value


def require_role(actor: Actor, *roles: str) -> None:
    """Refuse unless the actor holds one of the roles (the tracker itself may do anything)."""
    if actor.user is None or actor.roles & set(roles):
        return
    needed = " or ".join(r.replace("_", " ") for r in roles)
    raise NotPermitted(f"Only an {needed} can do this." if needed[0] in "aeiou" else f"Only a {needed} can do this.")


def create_user(session: Session, actor: Actor, data: UserIn | dict) -> User:
    """Create an account with its roles."""
    require_role(actor, Role.ADMINISTRATOR)
    data = validate(UserIn, data)
    turn(session)  # the same form sent twice at once: the second finds the account the first made
    if session.exec(select(User).where(User.email == data.email)).first():
        raise InvalidInput(f"There is already an account for {data.email}: give that person the role instead.",
                           field="email")
    user = User(email=data.email, name=data.name,
                password_hash=hash_password(data.password) if data.password else None)
    session.add(user)
    session.flush()
    record(session, actor, "user.created", user, email=user.email, name=user.name)
    for role in data.roles:
        grant_role(session, actor, user, role)
    return user


def set_password(session: Session, actor: Actor, user: User, password: str) -> None:
    """Set a person's password (their own, or anyone's for an administrator); every session they have ends."""
    if actor.user is not None and actor.id != user.id:
        require_role(actor, Role.ADMINISTRATOR)
    validate(PasswordIn, {"password": password})
    user.password_hash = hash_password(password)
    end_sessions(session, user)
    record(session, actor, "user.password_set", user)


class PasswordIn(_In):
    """A new password."""

    model_config = ConfigDict(extra="forbid")  # a password is kept exactly as typed, spaces and all
    password: Password


def end_sessions(session: Session, user: User) -> None:
    """End every signed-in session of a person, on every browser and server process (sign-out, a new password,
    a closed account): a session names the count it began under, and this moves the count on."""
    session.execute(update(User).where(User.id == user.id).values(session_epoch=User.session_epoch + 1)
                    .execution_options(synchronize_session=False))
    session.refresh(user, ["session_epoch"])


def deactivate(session: Session, actor: Actor, user: User, reason: str) -> None:
    """Close a person's account: they can no longer sign in, and every session and device of theirs ends now."""
    require_role(actor, Role.ADMINISTRATOR)
    if actor.id == user.id:
        raise NotPermitted("You cannot close your own account: another administrator must.")
    reason = text(reason, "reason", max_length=500, label="reason for closing the account", required=True)
    if not user.active:
        return
    user.active = False
    session.add(user)
    end_sessions(session, user)
    record(session, actor, "user.deactivated", user, reason=reason)


def reactivate(session: Session, actor: Actor, user: User) -> None:
    """Open a closed account again; the person signs in afresh."""
    require_role(actor, Role.ADMINISTRATOR)
    if user.active:
        return
    user.active = True
    session.add(user)
    record(session, actor, "user.reactivated", user)


def grant_role(session: Session, actor: Actor, user: User, role: Role | str) -> None:
    """Give a person a role; holding it already changes nothing."""
    require_role(actor, Role.ADMINISTRATOR)
    role = Role(role)
    if session.get(RoleGrant, (user.id, role.value)):
        return
    session.add(RoleGrant(user_id=user.id, role=role.value, granted_by_id=actor.id))
    session.flush()
    session.refresh(user, ["roles"])
    record(session, actor, "role.granted", user, role=role.value)


def get_user(session: Session, user_id: uuid.UUID | str) -> User:
    """Return a person by id, or refuse."""
    user = session.get(User, _uuid(user_id, "person"))
    if user is None:
        raise NotFound("person")
    return user


def find_user(session: Session, email: str) -> User | None:
    """Return the account with this email address, if any (text no address could be names no one)."""
    try:
        key = validate(_EmailIn, {"email": email}).email
    except InvalidInput:
        return None
    return session.exec(select(User).where(User.email == key)).first()


class _EmailIn(_In):
    email: Email


def _uuid(value: uuid.UUID | str, what: str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound(what) from None


# --- Credentials --------------------------------------------------------------------------------


class CredentialIn(_In):
    """An assessor qualification the centre has verified."""

    user_id: uuid.UUID
    qualification_code: line(40, min_length=1)
    awarded_on: Day | None = None
    verified_on: Day
    certificate_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


class CompetenceIn(_In):
    """The centre's record of a person's occupational competence or knowledge."""

    user_id: uuid.UUID
    level: str = Field(pattern=r"^(competent|knowledgeable)$")
    area: line(200, min_length=1)
    evidence: paragraphs(5000, min_length=1)
    verified_on: Day


class ExpertWitnessIn(_In):
    """The three handbook facts about an expert witness."""

    user_id: uuid.UUID
    working_knowledge: paragraphs(5000) = ""
    occupational_competence: paragraphs(5000) = ""
    assessment_qualification: line(300) | None = None
    evaluating_role: line(300) | None = None
    approved_on: Day


def _listed_qualifications(session: Session, kind: str) -> dict[str, str]:
    """Return the codes and titles of qualifications the loaded packs list for assessors or IQAs."""
    listed: dict[str, str] = {}
    for pack in session.exec(select(SpecPack)):
        for q in pack.document.get(kind, []):
            listed[q["code"]] = q.get("title") or q["code"]
    return listed


def add_assessor_qualification(session: Session, actor: Actor, data: CredentialIn | dict) -> AssessorQualification:
    """Record a verified assessing qualification."""
    require_role(actor, Role.ADMINISTRATOR)
    data = validate(CredentialIn, data)
    listed = _listed_qualifications(session, "assessor_qualifications")
    if data.qualification_code not in listed:
        raise InvalidInput(f"'{data.qualification_code}' is not one of the assessor qualifications the handbook "
                           "lists.", field="qualification_code")
    if data.awarded_on and data.awarded_on > data.verified_on:
        raise InvalidInput("A qualification cannot be verified before it was awarded.", field="awarded_on")
    user = get_user(session, data.user_id)
    row = AssessorQualification(**data.model_dump(), verified_by_id=_verifier(actor, user))
    session.add(row)
    session.flush()
    record(session, actor, "credential.added", row, user=str(user.id), qualification=data.qualification_code)
    return row


def record_competence(session: Session, actor: Actor, data: CompetenceIn | dict) -> OccupationalCompetence:
    """Record that a person is occupationally competent or knowledgeable."""
    require_role(actor, Role.ADMINISTRATOR)
    data = validate(CompetenceIn, data)
    user = get_user(session, data.user_id)
    row = OccupationalCompetence(**data.model_dump(), verified_by_id=_verifier(actor, user))
    session.add(row)
    session.flush()
    record(session, actor, "competence.recorded", row, user=str(user.id), level=data.level)
    return row


def add_iqa_qualification(session: Session, actor: Actor, user_id: uuid.UUID, code: str,
                          awarded_on: date | None, verified_on: date) -> IqaQualification:
    """Record an internal quality assurance qualification."""
    require_role(actor, Role.ADMINISTRATOR)
    if code not in _listed_qualifications(session, "iqa_qualifications"):
        raise InvalidInput(f"'{code}' is not one of the IQA qualifications the handbook lists.",
                           field="qualification_code")
    verified_on = day(verified_on, "verified_on", "the date the centre verified it")
    awarded_on = awarded_on and day(awarded_on, "awarded_on", "the date it was awarded")
    user = get_user(session, user_id)
    row = IqaQualification(user_id=user.id, qualification_code=code, awarded_on=awarded_on,
                           verified_on=verified_on, verified_by_id=_verifier(actor, user))
    session.add(row)
    session.flush()
    record(session, actor, "iqa_qualification.added", row, user=str(user.id), qualification=code)
    return row


def approve_expert_witness(session: Session, actor: Actor, data: ExpertWitnessIn | dict) -> ExpertWitnessApproval:
    """Approve an expert witness once the three handbook conditions are recorded."""
    require_role(actor, Role.ADMINISTRATOR)
    data = validate(ExpertWitnessIn, data)
    user = get_user(session, data.user_id)
    rules.check_expert_witness_approval(user.name, rules.expert_witness_gaps(
        data.working_knowledge, data.occupational_competence, data.assessment_qualification, data.evaluating_role))
    row = ExpertWitnessApproval(**data.model_dump(), approved_by_id=_verifier(actor, user))
    session.add(row)
    session.flush()
    grant_role(session, actor, user, Role.EXPERT_WITNESS)
    record(session, actor, "expert_witness.approved", row, user=str(user.id))
    return row


WITHDRAWABLE = {"assessor_qualification": AssessorQualification, "competence": OccupationalCompetence,
                "expert_witness_approval": ExpertWitnessApproval}


def withdraw(session: Session, actor: Actor, kind: str, record_id: uuid.UUID, on: date, reason: str) -> None:
    """Withdraw a credential or approval from a date, keeping the record."""
    require_role(actor, Role.ADMINISTRATOR)
    model = WITHDRAWABLE.get(kind)
    row = session.get(model, _uuid(record_id, kind)) if model else None
    if row is None:
        raise NotFound(kind.replace("_", " "))
    reason = text(reason, "reason", max_length=500, label="reason for withdrawing it", required=True)
    on = day(on, "withdrawn_on", "the date it stops counting")
    row.withdrawn_on, row.withdrawn_reason = on, reason
    session.add(row)
    record(session, actor, f"{kind}.withdrawn", row, on=on, reason=reason)


def _verifier(actor: Actor, user: User) -> uuid.UUID:
    """Return the administrator verifying a credential, who must be someone else."""
    if actor.id is None:
        raise NotPermitted("Credentials are verified by a named administrator.")
    if actor.id == user.id:
        raise NotPermitted("A person cannot verify their own credentials: another administrator must.")
    return actor.id


# --- Facts the rules need -----------------------------------------------------------------------


@dataclass
class Credentials:
    """Everything recorded about one person's eligibility."""

    roles: frozenset[str] = frozenset()
    qualifications: list[AssessorQualification] = field(default_factory=list)
    competences: list[OccupationalCompetence] = field(default_factory=list)
    approvals: list[ExpertWitnessApproval] = field(default_factory=list)


def credentials(session: Session, user_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Credentials]:
    """Load roles and credentials for many people in four queries."""
    ids = frozenset(user_ids)
    return remembered(session, ("credentials", ids), lambda: _credentials(session, ids))


def _credentials(session: Session, ids: frozenset[uuid.UUID]) -> dict[uuid.UUID, Credentials]:
    found: dict[uuid.UUID, Credentials] = defaultdict(Credentials)
    if not ids:
        return found
    grants = defaultdict(set)
    for g in session.exec(select(RoleGrant).where(col(RoleGrant.user_id).in_(ids))):
        grants[g.user_id].add(g.role)
    for uid, roles in grants.items():
        found[uid].roles = frozenset(roles)
    for model, attr in ((AssessorQualification, "qualifications"), (OccupationalCompetence, "competences"),
                        (ExpertWitnessApproval, "approvals")):
        for row in session.exec(select(model).where(col(model.user_id).in_(ids))):
            getattr(found[row.user_id], attr).append(row)
    return found


def eligibility(creds: Credentials, unit: Unit, on: date) -> rules.Eligibility:
    """Derive a person's eligibility to assess a unit on a date."""
    return rules.assessor_eligibility(unit.strategy, unit.code, creds.qualifications, creds.competences, on)


class Person(NamedTuple):
    """Who someone is, for the rules that name them."""

    id: uuid.UUID
    name: str


def observer(user: User | Person, creds: Credentials, unit: Unit, on: date,
             candidate: Candidate | None) -> rules.Observer:
    """Build the facts the observation rule needs about a person."""
    return rules.Observer(
        name=user.name, roles=creds.roles, assessor=eligibility(creds, unit, on),
        expert_witness_approved=rules.expert_witness_approved(creds.approvals, on),
        is_the_candidate=candidate is not None and candidate.user_id == user.id,
    )


def assessor_check(session: Session, actor: Actor, unit: Unit, action: str) -> None:
    """Refuse unless the actor is eligible to assess the unit today."""
    if actor.user is None:
        raise NotPermitted("Only a person can make an assessment decision.")
    creds = credentials(session, [actor.user.id])[actor.user.id]
    rules.check_assessor(actor.name, creds.roles, eligibility(creds, unit, actor.today), unit.code, action)


# --- Candidates ---------------------------------------------------------------------------------


class CandidateIn(_In):
    """A candidate's registration with the awarding body."""

    user_id: uuid.UUID
    qualification: line(40, min_length=1)
    registration_number: line(40, min_length=1)
    date_of_birth: Day
    registration_date: Day
    workplace: line(300, min_length=1)
    work_setting: line(40, min_length=1)
    assessor_ids: list[uuid.UUID] = Field(default=[], max_length=50)
    iqa_ids: list[uuid.UUID] = Field(default=[], max_length=50)


def register_candidate(session: Session, actor: Actor, data: CandidateIn | dict) -> Candidate:
    """Register a candidate (16 or over) and assign their assessors and IQAs."""
    require_role(actor, Role.ADMINISTRATOR)
    data = validate(CandidateIn, data)
    turn(session)
    qualification = session.exec(select(Qualification).where(Qualification.code == data.qualification)).first()
    if qualification is None:
        raise InvalidInput(f"No qualification {data.qualification} is loaded.", field="qualification")
    rules.check_candidate_age(data.date_of_birth, data.registration_date, qualification.min_age)
    if data.registration_date > actor.today:
        raise InvalidInput("The registration date cannot be in the future.", field="registration_date")
    user = get_user(session, data.user_id)
    _check_unique_registration(session, data, user)
    _check_setting(qualification, data.work_setting)
    candidate = Candidate(user_id=user.id, qualification_id=qualification.id, **data.model_dump(
        include={"registration_number", "date_of_birth", "registration_date", "workplace", "work_setting"}))
    staff = [(get_user(session, uid), Role.ASSESSOR) for uid in data.assessor_ids] + [
        (get_user(session, uid), Role.IQA) for uid in data.iqa_ids]
    for person, role in staff:  # refuse a wrong assignment before anything is written
        _check_assignable(session, candidate, person, role, actor.today)
    session.add(candidate)
    session.flush()
    grant_role(session, actor, user, Role.CANDIDATE)
    record(session, actor, "candidate.registered", candidate, user=str(user.id), qualification=qualification.code,
           registration_number=candidate.registration_number)
    for person, role in staff:
        assign(session, actor, candidate, person, role)
    return candidate


def _check_unique_registration(session: Session, data: CandidateIn, user: User) -> None:
    if session.exec(select(Candidate).where(Candidate.user_id == user.id)).first():
        raise InvalidInput(f"{user.name} is already registered as a candidate.", field="user_id")
    if session.exec(select(Candidate).where(Candidate.registration_number == data.registration_number)).first():
        raise InvalidInput(f"Registration number {data.registration_number} is already in use.",
                           field="registration_number")


def _check_setting(qualification: Qualification, setting: str) -> None:
    codes = {s.code for u in qualification.units for s in u.strategy.settings} | {"other"}
    if setting not in codes:
        raise InvalidInput(f"Choose the candidate's work setting from: {', '.join(sorted(codes))}.",
                           field="work_setting")


def assign(session: Session, actor: Actor, candidate: Candidate, user: User, role: Role | str) -> CandidateAssignment:
    """Attach an assessor, IQA, expert witness or witness to a candidate."""
    require_role(actor, Role.ADMINISTRATOR)
    if role not in ASSIGNABLE:
        raise InvalidInput(f"A {getattr(role, 'value', role)} cannot be assigned to a candidate.", field="role")
    role = Role(role)
    turn(session)
    _check_assignable(session, candidate, user, role, actor.today)
    existing = session.exec(select(CandidateAssignment).where(
        CandidateAssignment.candidate_id == candidate.id, CandidateAssignment.user_id == user.id,
        CandidateAssignment.role == role.value)).first()
    if existing and existing.ended_on is None:
        return existing
    row = existing or CandidateAssignment(candidate_id=candidate.id, user_id=user.id, role=role.value,
                                          assigned_on=actor.today)
    row.ended_on, row.assigned_on = None, actor.today
    session.add(row)
    session.flush()
    record(session, actor, "candidate.assigned", row, candidate=str(candidate.id), user=str(user.id), role=role.value)
    return row


def _check_assignable(session: Session, candidate: Candidate, user: User, role: Role, on: date) -> None:
    """Refuse to attach someone who does not hold the role, or an assessor eligible for none of the units."""
    creds = credentials(session, [user.id])[user.id]
    if role.value not in creds.roles:
        raise InvalidInput(f"{user.name} does not hold the {role.value.replace('_', ' ')} role.", field="user_id")
    if role == Role.ASSESSOR:
        _check_assessor_for(session, candidate, user, creds, on)


def _check_assessor_for(session: Session, candidate: Candidate, user: User, creds: Credentials, on: date) -> None:
    """Refuse an assessor who is eligible for none of the candidate's units."""
    qualification = session.get(Qualification, candidate.qualification_id)
    results = [(u, eligibility(creds, u, on)) for u in qualification.units]
    if any(e.eligible for _, e in results):
        return
    unit, why = next(((u, e) for u, e in results if u.strategy.mode == "portfolio"), results[0])
    rules.check_assessor(user.name, creds.roles, why, unit.code, f"assess {candidate_name(session, candidate)}")


def candidate_name(session: Session, candidate: Candidate) -> str:
    """Return a candidate's name."""
    return session.get(User, candidate.user_id).name


def assigned(session: Session, candidate: Candidate, user_id: uuid.UUID | None, *roles: str) -> bool:
    """Say whether a person is currently attached to a candidate in one of the roles."""
    if user_id is None:
        return False
    return remembered(session, ("assigned", candidate.id, user_id, roles), lambda: session.exec(
        select(CandidateAssignment.id).where(
            CandidateAssignment.candidate_id == candidate.id, CandidateAssignment.user_id == user_id,
            col(CandidateAssignment.role).in_(roles), col(CandidateAssignment.ended_on).is_(None))).first() is not None)


def get_candidate(session: Session, candidate_id: uuid.UUID | str) -> Candidate:
    """Return a candidate by id, or refuse."""
    key = _uuid(candidate_id, "candidate")
    candidate = remembered(session, ("candidate", key), lambda: session.get(Candidate, key))
    if candidate is None:
        raise NotFound("candidate")
    return candidate


def find_candidate(session: Session, key: str) -> Candidate:
    """Return a candidate by email address or registration number, or refuse."""
    key = code(key)
    candidate = key and session.exec(select(Candidate).join(User, User.id == Candidate.user_id).where(
        (User.email == key.lower()) | (Candidate.registration_number == key))).first()
    if candidate is None:
        raise NotFound("candidate with that email address or registration number")
    return candidate


def end_assignment(session: Session, actor: Actor, candidate: Candidate,
                   assignment_id: uuid.UUID | str) -> CandidateAssignment:
    """Detach a person from a candidate from today, keeping the assignment on record."""
    require_role(actor, Role.ADMINISTRATOR)
    row = session.get(CandidateAssignment, _uuid(assignment_id, "assignment"))
    if row is None or row.candidate_id != candidate.id:
        raise NotFound("assignment")
    if row.ended_on is None:
        row.ended_on = actor.today
        session.add(row)
        record(session, actor, "candidate.unassigned", row, candidate=str(candidate.id), user=str(row.user_id),
               role=row.role)
    return row
