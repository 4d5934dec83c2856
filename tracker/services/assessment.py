"""Assessment: criterion decisions, readiness, unit sign-off and reopening, assignment results, IQA review."""
import uuid
from collections import defaultdict

from sqlmodel import Session, col, select

from .. import readiness, rules
from ..audit import Actor, record
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
    """Judge a criterion met or not yet met, on evidence mapped to it."""
    candidate = people.get_candidate(session, candidate_id)
    unit = unit_for(session, candidate, unit_code)
    _check_assessor_of(session, actor, candidate, unit, "judge assessment criteria")
    if outcome not in ("met", "not_met"):
        raise InvalidInput("Judge the criterion met or not yet met.", field="outcome")
    criterion = session.exec(select(Criterion).where(Criterion.unit_id == unit.id, Criterion.code == criterion_code,
                                                     col(Criterion.retired).is_(False))).first()
    if criterion is None:
        raise InvalidInput(f"Unit {unit.code} has no criterion {criterion_code}.", field="criterion")
    evidence = _decision_evidence(session, candidate, criterion, evidence_ids)
    if outcome == "met" and not any(e.status == "accepted" for e in evidence):
        raise rules.RuleViolation(
            "criteria_not_met",
            f"Criterion {criterion.code} can be judged met only on accepted evidence mapped to it. Accept the "
            "evidence first, or choose evidence that has been accepted.", field="evidence")
    return _record_decision(session, actor, candidate, criterion, outcome, evidence, (note or "").strip())


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


def readiness_for(session: Session, candidate: Candidate, unit: Unit) -> readiness.Readiness:
    """Load a candidate's portfolio facts for a unit in a fixed number of queries and assess readiness."""
    criteria = criteria_of(session, unit)
    code_of = {c.id: c.code for c in criteria}
    rows = session.exec(select(Evidence, EvidenceVersion).join(
        EvidenceVersion, (EvidenceVersion.evidence_id == Evidence.id)
        & (EvidenceVersion.number == Evidence.current_version)).where(
        Evidence.candidate_id == candidate.id, Evidence.unit_id == unit.id)).all()
    version_ids = [v.id for _, v in rows]
    mapped = _mapped(session, version_ids, code_of)
    declared = set(session.exec(select(Signature.version_id).where(
        col(Signature.version_id).in_(version_ids), Signature.kind == SignatureKind.AUTHENTICITY))) if rows else set()
    observer_ok = _observers_eligible(session, unit, candidate, [(e, v) for e, v in rows if e.method == "observation"])
    facts = [readiness.EvidenceFacts(
        id=str(e.id), title=v.title, method=e.method, status=e.status, criteria=frozenset(mapped[v.id]),
        candidate_authored=v.author_id == candidate.user_id, has_declaration=v.id in declared,
        observer_eligible=observer_ok.get(v.id, False)) for e, v in rows]
    decisions = _current_decisions(session, candidate, unit, code_of)
    return readiness.assess(unit.code, unit.strategy, [(c.code, c.text) for c in criteria], facts, decisions,
                            locked_on(session, candidate.id, unit.id))


def _mapped(session: Session, version_ids: list[uuid.UUID], code_of: dict[int, str]) -> dict[uuid.UUID, set[str]]:
    mapped: dict[uuid.UUID, set[str]] = defaultdict(set)
    if version_ids:
        for link in session.exec(select(EvidenceCriterion).where(col(EvidenceCriterion.version_id).in_(version_ids))):
            if link.criterion_id in code_of:
                mapped[link.version_id].add(code_of[link.criterion_id])
    return mapped


def _observers_eligible(session: Session, unit: Unit, candidate: Candidate,
                        observations: list[tuple[Evidence, EvidenceVersion]]) -> dict[uuid.UUID, bool]:
    """Check each observation's observer against the rules as they stood on the activity date."""
    creds = people.credentials(session, {v.author_id for _, v in observations})
    users = {u.id: u for u in session.exec(select(User).where(
        col(User.id).in_({v.author_id for _, v in observations})))} if observations else {}
    result = {}
    for _, v in observations:
        facts = people.observer(users[v.author_id], creds[v.author_id], unit, v.activity_date, candidate)
        try:
            rules.check_observer(unit.strategy, unit.code, facts)
            result[v.id] = True
        except rules.RuleViolation:
            result[v.id] = False
    return result


