"""Read models for the pages: a candidate's portfolio grid and an assessor's caseload, in a fixed number of queries."""
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import func
from sqlmodel import Session, col, select

from .. import readiness
from ..models import (
    Candidate,
    CandidateAssignment,
    Criterion,
    CriterionDecision,
    Evidence,
    EvidenceVersion,
    Outcome,
    Status,
    Unit,
    User,
)
from .assessment import readiness_for
from .evidence import unit_for


@dataclass(frozen=True)
class EvidenceSummary:
    """A line about one piece of evidence on the grid."""

    id: uuid.UUID
    title: str
    method: str
    status: str
    activity_date: object
    author: str


@dataclass
class Portfolio:
    """Everything a portfolio page shows for one unit."""

    candidate: Candidate
    name: str
    unit: Unit
    outcomes: list[tuple[Outcome, list[readiness.CriterionReadiness]]]
    readiness: readiness.Readiness
    evidence: dict[str, EvidenceSummary]
    decisions: dict[str, CriterionDecision]


def portfolio(session: Session, candidate: Candidate, unit_code: str = "002") -> Portfolio:
    """Load a candidate's portfolio for a unit: the readiness grid, evidence summaries and decisions."""
    unit = unit_for(session, candidate, unit_code)
    state = readiness_for(session, candidate, unit)
    outcomes = list(session.exec(select(Outcome).where(Outcome.unit_id == unit.id).order_by(Outcome.position)))
    codes = dict(session.exec(select(Criterion.code, Criterion.outcome_id).where(Criterion.unit_id == unit.id)).all())
    by_outcome: dict[int, list[readiness.CriterionReadiness]] = defaultdict(list)
    for row in state.criteria:
        by_outcome[codes[row.code]].append(row)
    rows = session.exec(select(Evidence, EvidenceVersion, User.name).join(
        EvidenceVersion, (EvidenceVersion.evidence_id == Evidence.id)
        & (EvidenceVersion.number == Evidence.current_version)).join(User, User.id == EvidenceVersion.author_id).where(
        Evidence.candidate_id == candidate.id, Evidence.unit_id == unit.id).order_by(
        col(EvidenceVersion.activity_date).desc())).all()
    summaries = {str(e.id): EvidenceSummary(e.id, v.title, e.method, e.status, v.activity_date, name)
                 for e, v, name in rows}
    decisions = {code: d for d, code in session.exec(select(CriterionDecision, Criterion.code).join(Criterion).where(
        CriterionDecision.candidate_id == candidate.id, Criterion.unit_id == unit.id,
        col(CriterionDecision.current).is_(True)))}
    name = session.get(User, candidate.user_id).name
    return Portfolio(candidate, name, unit, [(o, by_outcome[o.id]) for o in outcomes], state, summaries, decisions)


@dataclass
class CaseloadRow:
    """One candidate on a caseload, with the counts an assessor acts on."""

    candidate: Candidate
    name: str
    roles: set[str] = field(default_factory=set)
    met: int = 0
    waiting: int = 0
    referred: int = 0


def caseload(session: Session, user: User, unit_code: str = "002") -> tuple[list[CaseloadRow], int]:
    """Return the candidates a person is attached to, with met, waiting and referred counts, in four queries."""
    rows: dict[uuid.UUID, CaseloadRow] = {}
    for candidate, name, role in session.exec(select(Candidate, User.name, CandidateAssignment.role).join(
            User, User.id == Candidate.user_id).join(
            CandidateAssignment, CandidateAssignment.candidate_id == Candidate.id).where(
            CandidateAssignment.user_id == user.id, col(CandidateAssignment.ended_on).is_(None)).order_by(User.name)):
        rows.setdefault(candidate.id, CaseloadRow(candidate, name)).roles.add(role)
    total = session.exec(select(func.count()).select_from(Criterion).join(Unit).where(
        Unit.code == unit_code, col(Criterion.retired).is_(False))).one()
    if not rows:
        return [], total
    ids = list(rows)
    for cid, met in session.exec(select(CriterionDecision.candidate_id, func.count()).join(Criterion).join(Unit).where(
            col(CriterionDecision.candidate_id).in_(ids), Unit.code == unit_code, CriterionDecision.outcome == "met",
            col(CriterionDecision.current).is_(True)).group_by(CriterionDecision.candidate_id)):
        rows[cid].met = met
    for cid, status, n in session.exec(select(Evidence.candidate_id, Evidence.status, func.count()).where(
            col(Evidence.candidate_id).in_(ids), col(Evidence.status).in_(
                [Status.SUBMITTED, Status.RESUBMITTED, Status.REFERRED])).group_by(
            Evidence.candidate_id, Evidence.status)):
        if status == Status.REFERRED:
            rows[cid].referred += n
        else:
            rows[cid].waiting += n
    return list(rows.values()), total
