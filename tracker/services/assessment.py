"""Assessment: criterion decisions, readiness, unit sign-off and reopening, assignment results, IQA review."""
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from typing import TypeVar

from sqlmodel import Session, col, select
from sqlmodel.sql.expression import Select

from .. import clock, readiness, rules
from ..audit import Actor, record, turn
from ..errors import InvalidInput, NotFound, NotPermitted
from ..hashing import content_hash
from ..models import (
    AssignmentResult,
    Candidate,
    Criterion,
    CriterionDecision,
    DecisionEvidence,
    Evidence,
    EvidenceCriterion,
    EvidenceVersion,
    IqaReview,
    Outcome,
    Role,
    Signature,
    SignatureKind,
    Unit,
    UnitSignOff,
    User,
    utcnow,
)
from . import people
from .evidence import locked_on, unit_for
from .inputs import text

NOTE_LIMIT = REASON_LIMIT = 5000  # a decision's note, an IQA's reasons and feedback: the forms say so
SIGNOFF_DECLARATION = (
    "I declare that the candidate has met all the assessment criteria of this unit, that the evidence is authentic "
    "and the candidate's own, and that it was generated from real work activities, assessed in line with the "
    "assessment strategy."
)


def criteria_of(session: Session, unit: Unit) -> list[Criterion]:
    """Return a unit's criteria in handbook order, in one query."""
    return list(session.exec(select(Criterion).join(Outcome).where(
        Criterion.unit_id == unit.id, col(Criterion.retired).is_(False)).order_by(Outcome.position,
                                                                                 Criterion.position)))


def _check_assessor_of(session: Session, actor: Actor, candidate: Candidate, unit: Unit, action: str) -> None:
    if not people.assigned(session, candidate, actor.id, Role.ASSESSOR):
        raise NotPermitted("Only the candidate's assessor can do this.")
    people.assessor_check(session, actor, unit, action)
    rules.check_unit_unlocked(locked_on(session, candidate.id, unit.id), unit.code)


def decide(session: Session, actor: Actor, candidate_id: uuid.UUID | str, unit_code: str, criterion_code: str,
           outcome: str, evidence_ids: list[uuid.UUID | str], note: str = "") -> CriterionDecision:
    """Judge a criterion met or not yet met, on evidence mapped to it (a later decision replaces an earlier one)."""
    note = text(note, "note", max_length=NOTE_LIMIT, label="note")
    turn(session)
    candidate = people.get_candidate(session, candidate_id)
    unit = unit_for(session, candidate, unit_code)
    _check_assessor_of(session, actor, candidate, unit, "judge assessment criteria")
    if outcome not in ("met", "not_met"):
        raise InvalidInput("Judge the criterion met or not yet met.", field="outcome")
    wanted = text(criterion_code, "criterion", max_length=40, label="criterion", multiline=False)
    criterion = session.exec(select(Criterion).where(
        Criterion.unit_id == unit.id, Criterion.code == wanted, col(Criterion.retired).is_(False))).first()
    if criterion is None:
        raise InvalidInput(f"Unit {unit.code} has no criterion {wanted}: choose one of its criteria.",
                           field="criterion")
    evidence = _decision_evidence(session, candidate, criterion, evidence_ids)
    if outcome == "met" and not any(e.status == "accepted" for e in evidence):
        raise rules.RuleViolation(
            "criteria_not_met",
            f"Criterion {criterion.code} can be judged met only on accepted evidence mapped to it. Accept the "
            "evidence first, or choose evidence that has been accepted.", field="evidence")
    return _record_decision(session, actor, candidate, criterion, outcome, evidence, note)


