"""Internal quality assurance: strategies, seeded samples, the independence guard, reviews, actions, coverage."""
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import func
from sqlmodel import Session, col, select

from .. import clock, rules, sampling
from ..audit import Actor, record, turn
from ..errors import AlreadyDone, InvalidInput, NotFound
from ..models import (
    AssessorQualification,
    Candidate,
    CandidateAssignment,
    Criterion,
    CriterionDecision,
    DecisionEvidence,
    Evidence,
    EvidenceReview,
    EvidenceVersion,
    IqaAction,
    IqaReview,
    Role,
    RoleGrant,
    Sample,
    SampleItem,
    SamplingStrategy,
    Unit,
    UnitSignOff,
    User,
    utcnow,
)
from . import people
from .assessment import (
    SignedDecision,
    evidence_recorders,
    iqa_review,
    iqa_review_sign_off,
    sign_off_basis,
    signed_decisions,
)
from .assessment import reopen as reopen_unit
from .evidence import locked_on
from .inputs import day, text

KINDS = ("interim", "summative")
RATES = ("base_rate", "new_assessor_rate", "disagreement_rate", "new_site_rate")
COUNTS = ("new_assessor_decisions", "new_assessor_months")
MAX_CYCLE_DAYS = 3 * 366
ACTION_LIMIT = 5000  # an action, and the assessor's answer to it: the forms say so
DEFAULTS = {"base_rate": 10, "new_assessor_rate": 100, "new_assessor_decisions": 10, "new_assessor_months": 12,
            "disagreement_rate": 50, "new_site_rate": 50}


def _uuid(value: object, what: str) -> uuid.UUID:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        raise NotFound(what) from None


def _int(data: dict, name: str, low: int, high: int, words: str) -> int:
    raw = data.get(name, DEFAULTS.get(name))
    try:
        value = int(str(raw).strip())
    except (TypeError, ValueError):
        raise InvalidInput(f"Give the {words} as a whole number.", field=name) from None
    if not low <= value <= high:
        raise InvalidInput(f"The {words} must be between {low} and {high}.", field=name)
    return value


def _date(data: dict, name: str, words: str) -> date:
    raw = data.get(name)
    if not isinstance(raw, date):
        try:
            raw = date.fromisoformat(str(raw or "").strip())
        except ValueError:
            raise InvalidInput(f"Give the {words} as a date.", field=name) from None
    return day(raw, name, f"the {words}")


# --- Cohorts and strategies -------------------------------------------------------------------------------


def is_lead(session: Session, user_id: uuid.UUID | None) -> bool:
    """Say whether a person holds the IQA role as the centre's lead IQA."""
    return user_id is not None and bool(session.exec(select(RoleGrant.lead).where(
        RoleGrant.user_id == user_id, RoleGrant.role == Role.IQA)).first())


def set_lead(session: Session, actor: Actor, user: User, lead: bool) -> None:
    """Make an IQA the lead IQA, or not (an administrator's decision)."""
    people.require_role(actor, Role.ADMINISTRATOR)
    grant = session.get(RoleGrant, (user.id, Role.IQA.value))
    if grant is None:
        raise InvalidInput(f"{user.name} does not hold the IQA role.", field="lead")
    grant.lead = lead
    session.add(grant)
    record(session, actor, "iqa.lead_set", user, lead=lead)


def my_candidates(session: Session, iqa_id: uuid.UUID) -> list[tuple[uuid.UUID, str]]:
    """Return the candidates an IQA is attached to, by name."""
    return list(session.exec(select(Candidate.id, User.name).join(User, User.id == Candidate.user_id).join(
        CandidateAssignment, CandidateAssignment.candidate_id == Candidate.id).where(
        CandidateAssignment.user_id == iqa_id, CandidateAssignment.role == Role.IQA,
        col(CandidateAssignment.ended_on).is_(None)).order_by(User.name, Candidate.id)))


def create_strategy(session: Session, actor: Actor, data: dict) -> SamplingStrategy:
    """Record an IQA's sampling strategy for a cohort of their candidates, with its risk rates."""
    people.require_role(actor, Role.IQA)
    name = text(data.get("name"), "name", max_length=200, label="strategy's name", multiline=False)
    if not name:
        raise InvalidInput("Give the strategy a name of up to 200 characters.", field="name")
    kind = str(data.get("kind") or "")
    if kind not in KINDS:
        raise InvalidInput("Choose interim or summative sampling.", field="kind")
    start, end = _cycle_dates(data, actor.today)
    values = {n: _int(data, n, 0, 100, n.replace("_", " ").replace("rate", "rate (percent)")) for n in RATES}
    values["new_assessor_decisions"] = _int(data, "new_assessor_decisions", 0, 1000, "number of first decisions")
    values["new_assessor_months"] = _int(data, "new_assessor_months", 0, 120, "months an assessor counts as new")
    mine = {cid for cid, _ in my_candidates(session, actor.id)} if actor.id else set()
    cohort = data.get("cohort") or []
    cohort = cohort.split() if isinstance(cohort, str) else list(cohort)
    try:
        chosen = sorted({uuid.UUID(str(c)) for c in cohort})
    except ValueError:
        raise InvalidInput("A candidate in the cohort is not valid.", field="cohort") from None
    if actor.id and not set(chosen) <= mine:
        raise InvalidInput("Choose candidates you are the IQA for.", field="cohort")
    sites = text(data.get("new_sites"), "new_sites", max_length=500, label="new sites", multiline=False)
    sites = sorted({s.strip() for s in sites.replace(",", " ").split() if s.strip()})
    row = SamplingStrategy(iqa_id=actor.id, name=name, kind=kind, cohort=" ".join(map(str, chosen)),
                           cycle_start=start, cycle_end=end, new_sites=" ".join(sites)[:500], **values)
    session.add(row)
    session.flush()
    record(session, actor, "iqa.strategy_created", row, name=name, kind=kind, cohort=row.cohort,
           cycle=[start, end], **values, new_sites=row.new_sites)
    return row