def _current_decisions(session: Session, candidate: Candidate, unit: Unit,
                       code_of: dict[int, str]) -> list[readiness.DecisionFacts]:
    decisions = list(session.exec(select(CriterionDecision).where(
        CriterionDecision.candidate_id == candidate.id, col(CriterionDecision.criterion_id).in_(list(code_of)),
        col(CriterionDecision.current).is_(True))))
    if not decisions:
        return []
    links: dict[uuid.UUID, set[str]] = defaultdict(set)
    for link in session.exec(select(DecisionEvidence).where(
            col(DecisionEvidence.decision_id).in_([d.id for d in decisions]))):
        links[link.decision_id].add(str(link.evidence_id))
    creds = people.credentials(session, {d.assessor_id for d in decisions})
    return [readiness.DecisionFacts(
        criterion=code_of[d.criterion_id], outcome=d.outcome, evidence_ids=frozenset(links[d.id]), note=d.note,
        assessor_eligible=people.eligibility(creds[d.assessor_id], unit, d.decided_at.date()).eligible)
        for d in decisions]


# --- Sign-off ------------------------------------------------------------------------------------------


def sign_off(session: Session, actor: Actor, candidate_id: uuid.UUID | str, unit_code: str,
             declaration_signed: bool) -> UnitSignOff:
    """Sign a unit off when every rule holds, with the assessor's declaration; the unit is then locked."""
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
    candidate = people.get_candidate(session, candidate_id)
    unit = unit_for(session, candidate, unit_code)
    row = session.exec(select(UnitSignOff).where(UnitSignOff.candidate_id == candidate.id,
                                                 UnitSignOff.unit_id == unit.id,
                                                 col(UnitSignOff.reopened_at).is_(None))).first()
    if row is None:
        raise InvalidInput(f"Unit {unit.code} is not signed off.", field="unit")
    reason = (reason or "").strip()
    rules.check_reopen(actor.name, _may_reopen(session, actor, candidate, unit), reason, unit.code)
    row.reopened_at, row.reopened_by_id, row.reopen_reason = utcnow(), actor.id, reason
    session.add(row)
    record(session, actor, "unit.reopened", row, candidate=str(candidate.id), unit=unit.code, reason=reason.strip())
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
    candidate = people.get_candidate(session, candidate_id)
    unit = unit_for(session, candidate, unit_code)
    if unit.strategy.mode != "assignment":
        raise rules.RuleViolation("method_not_allowed", f"Unit {unit.code} is assessed by portfolio, not by "
                                                        "assignment: record evidence and decisions instead.")
    _check_assessor_of(session, actor, candidate, unit, "mark the assignment")
    if outcome not in ("pass", "refer"):
        raise InvalidInput("Record the assignment as passed or referred.", field="outcome")
    row = AssignmentResult(candidate_id=candidate.id, unit_id=unit.id, outcome=outcome, marked_by_id=actor.id,
                           marked_on=actor.today, note=(note or "").strip())
    session.add(row)
    session.flush()
    record(session, actor, "assignment.marked", row, candidate=str(candidate.id), unit=unit.code, outcome=outcome)
    return row


# --- Internal quality assurance ---------------------------------------------------------------------


def iqa_review(session: Session, actor: Actor, decision_id: uuid.UUID | str, verdict: str, reasons: str) -> IqaReview:
    """Record an IQA's agreement or disagreement with a decision they had no part in."""
    people.require_role(actor, Role.IQA)
    try:
        decision = session.get(CriterionDecision, uuid.UUID(str(decision_id)))
    except ValueError:
        decision = None
    if decision is None:
        raise NotFound("assessment decision")
    recorders = session.exec(select(Evidence.created_by_id).join(DecisionEvidence).where(
        DecisionEvidence.decision_id == decision.id)).all()
    rules.check_iqa_independence(actor.id, decision.assessor_id, recorders, actor.name)
    if verdict not in ("agree", "disagree"):
        raise InvalidInput("Record whether you agree or disagree with the decision.", field="verdict")
    reasons = (reasons or "").strip()
    if verdict == "disagree" and len(reasons) < 10:
        raise InvalidInput("Give the reasons for disagreeing, so the assessor can act on them.", field="reasons")
    row = IqaReview(iqa_id=actor.id, decision_id=decision.id, verdict=verdict, reasons=reasons)
    session.add(row)
    session.flush()
    record(session, actor, "iqa.reviewed", row, decision=str(decision.id), verdict=verdict)
    return row