def _decision_evidence(session: Session, candidate: Candidate, criterion: Criterion,
                       evidence_ids: list[uuid.UUID | str]) -> list[Evidence]:
    """Load the evidence a decision names, refusing any that is not this candidate's or not mapped to it."""
    try:
        ids = {i if isinstance(i, uuid.UUID) else uuid.UUID(str(i)) for i in evidence_ids}
    except ValueError:
        raise InvalidInput("An evidence id is not valid.", field="evidence") from None
    rows = list(session.exec(
        select(Evidence).join(EvidenceVersion, (EvidenceVersion.evidence_id == Evidence.id)
                              & (EvidenceVersion.number == Evidence.current_version))
        .join(EvidenceCriterion, EvidenceCriterion.version_id == EvidenceVersion.id)
        .where(col(Evidence.id).in_(ids), Evidence.candidate_id == candidate.id,
               EvidenceCriterion.criterion_id == criterion.id))) if ids else []
    if len(rows) != len(ids):
        raise InvalidInput(f"Choose evidence of this candidate's that is mapped to {criterion.code}.",
                           field="evidence")
    return rows


def _record_decision(session: Session, actor: Actor, candidate: Candidate, criterion: Criterion, outcome: str,
                     evidence: list[Evidence], note: str) -> CriterionDecision:
    for old in session.exec(select(CriterionDecision).where(
            CriterionDecision.candidate_id == candidate.id, CriterionDecision.criterion_id == criterion.id,
            col(CriterionDecision.current).is_(True))):
        old.current = False
        session.add(old)
    decision = CriterionDecision(candidate_id=candidate.id, criterion_id=criterion.id, assessor_id=actor.id,
                                 outcome=outcome, note=note)
    session.add(decision)
    session.flush()
    for e in evidence:
        session.add(DecisionEvidence(decision_id=decision.id, evidence_id=e.id))
    record(session, actor, "decision.recorded", decision, candidate=str(candidate.id), criterion=criterion.code,
           outcome=outcome, evidence=sorted(str(e.id) for e in evidence), note=note)
    return decision


# --- Readiness ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvidenceRow:
    """The columns of a piece of evidence and its current version that readiness and the pages read."""

    id: uuid.UUID
    version_id: uuid.UUID
    method: str
    status: str
    title: str
    author_id: uuid.UUID
    author: str
    activity_date: date


@dataclass(frozen=True)
class PortfolioState:
    """A candidate's portfolio for one unit, loaded once: criteria, evidence rows, decisions, readiness."""

    criteria: list[Criterion]
    evidence: list[EvidenceRow]
    decisions: list[readiness.DecisionFacts]
    readiness: readiness.Readiness


def readiness_for(session: Session, candidate: Candidate, unit: Unit) -> readiness.Readiness:
    """Assess a candidate's readiness for sign-off of a unit."""
    return portfolio_state(session, candidate, unit).readiness


def portfolio_state(session: Session, candidate: Candidate, unit: Unit) -> PortfolioState:
    """Load a candidate's portfolio facts in a fixed number of queries (plain columns, no entities) and assess it."""
    criteria = criteria_of(session, unit)
    code_of = {c.id: c.code for c in criteria}
    rows = [EvidenceRow(*r) for r in session.exec(select(
        Evidence.id, EvidenceVersion.id, Evidence.method, Evidence.status, EvidenceVersion.title,
        EvidenceVersion.author_id, User.name, EvidenceVersion.activity_date).join(
        EvidenceVersion, (EvidenceVersion.evidence_id == Evidence.id)
        & (EvidenceVersion.number == Evidence.current_version)).join(User, User.id == EvidenceVersion.author_id).where(
        Evidence.candidate_id == candidate.id, Evidence.unit_id == unit.id).order_by(
        col(EvidenceVersion.activity_date).desc()))]
    version_ids = [r.version_id for r in rows]
    mapped = _mapped(session, version_ids, code_of)
    declared = set(session.exec(select(Signature.version_id).where(
        col(Signature.version_id).in_(version_ids), Signature.kind == SignatureKind.AUTHENTICITY))) if rows else set()
    observations = [r for r in rows if r.method == "observation"]
    decided = _decision_rows(session, candidate, code_of)
    # One credentials load serves both the observers and the assessors who made decisions.
    creds = people.credentials(session, {r.author_id for r in observations} | {d[2] for d in decided})
    observer_ok = _observers_eligible(unit, candidate, observations, creds)
    facts = [readiness.EvidenceFacts(
        id=str(r.id), title=r.title, method=r.method, status=r.status, criteria=frozenset(mapped[r.version_id]),
        candidate_authored=r.author_id == candidate.user_id, has_declaration=r.version_id in declared,
        observer_eligible=observer_ok.get(r.version_id, False)) for r in rows]
    decisions = _current_decisions(session, unit, code_of, decided, creds)
    state = readiness.assess(unit.code, unit.strategy, [(c.code, c.text) for c in criteria], facts, decisions,
                             locked_on(session, candidate.id, unit.id))
    return PortfolioState(criteria, rows, decisions, state)