def _cycle_dates(data: dict, today: date) -> tuple[date, date]:
    """Return a cycle's first and last days: starting within ten years of today, lasting at most three years."""
    start, end = _date(data, "cycle_start", "cycle start"), _date(data, "cycle_end", "cycle end")
    if abs((start - today).days) > 3653:
        raise InvalidInput("Start the cycle within ten years of today.", field="cycle_start")
    if end < start:
        raise InvalidInput("The cycle must end on or after the day it starts.", field="cycle_end")
    if (end - start).days > MAX_CYCLE_DAYS:
        raise InvalidInput("A sampling cycle lasts at most three years: end it sooner, or plan two cycles.",
                           field="cycle_end")
    return start, end


def scope(session: Session, viewer: User) -> set[uuid.UUID] | None:
    """Return the candidates whose quality assurance a person may read: an EQA only those their grant names now
    (None: no limit by candidate, for the IQAs, who are limited by strategy instead)."""
    from .eqa import granted_candidates, is_eqa

    return granted_candidates(session, viewer, clock.now()) if is_eqa(viewer) else None


def strategy_for(session: Session, viewer: User, strategy_id: object) -> SamplingStrategy:
    """Return a strategy its IQA, the lead IQA or an EQA may read (an EQA: one sampling a candidate of their grant);
    anyone else is told it does not exist."""
    row = session.get(SamplingStrategy, _uuid(strategy_id, "sampling strategy"))
    within = scope(session, viewer)
    if row is None or not (row.iqa_id == viewer.id or is_lead(session, viewer.id) or (
            within is not None and within & set(cohort_of(session, row)))):
        raise NotFound("sampling strategy")
    return row


def own_strategy(session: Session, actor: Actor, strategy_id: object) -> SamplingStrategy:
    """Return a strategy of the acting IQA's own, for changes."""
    people.require_role(actor, Role.IQA)
    row = session.get(SamplingStrategy, _uuid(strategy_id, "sampling strategy"))
    if row is None or row.iqa_id != actor.id:
        raise NotFound("sampling strategy")
    return row


def strategies(session: Session, viewer: User) -> list[tuple[SamplingStrategy, str]]:
    """Return the strategies a person may read, with their IQA's name."""
    query = select(SamplingStrategy, User.name).join(User, User.id == SamplingStrategy.iqa_id)
    within = scope(session, viewer)
    if within is None and not is_lead(session, viewer.id):
        query = query.where(SamplingStrategy.iqa_id == viewer.id)
    rows = list(session.exec(query.order_by(col(SamplingStrategy.created_at).desc(), SamplingStrategy.id)))
    return rows if within is None else [r for r in rows if within & set(cohort_of(session, r[0]))]


def cohort_of(session: Session, strategy: SamplingStrategy) -> list[uuid.UUID]:
    """Return the strategy's candidates: those named, or every candidate its IQA is attached to."""
    if strategy.cohort:
        return sorted(uuid.UUID(c) for c in strategy.cohort.split())
    return sorted(cid for cid, _ in my_candidates(session, strategy.iqa_id))


def rates_of(strategy: SamplingStrategy) -> sampling.Rates:
    """Return a strategy's rates for the selection."""
    return sampling.Rates(strategy.base_rate, strategy.new_assessor_rate, strategy.new_assessor_decisions,
                          strategy.new_assessor_months, strategy.disagreement_rate, strategy.new_site_rate,
                          frozenset(strategy.new_sites.split()))


# --- The population and the independence guard -----------------------------------------------------------


@dataclass(frozen=True)
class Exclusion:
    """An item the IQA may not sample, why, and the independent IQAs of the cohort who can."""

    item: sampling.Item
    candidate: str
    why: str
    others: tuple[str, ...]


@dataclass
class Population:
    """What a strategy can sample, what the independence guard keeps from its IQA, and the names to show."""

    items: list[sampling.Item]
    excluded: list[Exclusion]
    candidates: dict[str, str] = field(default_factory=dict)


def _cycle(strategy: SamplingStrategy) -> tuple[datetime, datetime]:
    # A cycle saved before its dates were checked may end on the last day a date can hold: it runs to that day.
    last = min(strategy.cycle_end, date.max - timedelta(days=1))
    return clock.day_start(strategy.cycle_start), clock.day_start(last + timedelta(days=1))


