"""Readiness for sign-off: each criterion's status and, for anything blocking, what is missing and why.

Pure functions over plain facts: the services load the facts in a fixed number of queries.
"""
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

from .rules import HANDBOOK, METHOD_LABELS, long_date
from .specpacks.schema import AssessmentStrategy

NOT_STARTED, SUBMITTED, MET = "not_started", "evidence_submitted", "met"
STATUS_LABELS = {NOT_STARTED: "Not started", SUBMITTED: "Evidence submitted", MET: "Met"}
LIVE = {"submitted", "resubmitted", "accepted", "referred"}


@dataclass(frozen=True)
class EvidenceFacts:
    """What readiness needs to know about one piece of evidence."""

    id: str
    title: str
    method: str
    status: str
    criteria: frozenset[str]
    candidate_authored: bool = False
    has_declaration: bool = False
    observer_eligible: bool = False


@dataclass(frozen=True)
class DecisionFacts:
    """The current judgement of one criterion."""

    criterion: str
    outcome: str
    evidence_ids: frozenset[str] = frozenset()
    assessor_eligible: bool = True
    note: str = ""


@dataclass(frozen=True)
class CriterionReadiness:
    """One criterion's status and the evidence mapped to it, by method."""

    code: str
    text: str
    status: str
    evidence: dict[str, tuple[str, ...]]
    observed: bool
    message: str | None = None

    @property
    def label(self) -> str:
        """Return the status in words."""
        return STATUS_LABELS[self.status]


@dataclass(frozen=True)
class Blocker:
    """Something that stops sign-off, said so the candidate knows what to do."""

    code: str
    message: str
    criteria: tuple[str, ...] = ()


@dataclass(frozen=True)
class Readiness:
    """A candidate's readiness for sign-off of one unit."""

    unit_code: str
    criteria: tuple[CriterionReadiness, ...]
    blockers: tuple[Blocker, ...]
    signed_off_on: date | None = None
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        """Say whether everything but the assessor's sign-off declaration is in place."""
        return not self.blockers and self.signed_off_on is None

    def as_dict(self) -> dict:
        """Return plain data for JSON output."""
        return {
            "unit": self.unit_code,
            "ready": self.ready,
            "signed_off_on": self.signed_off_on.isoformat() if self.signed_off_on else None,
            "counts": self.counts,
            "criteria": [
                {"code": c.code, "status": c.status, "observed": c.observed, "message": c.message,
                 "evidence": {m: list(ids) for m, ids in c.evidence.items()}}
                for c in self.criteria
            ],
            "blockers": [{"code": b.code, "message": b.message, "criteria": list(b.criteria)} for b in self.blockers],
        }


def short(text: str, limit: int = 70) -> str:
    """Return the first line of a criterion's text, cut to a readable length."""
    first = text.splitlines()[0].rstrip(":")
    return first if len(first) <= limit else first[: limit - 1].rsplit(" ", 1)[0] + "…"


def assess(
    unit_code: str, strategy: AssessmentStrategy, criteria: Sequence[tuple[str, str]],
    evidence: Sequence[EvidenceFacts], decisions: Sequence[DecisionFacts], signed_off_on: date | None = None,
) -> Readiness:
    """Work out each criterion's status and everything that blocks sign-off."""
    live = [e for e in evidence if e.status in LIVE]
    accepted_ids = {e.id for e in live if e.status == "accepted"}
    observed = _observed_criteria(live, strategy)
    current = {d.criterion: d for d in decisions}
    rows = tuple(_criterion(code, text, live, current.get(code), accepted_ids, observed) for code, text in criteria)
    blockers = [] if signed_off_on else _blockers(unit_code, strategy, rows, live, evidence)
    counts = {s: sum(r.status == s for r in rows) for s in STATUS_LABELS}
    return Readiness(unit_code, rows, tuple(blockers), signed_off_on, counts)


def _observed_criteria(live: Sequence[EvidenceFacts], strategy: AssessmentStrategy) -> set[str]:
    return {c for e in live if _counts_as_observation(e, strategy) for c in e.criteria}


def _counts_as_observation(e: EvidenceFacts, strategy: AssessmentStrategy) -> bool:
    return e.method == "observation" and e.status == "accepted" and e.observer_eligible and bool(strategy.observers)