def _mapped(session: Session, version_ids: list[uuid.UUID], code_of: dict[int, str]) -> dict[uuid.UUID, set[str]]:
    mapped: dict[uuid.UUID, set[str]] = defaultdict(set)
    if version_ids:
        for version_id, criterion_id in session.exec(select(
                EvidenceCriterion.version_id, EvidenceCriterion.criterion_id).where(
                col(EvidenceCriterion.version_id).in_(version_ids))):
            if criterion_id in code_of:
                mapped[version_id].add(code_of[criterion_id])
    return mapped


def _observers_eligible(unit: Unit, candidate: Candidate, observations: list[EvidenceRow],
                        creds: dict[uuid.UUID, people.Credentials]) -> dict[uuid.UUID, bool]:
    """Check each observation's observer against the rules as they stood on the activity date."""
    result = {}
    for r in observations:
        facts = people.observer(people.Person(r.author_id, r.author), creds[r.author_id], unit, r.activity_date,
                                candidate)
        try:
            rules.check_observer(unit.strategy, unit.code, facts)
            result[r.version_id] = True
        except rules.RuleViolation:
            result[r.version_id] = False
    return result


def _decision_rows(session: Session, candidate: Candidate, code_of: dict[int, str]) -> list[tuple]:
    """Load the current decisions on a unit's criteria as plain rows."""
    return session.exec(select(
        CriterionDecision.id, CriterionDecision.criterion_id, CriterionDecision.assessor_id, CriterionDecision.outcome,
        CriterionDecision.note, CriterionDecision.decided_at).where(
        CriterionDecision.candidate_id == candidate.id, col(CriterionDecision.criterion_id).in_(list(code_of)),
        col(CriterionDecision.current).is_(True))).all()


def _current_decisions(session: Session, unit: Unit, code_of: dict[int, str], decisions: list[tuple],
                       creds: dict[uuid.UUID, people.Credentials]) -> list[readiness.DecisionFacts]:
    """Turn decision rows into facts, with the evidence each rests on and whether its assessor was eligible."""
    if not decisions:
        return []
    links: dict[uuid.UUID, set[str]] = defaultdict(set)
    for decision_id, evidence_id in session.exec(select(DecisionEvidence.decision_id, DecisionEvidence.evidence_id)
                                                 .where(col(DecisionEvidence.decision_id).in_([d[0] for d in decisions]))):
        links[decision_id].add(str(evidence_id))
    eligible = {key: people.eligibility(creds[key[0]], unit, key[1]).eligible
                for key in {(d[2], clock.day_of(d[5])) for d in decisions}}
    return [readiness.DecisionFacts(criterion=code_of[cid], outcome=outcome, evidence_ids=frozenset(links[did]),
                                    note=note, assessor_eligible=eligible[(aid, clock.day_of(at))])
            for did, cid, aid, outcome, note, at in decisions]


# --- Sign-off ------------------------------------------------------------------------------------------