def population(session: Session, strategy: SamplingStrategy, within: set[uuid.UUID] | None = None) -> Population:
    """Load everything a strategy can sample in a fixed number of queries, split by the independence guard (only
    the candidates `within` an EQA's grant, when given)."""
    cohort = [c for c in cohort_of(session, strategy) if within is None or c in within]
    if not cohort:
        return Population([], [])
    start, end = _cycle(strategy)
    names = dict(session.exec(select(Candidate.id, User.name).join(User, User.id == Candidate.user_id).where(
        col(Candidate.id).in_(cohort))).all())
    if strategy.kind == "summative":
        rows = session.exec(select(UnitSignOff.id, UnitSignOff.candidate_id, UnitSignOff.assessor_id, User.name)
                            .join(User, User.id == UnitSignOff.assessor_id).where(
            col(UnitSignOff.candidate_id).in_(cohort), col(UnitSignOff.reopened_at).is_(None),
            UnitSignOff.signed_at >= start, UnitSignOff.signed_at < end)).all()
        basis = sign_off_basis(session, [r[0] for r in rows])
        recorders = {sid: set(b.recorders) for sid, b in basis.items()}
        decided = {sid: b.assessors for sid, b in basis.items()}
        facts = {r[0]: ("sign-off", (), ()) for r in rows}
    else:
        rows, facts, recorders = _decision_facts(session, strategy, cohort)
        decided = {}
    assessors = sorted({r[2] for r in rows})
    ordinal = _ordinals(session, assessors, strategy.new_assessor_decisions) if strategy.kind == "interim" else {}
    new = _new_assessors(session, assessors, strategy)
    disagreed = _disagreed(session, assessors, start, end)
    others = _other_iqas(session, cohort, strategy.iqa_id)
    items, excluded = [], []
    summative = strategy.kind == "summative"
    for did, cid, aid, assessor in rows:
        criterion, methods, sites = facts.get(did, ("", (), ()))
        item = sampling.Item(str(did), str(cid), str(aid), assessor, criterion, methods, sites,
                             ordinal.get(did, 0), aid in new, aid in disagreed)
        involved = {aid} | recorders[did] | decided.get(did, frozenset())
        try:
            rules.check_iqa_independence(strategy.iqa_id, aid, recorders[did], "The IQA",
                                         decision_assessor_ids=decided.get(did, ()), sign_off=summative)
            items.append(item)
        except rules.RuleViolation:
            who = tuple(n for uid, n in others.get(cid, []) if uid not in involved)
            excluded.append(Exclusion(item, names.get(cid, ""), _why_excluded(strategy, aid, decided.get(did, ())),
                                      who))
    key = lambda i: i.id  # noqa: E731
    return Population(sorted(items, key=key), sorted(excluded, key=lambda e: e.item.id),
                      {str(k): v for k, v in names.items()})


def _why_excluded(strategy: SamplingStrategy, assessor_id: uuid.UUID, decided: frozenset | tuple) -> str:
    """Say why the independence guard keeps an item from the strategy's IQA."""
    if assessor_id == strategy.iqa_id:
        return "they signed this unit off" if strategy.kind == "summative" else "they made this decision"
    return "they made decisions it rests on" if strategy.iqa_id in decided else "they recorded evidence it rests on"


def _decision_facts(session: Session, strategy: SamplingStrategy,
                    cohort: list[uuid.UUID]) -> tuple[list[tuple], dict, dict]:
    """Return the cycle's current decisions with their criterion, methods, sites and evidence recorders, in one query."""
    start, end = _cycle(strategy)
    rows: list[tuple] = []
    facts: dict[uuid.UUID, tuple[str, set, set]] = {}
    recorders: dict[uuid.UUID, set] = defaultdict(set)
    for did, cid, aid, name, code, method, setting, creator, author in session.exec(
            select(CriterionDecision.id, CriterionDecision.candidate_id, CriterionDecision.assessor_id, User.name,
                   Criterion.code, Evidence.method, EvidenceVersion.setting, Evidence.created_by_id,
                   EvidenceVersion.author_id)
            .join(User, User.id == CriterionDecision.assessor_id)
            .join(Criterion, Criterion.id == CriterionDecision.criterion_id)
            .outerjoin(DecisionEvidence, DecisionEvidence.decision_id == CriterionDecision.id)
            .outerjoin(Evidence, Evidence.id == DecisionEvidence.evidence_id)
            .outerjoin(EvidenceVersion, (EvidenceVersion.evidence_id == Evidence.id)
                       & (EvidenceVersion.number == Evidence.current_version))
            .where(col(CriterionDecision.candidate_id).in_(cohort), col(CriterionDecision.current).is_(True),
                   CriterionDecision.decided_at >= start, CriterionDecision.decided_at < end)):
        entry = facts.get(did)
        if entry is None:
            entry = facts[did] = (code, set(), set())
            rows.append((did, cid, aid, name))
        if method:
            entry[1].add(method)
        if setting:
            entry[2].add(setting)
        recorders[did] |= {r for r in (creator, author) if r}
    return rows, {k: (c, tuple(sorted(m)), tuple(sorted(s))) for k, (c, m, s) in facts.items()}, recorders


def _ordinals(session: Session, assessors: list[uuid.UUID], first: int) -> dict[uuid.UUID, int]:
    """Number each assessor's first decisions (by time, then id), in the database: later ones are not needed."""
    if not assessors or first <= 0:
        return {}
    ranked = select(CriterionDecision.id, func.row_number().over(
        partition_by=CriterionDecision.assessor_id,
        order_by=(CriterionDecision.decided_at, CriterionDecision.id)).label("n")).where(
        col(CriterionDecision.assessor_id).in_(assessors)).subquery()
    return dict(session.exec(select(ranked.c.id, ranked.c.n).where(ranked.c.n <= first)).all())


def _new_assessors(session: Session, assessors: list[uuid.UUID], strategy: SamplingStrategy) -> set[uuid.UUID]:
    """Return the assessors whose first qualification was recorded within the strategy's months of its cycle end."""
    if not assessors or not strategy.new_assessor_months:
        return set()
    since = strategy.cycle_end - timedelta(days=round(strategy.new_assessor_months * 30.44))
    first = session.exec(select(AssessorQualification.user_id, func.min(AssessorQualification.verified_on)).where(
        col(AssessorQualification.user_id).in_(assessors)).group_by(AssessorQualification.user_id)).all()
    return {uid for uid, on in first if on and on >= since}