def _criterion(code, text, live, decision, accepted_ids, observed) -> CriterionReadiness:
    mapped = [e for e in live if code in e.criteria]
    by_method: dict[str, tuple[str, ...]] = {}
    for e in mapped:
        by_method[e.method] = by_method.get(e.method, ()) + (e.id,)
    met = (
        decision is not None and decision.outcome == "met" and decision.assessor_eligible
        and bool({e.id for e in mapped} & accepted_ids)
    )
    status = MET if met else SUBMITTED if mapped else NOT_STARTED
    message = None if met else _criterion_message(code, text, mapped, decision, accepted_ids)
    return CriterionReadiness(code, text, status, by_method, code in observed, message)


def _criterion_message(code, text, mapped, decision, accepted_ids) -> str:
    name = f"{code} ({short(text)})"
    if not mapped:
        return f"No evidence yet for {name}. Add a work product, or plan an observation of it with your assessor."
    if decision is not None and decision.outcome == "not_met":
        why = f": {decision.note}" if decision.note else "."
        return f"Your assessor judged {name} not yet met{why} Read the feedback and add or resubmit evidence."
    if decision is not None and decision.outcome == "met" and not decision.assessor_eligible:
        return f"{name} was judged met by someone not eligible to assess this unit; an eligible assessor must judge it."
    if any(e.id in accepted_ids for e in mapped):
        return f"Evidence for {name} has been accepted; your assessor has not yet judged the criterion met."
    if all(e.status == "referred" for e in mapped):
        return f"Your evidence for {name} was referred: read your assessor's feedback, then resubmit it."
    return f"Evidence for {name} is waiting for your assessor to review it."


def _blockers(unit_code, strategy, rows, live, evidence) -> list[Blocker]:
    blockers = []
    unmet = tuple(r.code for r in rows if r.status != MET)
    if unmet:
        blockers.append(Blocker(
            "criteria_not_met",
            f"{len(unmet)} of {len(rows)} assessment criteria are not yet met: {', '.join(unmet)}. Each must be "
            "judged met by an eligible assessor on accepted evidence.",
            unmet,
        ))
    blockers += _observation_blockers(unit_code, strategy, rows, live)
    blockers += _declaration_blockers(evidence)
    return blockers


def _observation_blockers(unit_code, strategy, rows, live) -> list[Blocker]:
    if not strategy.observation_required:
        return []
    if any(_counts_as_observation(e, strategy) for e in live):
        needed = set(strategy.observation_required_criteria)
        missing = tuple(r.code for r in rows if r.code in needed and not r.observed)
        if not missing:
            return []
        return [Blocker("observation_required",
                        f"The centre requires an observation for {', '.join(missing)}, and none covers "
                        f"{'it' if len(missing) == 1 else 'them'} yet.", missing)]
    return [Blocker("observation_required", _no_observation_message(unit_code, live))]


def _no_observation_message(unit_code: str, live: Sequence[EvidenceFacts]) -> str:
    need = (f"Unit {unit_code} needs at least one observation of your practice by your assessor or an approved "
            f"expert witness, accepted by your assessor ({HANDBOOK} §4, Assessment strategy).")
    observations = [e for e in live if e.method == "observation"]
    if any(e.observer_eligible and e.status != "accepted" for e in observations):
        return f"{need} Your observation is recorded but not yet accepted."
    if observations:
        return (f"{need} Your observation was recorded by someone who is not an eligible assessor or approved "
                "expert witness, so it does not count. Arrange an observation with your assessor.")
    if any(e.method == "witness_testimony" for e in live):
        return (f"{need} You have witness testimony, but what a witness saw counts as witness testimony, "
                "not as an observation. Arrange an observation with your assessor.")
    return f"{need} None has been recorded yet: arrange one with your assessor."


def _declaration_blockers(evidence: Sequence[EvidenceFacts]) -> list[Blocker]:
    unsigned = [e for e in evidence if e.status in LIVE and e.candidate_authored and not e.has_declaration]
    if not unsigned:
        return []
    titles = ", ".join(f"'{e.title}'" for e in unsigned)
    return [Blocker("declaration_missing",
                    f"Sign the declaration that this is your own work on {titles}: every piece of evidence you "
                    f"provide needs it ({METHOD_LABELS['work_product']}s and other evidence you wrote).")]


def signed_off_message(unit_code: str, on: date) -> str:
    """Say that a unit is signed off."""
    return f"Unit {unit_code} was signed off on {long_date(on)}."
