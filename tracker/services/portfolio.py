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
    Outcome,
    Status,
    Unit,
    User,
)
from .assessment import EvidenceRow, portfolio_state
from .evidence import unit_for


@dataclass
class Portfolio:
    """Everything a portfolio page shows for one unit."""

    candidate: Candidate
    name: str
    unit: Unit
    outcomes: list[tuple[Outcome, list[readiness.CriterionReadiness]]]
    readiness: readiness.Readiness
    evidence: dict[str, EvidenceRow]
    decisions: dict[str, readiness.DecisionFacts]


def portfolio(session: Session, candidate: Candidate, unit_code: str = "002") -> Portfolio:
    """Load a candidate's portfolio for a unit: the readiness grid, evidence summaries and decisions."""
    unit = unit_for(session, candidate, unit_code)
    state = portfolio_state(session, candidate, unit)
    outcome_of = {c.code: c.outcome_id for c in state.criteria}
    by_outcome: dict[int, list[readiness.CriterionReadiness]] = defaultdict(list)
    for row in state.readiness.criteria:
        by_outcome[outcome_of[row.code]].append(row)
    outcomes = session.exec(select(Outcome).where(Outcome.unit_id == unit.id).order_by(Outcome.position)).all()
    name = session.exec(select(User.name).where(User.id == candidate.user_id)).one()
    return Portfolio(candidate, name, unit, [(o, by_outcome[o.id]) for o in outcomes], state.readiness,
                     {str(r.id): r for r in state.evidence}, {d.criterion: d for d in state.decisions})


@dataclass
class CaseloadRow:
    """One candidate on a caseload, with the counts an assessor acts on."""

    id: uuid.UUID
    name: str
    registration_number: str
    workplace: str
    roles: set[str] = field(default_factory=set)
    met: int = 0
    waiting: int = 0
    referred: int = 0


def caseload(session: Session, user: User, unit_code: str = "002") -> tuple[list[CaseloadRow], int]:
    """Return the candidates a person is attached to, with met, waiting and referred counts, in four queries."""
    mine = select(CandidateAssignment.candidate_id).where(
        CandidateAssignment.user_id == user.id, col(CandidateAssignment.ended_on).is_(None))
    rows: dict[uuid.UUID, CaseloadRow] = {}
    for cid, name, number, workplace, role in session.exec(select(
            Candidate.id, User.name, Candidate.registration_number, Candidate.workplace, CandidateAssignment.role)
            .join(User, User.id == Candidate.user_id).join(CandidateAssignment,
                                                          CandidateAssignment.candidate_id == Candidate.id)
            .where(CandidateAssignment.user_id == user.id, col(CandidateAssignment.ended_on).is_(None))
            .order_by(User.name)):
        rows.setdefault(cid, CaseloadRow(cid, name, number, workplace)).roles.add(role)
    total = session.exec(select(func.count()).select_from(Criterion).join(Unit).where(
        Unit.code == unit_code, col(Criterion.retired).is_(False))).one()
    if not rows:
        return [], total
    for cid, met in session.exec(select(CriterionDecision.candidate_id, func.count()).join(Criterion).join(Unit).where(
            col(CriterionDecision.candidate_id).in_(mine), Unit.code == unit_code, CriterionDecision.outcome == "met",
            col(CriterionDecision.current).is_(True)).group_by(CriterionDecision.candidate_id)):
        rows[cid].met = met
    for cid, status, n in session.exec(select(Evidence.candidate_id, Evidence.status, func.count()).where(
            col(Evidence.candidate_id).in_(mine), col(Evidence.status).in_(
                [Status.SUBMITTED, Status.RESUBMITTED, Status.REFERRED])).group_by(
            Evidence.candidate_id, Evidence.status)):
        if status == Status.REFERRED:
            rows[cid].referred += n
        else:
            rows[cid].waiting += n
    return list(rows.values()), total


def actions_due(session: Session, user: User) -> list:
    """Return the IQA actions an assessor must answer, soonest first, in one query whatever their number."""
    from .quality import actions_for  # quality builds on this module's neighbours; import late to keep layers flat

    return actions_for(session, user.id) if "assessor" in user.role_names else []