def _disagreed(session: Session, assessors: list[uuid.UUID], start: datetime, end: datetime) -> set[uuid.UUID]:
    """Return the assessors an IQA disagreed with during the cycle, on a decision or a unit sign-off."""
    if not assessors:
        return set()
    disagreed = (IqaReview.verdict == "disagree", IqaReview.created_at >= start, IqaReview.created_at < end)
    on_decisions = select(CriterionDecision.assessor_id).join(
        IqaReview, IqaReview.decision_id == CriterionDecision.id).where(
        col(CriterionDecision.assessor_id).in_(assessors), *disagreed)
    on_sign_offs = select(UnitSignOff.assessor_id).join(IqaReview, IqaReview.signoff_id == UnitSignOff.id).where(
        col(UnitSignOff.assessor_id).in_(assessors), *disagreed)
    return set(session.exec(on_decisions.union(on_sign_offs)).scalars().all())


def _other_iqas(session: Session, cohort: list[uuid.UUID], iqa_id: uuid.UUID) -> dict[uuid.UUID, list]:
    """Return, per candidate, the other IQAs attached to them."""
    found: dict[uuid.UUID, list] = defaultdict(list)
    for cid, uid, name in session.exec(select(CandidateAssignment.candidate_id, User.id, User.name).join(
            User, User.id == CandidateAssignment.user_id).where(
            col(CandidateAssignment.candidate_id).in_(cohort), CandidateAssignment.role == Role.IQA,
            col(CandidateAssignment.ended_on).is_(None), CandidateAssignment.user_id != iqa_id).order_by(User.name)):
        found[cid].append((uid, name))
    return found


# --- Drawing a sample ------------------------------------------------------------------------------------


def covered(session: Session, strategy: SamplingStrategy, pop: Population) -> sampling.Covered:
    """Return the assessors, methods and sites this IQA's earlier samples already cover this cycle."""
    sampled = set(session.exec(select(SampleItem.decision_id).join(Sample).join(SamplingStrategy).where(
        SamplingStrategy.iqa_id == strategy.iqa_id, SamplingStrategy.cycle_start <= strategy.cycle_end,
        SamplingStrategy.cycle_end >= strategy.cycle_start, col(SampleItem.decision_id).is_not(None))).all())
    done = [i for i in pop.items if uuid.UUID(i.id) in sampled]
    return sampling.Covered(frozenset(i.assessor_id for i in done), frozenset(m for i in done for m in i.methods),
                            frozenset(s for i in done for s in i.sites))


def preview(session: Session, strategy: SamplingStrategy, seed: int) -> list[sampling.Pick]:
    """Return the sample a seed would draw now, without storing it (an EQA's reproduction)."""
    pop = population(session, strategy)
    return sampling.draw(pop.items, rates_of(strategy), seed, covered(session, strategy, pop))


def draw(session: Session, actor: Actor, strategy_id: object, seed: object) -> Sample:
    """Draw and store a seeded sample for the acting IQA's strategy, each item with the reason it was chosen."""
    turn(session)
    strategy = own_strategy(session, actor, strategy_id)
    try:
        seed = int(str(seed).strip())
    except ValueError:
        raise InvalidInput("Give the seed as a whole number.", field="seed") from None
    if not 0 <= seed <= 2**31 - 1:
        raise InvalidInput("The seed must be between 0 and 2147483647.", field="seed")
    picks = preview(session, strategy, seed)
    sample = Sample(strategy_id=strategy.id, seed=seed, drawn_by_id=actor.id)
    session.add(sample)
    session.flush()
    owners = _owners(session, strategy, [p.id for p in picks])
    for pick in picks:
        target = {"signoff_id" if strategy.kind == "summative" else "decision_id": uuid.UUID(pick.id)}
        session.add(SampleItem(sample_id=sample.id, candidate_id=owners[pick.id], reason=pick.reason, **target))
    record(session, actor, "iqa.sample_drawn", sample, strategy=str(strategy.id), seed=seed,
           items=[[p.id, p.reason] for p in picks])
    return sample


def _owners(session: Session, strategy: SamplingStrategy, ids: list[str]) -> dict[str, uuid.UUID]:
    model = UnitSignOff if strategy.kind == "summative" else CriterionDecision
    if not ids:
        return {}
    return {str(i): c for i, c in session.exec(select(model.id, model.candidate_id).where(
        col(model.id).in_([uuid.UUID(i) for i in ids])))}


def sample_for(session: Session, viewer: User, sample_id: object) -> tuple[Sample, SamplingStrategy]:
    """Return a sample and its strategy, if the person may read the strategy."""
    sample = session.get(Sample, _uuid(sample_id, "sample"))
    if sample is None:
        raise NotFound("sample")
    return sample, strategy_for(session, viewer, sample.strategy_id)


def add_item(session: Session, actor: Actor, sample_id: object, decision_id: object, reason: str) -> SampleItem:
    """Add a decision to the acting IQA's sample by hand, with the reason, under the independence guard."""
    reason = text(reason, "reason", max_length=1000, label="reason")
    turn(session)  # the same decision added twice at once: the second finds it in the sample
    sample = session.get(Sample, _uuid(sample_id, "sample"))
    if sample is None:
        raise NotFound("sample")
    strategy = own_strategy(session, actor, sample.strategy_id)
    if strategy.kind != "interim":
        raise InvalidInput("Add decisions by hand to an interim sample.", field="decision")
    if len(reason) < 5:
        raise InvalidInput("Say why you are adding this decision (5 to 1000 characters).", field="reason")
    try:
        decision = session.get(CriterionDecision, uuid.UUID(str(decision_id)))
    except ValueError:
        decision = None
    if decision is None or decision.candidate_id not in cohort_of(session, strategy):
        raise InvalidInput("Choose a decision on a candidate in this strategy's cohort.", field="decision")
    _check_independent(session, actor, decision)
    if session.exec(select(SampleItem.id).where(SampleItem.sample_id == sample.id,
                                                SampleItem.decision_id == decision.id)).first():
        raise InvalidInput("That decision is already in this sample.", field="decision")
    item = SampleItem(sample_id=sample.id, decision_id=decision.id, candidate_id=decision.candidate_id,
                      reason=f"added by the IQA: {reason}", manual=True)
    session.add(item)
    session.flush()
    record(session, actor, "iqa.item_added", item, candidate=str(decision.candidate_id), sample=str(sample.id),
           decision=str(decision.id), reason=reason)
    return item


