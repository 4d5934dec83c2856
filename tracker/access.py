"""Who may see what: one place for role-and-relationship checks, used by every page and the sync API."""
import uuid

from sqlmodel import Session, col, select

from .errors import NotFound, NotPermitted
from .models import Candidate, CandidateAssignment, EqaGrant, EqaGrantCandidate, Evidence, Role, User

FULL_VIEW = (Role.ASSESSOR, Role.IQA)  # attached roles that see a candidate's whole portfolio
LIMITED_VIEW = (Role.EXPERT_WITNESS, Role.WITNESS)  # attached roles that see only what they recorded
INSPECTING = "eqa"  # an EQA with a grant in force for the candidate: reads everything, changes nothing


def relationships(session: Session, user: User, candidate: Candidate) -> frozenset[str]:
    """Return how a person relates to a candidate: 'self' and/or the roles they are attached in."""
    found = set(session.exec(select(CandidateAssignment.role).where(
        CandidateAssignment.candidate_id == candidate.id, CandidateAssignment.user_id == user.id,
        col(CandidateAssignment.ended_on).is_(None))))
    if candidate.user_id == user.id:
        found.add("self")
    if Role.EQA in user.role_names and _inspecting(session, user, candidate):
        found.add(INSPECTING)
    return frozenset(found)


def _inspecting(session: Session, user: User, candidate: Candidate) -> bool:
    """Say whether an EQA holds a grant in force now that names the candidate."""
    from .clock import now
    from .services.eqa import active

    moment = now()
    return any(active(g, moment) for g in session.exec(select(EqaGrant).join(
        EqaGrantCandidate, EqaGrantCandidate.grant_id == EqaGrant.id).where(
        EqaGrant.eqa_id == user.id, EqaGrantCandidate.candidate_id == candidate.id)))


def sees_portfolio(relation: frozenset[str]) -> bool:
    """Say whether a relationship shows the whole portfolio."""
    return "self" in relation or INSPECTING in relation or bool(relation & set(FULL_VIEW))


def candidate_for(session: Session, user: User, candidate_id: uuid.UUID | str) -> tuple[Candidate, frozenset[str]]:
    """Return a candidate the person is connected to, or 'not found' (never revealing it exists)."""
    try:
        candidate = session.get(Candidate, uuid.UUID(str(candidate_id)))
    except ValueError:
        candidate = None
    relation = relationships(session, user, candidate) if candidate else frozenset()
    if not relation:
        raise NotFound("candidate")
    return candidate, relation


def evidence_for(session: Session, user: User, evidence_id: uuid.UUID | str) -> tuple[Evidence, frozenset[str]]:
    """Return evidence the person may read: all of a portfolio they see, or what they recorded themselves."""
    try:
        evidence = session.get(Evidence, uuid.UUID(str(evidence_id)))
    except ValueError:
        evidence = None
    if evidence is None:
        raise NotFound("evidence")
    relation = relationships(session, user, session.get(Candidate, evidence.candidate_id))
    if not (sees_portfolio(relation) or evidence.created_by_id == user.id):
        raise NotFound("evidence")
    return evidence, relation


def require(condition: bool, message: str) -> None:
    """Refuse with a 403 and a message unless the condition holds."""
    if not condition:
        raise NotPermitted(message)