def sign_off(session: Session, actor: Actor, candidate_id: uuid.UUID | str, unit_code: str,
             declaration_signed: bool) -> UnitSignOff:
    """Sign a unit off when every rule holds, with the assessor's declaration; the unit is then locked."""
    turn(session)  # a second sign-off sent at the same moment then finds the unit locked
    candidate = people.get_candidate(session, candidate_id)
    unit = unit_for(session, candidate, unit_code)
    _check_assessor_of(session, actor, candidate, unit, "sign the unit off")
    state = readiness_for(session, candidate, unit)
    if state.blockers:
        first = state.blockers[0]
        rest = " ".join(b.message for b in state.blockers[1:])
        raise rules.RuleViolation(first.code, f"Unit {unit.code} cannot be signed off yet. {first.message}"
                                              + (f" Also: {rest}" if rest else ""))
    if not declaration_signed:
        raise rules.RuleViolation("signoff_declaration_missing",
                                  "Sign the unit declaration to sign the unit off (C&G recording form RF09).",
                                  field="declaration")
    snapshot = {"candidate": candidate.id, "unit": unit.code, "declaration": SIGNOFF_DECLARATION,
                "criteria": [[c.code, c.status, sorted(i for ids in c.evidence.values() for i in ids)]
                             for c in state.criteria]}
    row = UnitSignOff(candidate_id=candidate.id, unit_id=unit.id, assessor_id=actor.id,
                      declaration=SIGNOFF_DECLARATION, content_hash=content_hash(snapshot))
    session.add(row)
    session.flush()
    record(session, actor, "unit.signed_off", row, candidate=str(candidate.id), unit=unit.code,
           content_hash=row.content_hash)
    return row


def reopen(session: Session, actor: Actor, candidate_id: uuid.UUID | str, unit_code: str, reason: str) -> UnitSignOff:
    """Reopen a signed-off unit, with a reason kept in the audit log."""
    reason = text(reason, "reason", max_length=REASON_LIMIT, label="reason")
    turn(session)
    candidate = people.get_candidate(session, candidate_id)
    unit = unit_for(session, candidate, unit_code)
    row = session.exec(select(UnitSignOff).where(UnitSignOff.candidate_id == candidate.id,
                                                 UnitSignOff.unit_id == unit.id,
                                                 col(UnitSignOff.reopened_at).is_(None))).first()
    if row is None:
        raise InvalidInput(f"Unit {unit.code} is not signed off.", field="unit")
    rules.check_reopen(actor.name, _may_reopen(session, actor, candidate, unit), reason, unit.code)
    row.reopened_at, row.reopened_by_id, row.reopen_reason = utcnow(), actor.id, reason
    session.add(row)
    record(session, actor, "unit.reopened", row, candidate=str(candidate.id), unit=unit.code, reason=reason)
    return row


def _may_reopen(session: Session, actor: Actor, candidate: Candidate, unit: Unit) -> bool:
    if people.assigned(session, candidate, actor.id, Role.IQA):
        return True
    if not people.assigned(session, candidate, actor.id, Role.ASSESSOR):
        return False
    creds = people.credentials(session, [actor.id])[actor.id]
    return "assessor" in creds.roles and people.eligibility(creds, unit, actor.today).eligible


def record_assignment_result(session: Session, actor: Actor, candidate_id: uuid.UUID | str, unit_code: str,
                             outcome: str, note: str = "") -> AssignmentResult:
    """Record the internally marked outcome of an assignment-assessed unit (Unit 001)."""
    note = text(note, "note", max_length=NOTE_LIMIT, label="note")
    turn(session)
    candidate = people.get_candidate(session, candidate_id)
    unit = unit_for(session, candidate, unit_code)
    if unit.strategy.mode != "assignment":
        raise rules.RuleViolation("method_not_allowed", f"Unit {unit.code} is assessed by portfolio, not by "
                                                        "assignment: record evidence and decisions instead.")
    _check_assessor_of(session, actor, candidate, unit, "mark the assignment")
    if outcome not in ("pass", "refer"):
        raise InvalidInput("Record the assignment as passed or referred.", field="outcome")
    row = AssignmentResult(candidate_id=candidate.id, unit_id=unit.id, outcome=outcome, marked_by_id=actor.id,
                           marked_on=actor.today, note=note)
    session.add(row)
    session.flush()
    record(session, actor, "assignment.marked", row, candidate=str(candidate.id), unit=unit.code, outcome=outcome)
    return row