def _check_independent(session: Session, actor: Actor, decision: CriterionDecision) -> None:
    rules.check_iqa_independence(actor.id, decision.assessor_id,
                                 evidence_recorders(session, [decision.id])[decision.id], actor.name)


@dataclass(frozen=True)
class ItemRow:
    """A sampled item as the sample page lists it."""

    id: uuid.UUID
    candidate: str
    assessor: str
    what: str
    reason: str
    manual: bool
    verdict: str | None


def items_of(session: Session, sample: Sample, within: set[uuid.UUID] | None = None) -> list[ItemRow]:
    """Return a sample's items (of the candidates `within` an EQA's grant, when given) with names and verdicts."""
    query = select(SampleItem, User.name, IqaReview.verdict).join(
        Candidate, Candidate.id == SampleItem.candidate_id).join(User, User.id == Candidate.user_id).outerjoin(
        IqaReview, IqaReview.id == SampleItem.review_id).where(SampleItem.sample_id == sample.id)
    if within is not None:
        query = query.where(col(SampleItem.candidate_id).in_(within))
    rows = session.exec(query.order_by(SampleItem.decision_id, SampleItem.signoff_id, SampleItem.id)).all()
    what = _what(session, [r[0] for r in rows])
    return [ItemRow(i.id, name, *what.get(i.id, ("", "")), i.reason, i.manual, verdict) for i, name, verdict in rows]


def _what(session: Session, items: list[SampleItem]) -> dict[uuid.UUID, tuple[str, str]]:
    """Return each item's assessor and a description: the criterion and outcome, or the unit signed off."""
    out = {}
    decisions = {i.decision_id: i.id for i in items if i.decision_id}
    if decisions:
        for did, code, outcome, name in session.exec(select(
                CriterionDecision.id, Criterion.code, CriterionDecision.outcome, User.name).join(
                Criterion, Criterion.id == CriterionDecision.criterion_id).join(
                User, User.id == CriterionDecision.assessor_id).where(col(CriterionDecision.id).in_(list(decisions)))):
            out[decisions[did]] = (name, f"Criterion {code}: {outcome.replace('_', ' ')}")
    signoffs = {i.signoff_id: i.id for i in items if i.signoff_id}
    if signoffs:
        for sid, name, at in session.exec(select(UnitSignOff.id, User.name, UnitSignOff.signed_at).join(
                User, User.id == UnitSignOff.assessor_id).where(col(UnitSignOff.id).in_(list(signoffs)))):
            out[signoffs[sid]] = (name, f"Unit signed off {at:%-d %B %Y}")
    return out


# --- Reviewing a sampled decision and raising actions ------------------------------------------------------


def item_for(session: Session, viewer: User, item_id: object) -> tuple[SampleItem, SamplingStrategy]:
    """Return a sampled item, if the person may read its strategy."""
    item = session.get(SampleItem, _uuid(item_id, "sampled item"))
    within = scope(session, viewer)
    if item is None or (within is not None and item.candidate_id not in within):
        raise NotFound("sampled item")
    sample = session.get(Sample, item.sample_id)
    return item, strategy_for(session, viewer, sample.strategy_id)


def review(session: Session, actor: Actor, item_id: object, verdict: str, reasons: str,
           practice_feedback: str = "", action: str = "", due_on: object = None) -> IqaReview:
    """Record the IQA's verdict on a sampled decision or sign-off, any practice feedback, and any action."""
    action = text(action, "action", max_length=ACTION_LIMIT, label="action")
    turn(session)  # the same review sent twice at once: the second finds the item reviewed
    item = session.get(SampleItem, _uuid(item_id, "sampled item"), populate_existing=True)
    if item is None:
        raise NotFound("sampled item")
    own_strategy(session, actor, session.get(Sample, item.sample_id).strategy_id)
    if item.review_id is not None:
        return _reviewed(session, actor, item, verdict, reasons, practice_feedback)
    due = _date({"due_on": due_on}, "due_on", "date the action is due") if action else None
    if due is not None and due < actor.today:
        raise InvalidInput("The action must be due today or later.", field="due_on")
    if due is not None and (due - actor.today).days > 3 * 366:
        raise InvalidInput("Set the action's date within three years.", field="due_on")
    if item.decision_id is not None:
        row = iqa_review(session, actor, item.decision_id, verdict, reasons, practice_feedback)
    else:
        row = iqa_review_sign_off(session, actor, item.signoff_id, verdict, reasons, practice_feedback)
    item.review_id = row.id
    session.add(item)
    if action:
        raise_action(session, actor, item, action, due)
    return row


def _reviewed(session: Session, actor: Actor, item: SampleItem, verdict: str, reasons: str,
              practice_feedback: str) -> IqaReview:
    """Return the review of an item already reviewed if this is the same review again; otherwise say who made it."""
    row, name = session.exec(select(IqaReview, User.name).join(User, User.id == IqaReview.iqa_id).where(
        IqaReview.id == item.review_id)).one()
    again = (actor.id, verdict, text(reasons, "reasons", max_length=5000, label="reasons"),
             text(practice_feedback, "practice_feedback", max_length=5000, label="feedback on practice"))
    if again == (row.iqa_id, row.verdict, row.reasons, row.practice_feedback):
        return row
    raise AlreadyDone(f"This item was already reviewed by {name} ({row.verdict}, "
                      f"{clock.day_of(row.created_at):%-d %B %Y}). Their review stands.", field="verdict")


def raise_action(session: Session, actor: Actor, item: SampleItem, text: str, due: date) -> IqaAction:
    """Ask the assessor of a sampled decision or unit sign-off to act by a date."""
    subject = session.get(CriterionDecision, item.decision_id) if item.decision_id else \
        session.get(UnitSignOff, item.signoff_id)
    row = IqaAction(iqa_id=actor.id, assessor_id=subject.assessor_id, candidate_id=item.candidate_id,
                    item_id=item.id, text=text, due_on=due)
    session.add(row)
    session.flush()
    record(session, actor, "iqa.action_raised", row, candidate=str(item.candidate_id),
           assessor=str(subject.assessor_id), text=text, due_on=due)
    return row


def _action(session: Session, action_id: object) -> IqaAction:
    row = session.get(IqaAction, _uuid(action_id, "action"), populate_existing=True)
    if row is None:
        raise NotFound("action")
    return row


def respond(session: Session, actor: Actor, action_id: object, response: str, reopen: bool = False) -> IqaAction:
    """The assessor answers an action, and may reopen what it concerns with the answer as the reason."""
    response = text(response, "response", max_length=ACTION_LIMIT, label="answer")
    turn(session)
    row = _action(session, action_id)
    if row.assessor_id != actor.id:
        raise NotFound("action")
    if row.status == "closed":
        raise InvalidInput("This action is closed.", field="response")
    if len(response) < 5:
        raise InvalidInput("Say what you have done (5 to 5000 characters).", field="response")
    if reopen:
        _reopen_subject(session, actor, row, response)
    row.status, row.response, row.answered_at = "answered", response, utcnow()
    session.add(row)
    record(session, actor, "iqa.action_answered", row, candidate=str(row.candidate_id), response=response,
           reopened=bool(reopen))
    return row


def _reopen_subject(session: Session, actor: Actor, action: IqaAction, reason: str) -> None:
    """Reopen the sampled decision (kept, no longer current, so judged again) or the sampled signed-off unit."""
    item = session.get(SampleItem, action.item_id) if action.item_id else None
    if item and item.signoff_id:
        signoff = session.get(UnitSignOff, item.signoff_id)
        if signoff.reopened_at is not None:
            raise InvalidInput("The unit has already been reopened, so there is nothing to reopen.", field="reopen")
        reopen_unit(session, actor, signoff.candidate_id, session.get(Unit, signoff.unit_id).code, reason)
        return
    decision = session.get(CriterionDecision, item.decision_id) if item and item.decision_id else None
    if decision is None or not decision.current:
        raise InvalidInput("The decision has already been replaced, so there is nothing to reopen.", field="reopen")
    criterion = session.get(Criterion, decision.criterion_id)
    rules.check_unit_unlocked(locked_on(session, decision.candidate_id, criterion.unit_id), "002")
    decision.current = False
    session.add(decision)
    record(session, actor, "decision.reopened", decision, candidate=str(decision.candidate_id),
           criterion=criterion.code, reason=reason)


def close(session: Session, actor: Actor, action_id: object) -> IqaAction:
    """The IQA who raised an action closes it once answered."""
    turn(session)
    row = _action(session, action_id)
    if row.iqa_id != actor.id:
        raise NotFound("action")
    if row.status != "answered":
        raise InvalidInput("Close an action once the assessor has answered it.", field="close")
    row.status, row.closed_at = "closed", utcnow()
    session.add(row)
    record(session, actor, "iqa.action_closed", row, candidate=str(row.candidate_id))
    return row


@dataclass(frozen=True)
class ActionRow:
    """An action as the lists show it."""

    id: uuid.UUID
    text: str
    due_on: date
    status: str
    response: str | None
    candidate: str
    assessor: str
    iqa: str
    iqa_id: uuid.UUID
    assessor_id: uuid.UUID

    def overdue(self, today: date) -> bool:
        """Say whether the action is past its date and not yet answered."""
        return self.status == "open" and self.due_on < today


def actions(session: Session, user: User, *, open_only: bool = False) -> list[ActionRow]:
    """Return the actions a person raised or must answer (every action for the lead IQA), in one query."""
    assessor, iqa, candidate_user = (User.__table__.alias(n) for n in ("a", "q", "cu"))
    query = select(IqaAction.id, IqaAction.text, IqaAction.due_on, IqaAction.status, IqaAction.response,
                   candidate_user.c.name, assessor.c.name, iqa.c.name, IqaAction.iqa_id, IqaAction.assessor_id).join(
        Candidate, Candidate.id == IqaAction.candidate_id).join(
        candidate_user, candidate_user.c.id == Candidate.user_id).join(
        assessor, assessor.c.id == IqaAction.assessor_id).join(iqa, iqa.c.id == IqaAction.iqa_id)
    within = scope(session, user)
    if within is not None:
        query = query.where(col(IqaAction.candidate_id).in_(within))
    elif not is_lead(session, user.id):
        query = query.where((IqaAction.iqa_id == user.id) | (IqaAction.assessor_id == user.id))
    if open_only:
        query = query.where(IqaAction.status != "closed")
    return [ActionRow(*r) for r in session.exec(query.order_by(IqaAction.due_on, IqaAction.id))]