# --- Internal quality assurance ---------------------------------------------------------------------


Reviewed = TypeVar("Reviewed", CriterionDecision, UnitSignOff)


@dataclass(frozen=True)
class SignedDecision:
    """A current decision a unit sign-off rests on, with its criterion and assessor."""

    signoff_id: uuid.UUID
    id: uuid.UUID
    criterion: str
    criterion_text: str
    outcome: str
    note: str
    assessor_id: uuid.UUID
    assessor: str
    decided_at: datetime


def _signed_off(query: Select, signoff_ids: list[uuid.UUID]) -> Select:
    """Join a query from sign-offs to the current decisions on each one's unit's criteria for its candidate."""
    decisions = (CriterionDecision.criterion_id == Criterion.id) & (
        CriterionDecision.candidate_id == UnitSignOff.candidate_id) & col(CriterionDecision.current).is_(True)
    return query.select_from(UnitSignOff).join(Criterion, Criterion.unit_id == UnitSignOff.unit_id).join(
        CriterionDecision, decisions).where(col(UnitSignOff.id).in_(signoff_ids))


def _recorded(query: Select) -> Select:
    """Join a query from decisions to the evidence each rests on, in its current version (none for no evidence)."""
    return query.outerjoin(DecisionEvidence, DecisionEvidence.decision_id == CriterionDecision.id).outerjoin(
        Evidence, Evidence.id == DecisionEvidence.evidence_id).outerjoin(
        EvidenceVersion, (EvidenceVersion.evidence_id == Evidence.id)
        & (EvidenceVersion.number == Evidence.current_version))


def signed_decisions(session: Session, signoff_ids: list[uuid.UUID]) -> list[SignedDecision]:
    """Return the current decisions on each sign-off's unit for its candidate, in handbook order, in one query."""
    if not signoff_ids:
        return []
    return [SignedDecision(*r) for r in session.exec(_signed_off(select(
        UnitSignOff.id, CriterionDecision.id, Criterion.code, Criterion.text, CriterionDecision.outcome,
        CriterionDecision.note, CriterionDecision.assessor_id, User.name, CriterionDecision.decided_at), signoff_ids)
        .join(Outcome, Outcome.id == Criterion.outcome_id).join(User, User.id == CriterionDecision.assessor_id)
        .order_by(UnitSignOff.id, Outcome.position, Criterion.position))]


def evidence_recorders(session: Session, decision_ids: list[uuid.UUID]) -> dict[uuid.UUID, set[uuid.UUID]]:
    """Return who recorded or wrote the current version of the evidence each decision rests on, in one query."""
    found: dict[uuid.UUID, set[uuid.UUID]] = {did: set() for did in decision_ids}
    if decision_ids:
        for did, creator, author in session.exec(_recorded(select(
                CriterionDecision.id, Evidence.created_by_id, EvidenceVersion.author_id).select_from(
                CriterionDecision)).where(col(CriterionDecision.id).in_(decision_ids))):
            found[did] |= {r for r in (creator, author) if r}
    return found


@dataclass(frozen=True)
class SignOffBasis:
    """Who made the decisions a sign-off rests on, and who recorded the evidence those decisions rest on."""

    assessors: frozenset[uuid.UUID]
    recorders: frozenset[uuid.UUID]


def sign_off_basis(session: Session, signoff_ids: list[uuid.UUID]) -> dict[uuid.UUID, SignOffBasis]:
    """Return, per sign-off, the people its decisions and their evidence come from, in one query."""
    assessors: dict[uuid.UUID, set] = {sid: set() for sid in signoff_ids}
    recorders: dict[uuid.UUID, set] = {sid: set() for sid in signoff_ids}
    if signoff_ids:
        for sid, assessor, creator, author in session.exec(_recorded(_signed_off(select(
                UnitSignOff.id, CriterionDecision.assessor_id, Evidence.created_by_id, EvidenceVersion.author_id),
                signoff_ids))):
            assessors[sid].add(assessor)
            recorders[sid] |= {r for r in (creator, author) if r}
    return {sid: SignOffBasis(frozenset(assessors[sid]), frozenset(recorders[sid])) for sid in signoff_ids}