def actions_for(session: Session, assessor_id: uuid.UUID) -> list[ActionRow]:
    """Return an assessor's unanswered actions in one query."""
    iqa, candidate_user = User.__table__.alias("q"), User.__table__.alias("cu")
    rows = session.exec(select(IqaAction.id, IqaAction.text, IqaAction.due_on, IqaAction.status, IqaAction.response,
                               candidate_user.c.name, candidate_user.c.name, iqa.c.name, IqaAction.iqa_id,
                               IqaAction.assessor_id).join(Candidate, Candidate.id == IqaAction.candidate_id).join(
        candidate_user, candidate_user.c.id == Candidate.user_id).join(iqa, iqa.c.id == IqaAction.iqa_id).where(
        IqaAction.assessor_id == assessor_id, IqaAction.status == "open").order_by(IqaAction.due_on, IqaAction.id))
    return [ActionRow(*r) for r in rows]


# --- Review page, coverage matrix and cycle report ---------------------------------------------------------


@dataclass
class ItemDetail:
    """What the IQA sees for a sampled decision: the evidence, mapping, judgement, feedback and any review."""

    item: SampleItem
    candidate: str
    assessor: str
    criterion: str
    criterion_text: str
    outcome: str
    note: str
    evidence: list[tuple]  # (id, title, method, setting, status, feedback)
    review: IqaReview | None
    actions: list[IqaAction]


@dataclass
class SignOffDetail:
    """What the IQA sees for a sampled sign-off: unit, declaration, signer, decisions, evidence, feedback, review."""

    item: SampleItem
    candidate: str
    assessor: str
    unit: str
    unit_title: str
    declaration: str
    signed_at: datetime
    reopened_at: datetime | None
    decisions: list[tuple[SignedDecision, list[tuple]]]  # each decision with its evidence rows, as ItemDetail's
    review: IqaReview | None
    actions: list[IqaAction]


def item_detail(session: Session, item: SampleItem) -> ItemDetail | SignOffDetail:
    """Load a sampled decision or sign-off with the evidence and feedback it rests on, in fixed queries."""
    candidate = people.candidate_name(session, session.get(Candidate, item.candidate_id))
    review = session.get(IqaReview, item.review_id) if item.review_id else None
    raised = list(session.exec(select(IqaAction).where(IqaAction.item_id == item.id).order_by(
        IqaAction.created_at, IqaAction.id)))
    if item.signoff_id is not None:
        return _sign_off_detail(session, item, candidate, review, raised)
    decision = session.get(CriterionDecision, item.decision_id)
    criterion = session.get(Criterion, decision.criterion_id)
    return ItemDetail(item, candidate, session.get(User, decision.assessor_id).name, criterion.code, criterion.text,
                      decision.outcome, decision.note, _evidence_of(session, [decision.id])[decision.id], review,
                      raised)


def _sign_off_detail(session: Session, item: SampleItem, candidate: str, review: IqaReview | None,
                     raised: list[IqaAction]) -> SignOffDetail:
    """Load the sign-off, its unit and signer, and every decision it rests on with their evidence."""
    signoff, unit, assessor = session.exec(select(UnitSignOff, Unit, User.name).join(
        Unit, Unit.id == UnitSignOff.unit_id).join(User, User.id == UnitSignOff.assessor_id).where(
        UnitSignOff.id == item.signoff_id)).one()
    decisions = signed_decisions(session, [signoff.id])
    evidence = _evidence_of(session, [d.id for d in decisions])
    return SignOffDetail(item, candidate, assessor, unit.code, unit.title, signoff.declaration, signoff.signed_at,
                         signoff.reopened_at, [(d, evidence[d.id]) for d in decisions], review, raised)


def _evidence_of(session: Session, decision_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[tuple]]:
    """Return the evidence each decision rests on, with the assessor's latest feedback on it, in one query."""
    found: dict[uuid.UUID, list[tuple]] = defaultdict(list)
    if not decision_ids:
        return found
    latest = select(EvidenceReview.evidence_id, func.max(EvidenceReview.created_at).label("at")).group_by(
        EvidenceReview.evidence_id).subquery()
    for did, *row in session.exec(select(
            DecisionEvidence.decision_id, Evidence.id, EvidenceVersion.title, Evidence.method, EvidenceVersion.setting,
            Evidence.status, EvidenceReview.feedback).join(
            Evidence, Evidence.id == DecisionEvidence.evidence_id).join(
            EvidenceVersion, (EvidenceVersion.evidence_id == Evidence.id)
            & (EvidenceVersion.number == Evidence.current_version)).outerjoin(
            latest, latest.c.evidence_id == Evidence.id).outerjoin(
            EvidenceReview, (EvidenceReview.evidence_id == Evidence.id) & (EvidenceReview.created_at == latest.c.at))
            .where(col(DecisionEvidence.decision_id).in_(decision_ids)).order_by(Evidence.id)):
        found[did].append(tuple(row))
    return found


@dataclass
class Coverage:
    """Per assessor: methods × criteria sampled or not, and sites sampled or not, this cycle."""

    methods: list[str]
    criteria: list[str]
    assessors: list[tuple[str, str]]  # (id, name)
    cells: dict[tuple[str, str, str], str]  # (assessor, method, criterion) -> "sampled" or "unsampled"
    sites: dict[str, dict[str, str]]  # assessor -> site -> "sampled" or "unsampled"


def coverage(session: Session, strategy: SamplingStrategy, within: set[uuid.UUID] | None = None) -> Coverage:
    """Build the coverage matrix from the population and the items sampled this cycle, in fixed queries."""
    pop = population(session, strategy, within)
    done = covered_ids(session, strategy)
    everything = pop.items + [e.item for e in pop.excluded]
    methods = sorted({m for i in everything for m in i.methods})
    criteria = sorted({i.criterion for i in everything if i.criterion},
                      key=lambda c: tuple(int(p) if p.isdigit() else 0 for p in c.split(".")))
    assessors = sorted({(i.assessor_id, i.assessor) for i in everything}, key=lambda a: (a[1], a[0]))
    cells: dict[tuple[str, str, str], str] = {}
    sites: dict[str, dict[str, str]] = defaultdict(dict)
    for i in everything:
        state = "sampled" if i.id in done else "unsampled"
        for m in i.methods:
            if cells.get((i.assessor_id, m, i.criterion)) != "sampled":
                cells[(i.assessor_id, m, i.criterion)] = state
        for s in i.sites:
            if sites[i.assessor_id].get(s) != "sampled":
                sites[i.assessor_id][s] = state
    return Coverage(methods, criteria, assessors, cells, dict(sites))


def covered_ids(session: Session, strategy: SamplingStrategy) -> set[str]:
    """Return the ids of decisions this IQA sampled in any strategy overlapping this one's cycle."""
    return {str(d) for d in session.exec(select(SampleItem.decision_id).join(Sample).join(SamplingStrategy).where(
        SamplingStrategy.iqa_id == strategy.iqa_id, SamplingStrategy.cycle_start <= strategy.cycle_end,
        SamplingStrategy.cycle_end >= strategy.cycle_start, col(SampleItem.decision_id).is_not(None)))}


@dataclass
class Report:
    """An IQA's cycle: what was sampled, verdicts per assessor and method, and open actions."""

    iqa: str
    sampled: int
    reviewed: int
    by_assessor: dict[str, dict[str, int]]
    by_method: dict[str, dict[str, int]]
    open_actions: list[ActionRow]


SIGN_OFF_METHOD = "unit sign-off"  # the by-method row of summative items: a sign-off rests on every method


def report(session: Session, iqa: User, reader: User | None = None) -> Report:
    """Summarise an IQA's sampling and verdicts, sign-offs counted under their assessor, in fixed queries (for an
    EQA reader, only the items and actions of the candidates their grant names)."""
    within = scope(session, reader) if reader is not None else None
    assessor_id = func.coalesce(CriterionDecision.assessor_id, UnitSignOff.assessor_id)
    rows = session.exec(select(SampleItem.id, SampleItem.signoff_id, IqaReview.verdict, User.name, Evidence.method)
                        .join(Sample, Sample.id == SampleItem.sample_id)
                        .join(SamplingStrategy, SamplingStrategy.id == Sample.strategy_id)
                        .outerjoin(IqaReview, IqaReview.id == SampleItem.review_id)
                        .outerjoin(CriterionDecision, CriterionDecision.id == SampleItem.decision_id)
                        .outerjoin(UnitSignOff, UnitSignOff.id == SampleItem.signoff_id)
                        .outerjoin(User, User.id == assessor_id)
                        .outerjoin(DecisionEvidence, DecisionEvidence.decision_id == SampleItem.decision_id)
                        .outerjoin(Evidence, Evidence.id == DecisionEvidence.evidence_id)
                        .where(SamplingStrategy.iqa_id == iqa.id, *(
                            [] if within is None else [col(SampleItem.candidate_id).in_(within)]))).all()
    items, by_assessor, by_method = {}, defaultdict(lambda: defaultdict(int)), defaultdict(lambda: defaultdict(int))
    methods_seen: set[tuple] = set()
    for iid, signoff_id, verdict, assessor, method in rows:
        method = SIGN_OFF_METHOD if signoff_id else method
        if iid not in items:
            items[iid] = verdict
            by_assessor[assessor][verdict or "not yet reviewed"] += 1
        if method and (iid, method) not in methods_seen:
            methods_seen.add((iid, method))
            by_method[method][verdict or "not yet reviewed"] += 1
    mine = [a for a in actions(session, reader or iqa, open_only=True) if a.iqa_id == iqa.id]
    return Report(iqa.name, len(items), sum(1 for v in items.values() if v), {k: dict(v) for k, v in
                  sorted(by_assessor.items())}, {k: dict(v) for k, v in sorted(by_method.items())}, mine)


def report_pdf(rep: Report, today: date) -> bytes:
    """Render the cycle report as a PDF."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 10, _latin(f"IQA cycle report: {rep.iqa}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 11)
    pdf.cell(0, 7, f"Produced {today:%d %B %Y}. Items sampled: {rep.sampled}; reviewed: {rep.reviewed}.",
             new_x="LMARGIN", new_y="NEXT")
    for title, table in (("By assessor", rep.by_assessor), ("By method", rep.by_method)):
        pdf.set_font("Helvetica", "B", 13)
        pdf.cell(0, 9, title, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 11)
        for name, counts in table.items():
            text = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
            pdf.cell(0, 7, _latin(f"{sampling.label(name)} - {text}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "B", 13)
    pdf.cell(0, 9, "Open actions", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 11)
    for a in rep.open_actions:
        late = " (overdue)" if a.overdue(today) else ""
        pdf.multi_cell(0, 7, _latin(f"{a.assessor}, {a.candidate}: {a.text} - due {a.due_on:%d %B %Y}{late}, "
                                    f"{a.status}"), new_x="LMARGIN", new_y="NEXT")
    if not rep.open_actions:
        pdf.cell(0, 7, "None.", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def _latin(text: str) -> str:
    """Keep text within the PDF core font's character set."""
    return text.replace("\u2019", "'").replace("\u2013", "-").encode("latin-1", "replace").decode("latin-1")


def users_by_id(session: Session, user_id: object) -> User:
    """Return an IQA by id for the report, or refuse."""
    user = session.get(User, _uuid(user_id, "IQA"))
    if user is None or Role.IQA not in user.role_names:
        raise NotFound("IQA")
    return user