def _subject(session: Session, model: type[Reviewed], key: uuid.UUID | str, what: str) -> Reviewed:
    """Return the decision or sign-off an IQA reviews, or refuse a malformed or unknown id as not found."""
    try:
        row = session.get(model, key if isinstance(key, uuid.UUID) else uuid.UUID(str(key)))
    except ValueError:
        row = None
    if row is None:
        raise NotFound(what)
    return row


def iqa_review(session: Session, actor: Actor, decision_id: uuid.UUID | str, verdict: str, reasons: str,
               practice_feedback: str = "") -> IqaReview:
    """Record an IQA's agreement or disagreement with a decision they had no part in, and any feedback on the
    assessor's planning and feedback."""
    people.require_role(actor, Role.IQA)
    turn(session)
    decision = _subject(session, CriterionDecision, decision_id, "assessment decision")
    rules.check_iqa_independence(actor.id, decision.assessor_id,
                                 evidence_recorders(session, [decision.id])[decision.id], actor.name)
    return _record_review(session, actor, "decision", {"decision_id": decision.id}, decision.candidate_id, verdict,
                          reasons, practice_feedback, decision=str(decision.id))


def iqa_review_sign_off(session: Session, actor: Actor, signoff_id: uuid.UUID | str, verdict: str, reasons: str,
                        practice_feedback: str = "") -> IqaReview:
    """Record an IQA's verdict on a unit sign-off resting on nothing of theirs, with any practice feedback."""
    people.require_role(actor, Role.IQA)
    turn(session)
    signoff = _subject(session, UnitSignOff, signoff_id, "unit sign-off")
    unit = session.get(Unit, signoff.unit_id)
    basis = sign_off_basis(session, [signoff.id])[signoff.id]
    rules.check_iqa_independence(actor.id, signoff.assessor_id, basis.recorders, actor.name,
                                 decision_assessor_ids=basis.assessors, sign_off=True)
    if signoff.reopened_at is not None:
        raise InvalidInput(f"Unit {unit.code} was reopened after this sign-off, so the sign-off no longer stands. "
                           "Review the unit when it is signed off again.", field="verdict")
    return _record_review(session, actor, "sign-off", {"signoff_id": signoff.id}, signoff.candidate_id, verdict,
                          reasons, practice_feedback, signoff=str(signoff.id), unit=unit.code)


def _record_review(session: Session, actor: Actor, noun: str, subject: dict[str, uuid.UUID],
                   candidate_id: uuid.UUID, verdict: str, reasons: str, practice_feedback: str,
                   **details: str) -> IqaReview:
    """Check a verdict, its reasons and the practice feedback, then store the review with its audit entry."""
    if verdict not in ("agree", "disagree"):
        raise InvalidInput(f"Record whether you agree or disagree with the {noun}.", field="verdict")
    reasons = text(reasons, "reasons", max_length=REASON_LIMIT, label="reasons")
    if verdict == "disagree" and len(reasons) < 10:
        raise InvalidInput("Give the reasons for disagreeing, so the assessor can act on them.", field="reasons")
    practice_feedback = text(practice_feedback, "practice_feedback", max_length=REASON_LIMIT,
                             label="feedback on practice")
    row = IqaReview(iqa_id=actor.id, verdict=verdict, reasons=reasons, practice_feedback=practice_feedback,
                    **subject)
    session.add(row)
    session.flush()
    record(session, actor, "iqa.reviewed", row, candidate=str(candidate_id), **details, verdict=verdict,
           reasons=reasons, practice_feedback=practice_feedback)
    return row
