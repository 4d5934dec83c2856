"""IQA sampling through the services: seeded selection, risk rates, the independence guard, the action loop."""
from datetime import timedelta

import pytest
from sqlmodel import select

from tracker import sampling
from tracker.errors import InvalidInput, NotFound, NotPermitted
from tracker.models import AuditEntry, CriterionDecision, IqaAction, IqaReview, Role, SampleItem, UnitSignOff
from tracker.services import assessment, quality
from tracker.rules import RuleViolation


@pytest.fixture
def centre(session, factory):
    """An IQA and a second IQA of candidate C, whose assessor has judged all 20 criteria met."""
    iqa = factory.user(Role.IQA, name="Ida Iqa")
    other = factory.user(Role.IQA, name="Olu Other")
    a = factory.assessor(name="Ann Assessor")
    c = factory.candidate(name="Cara Candidate", assessors=(a,), iqas=(iqa, other))
    factory.all_met(a, c)
    session.commit()
    return {"iqa": iqa, "other": other, "a": a, "c": c}


def strategy(session, factory, iqa, **rates):
    """Make an interim strategy for the IQA's candidates over a cycle around today."""
    data = {"name": "Autumn interim", "kind": "interim", "cycle_start": factory.today - timedelta(days=30),
            "cycle_end": factory.today + timedelta(days=30)} | rates
    return quality.create_strategy(session, factory.actor(iqa), data)


def positions(session, sample_or_picks, pop):
    """Return the sample as places in the id-ordered population: the same on every backend."""
    order = [i.id for i in pop.items]
    ids = [p.id for p in sample_or_picks]
    return sorted(order.index(i) for i in ids)


# The selection for seed 2026 at a 30% routine rate, computed once and kept: a change to the algorithm that
# alters past samples breaks an EQA's reproduction, and must fail here.
EXPECTED_2026 = [0, 4, 5, 14, 16]


def test_same_strategy_and_seed_give_the_same_sample(session, factory, centre):
    """A seed reproduces its sample exactly, on this backend and against the stored expectation."""
    s = strategy(session, factory, centre["iqa"], base_rate=30, new_assessor_decisions=0, new_assessor_months=0)
    pop = quality.population(session, s)
    assert len(pop.items) == 20
    first = quality.draw(session, factory.actor(centre["iqa"]), s.id, 2026)
    session.commit()
    stored = [str(i.decision_id) for i in session.exec(select(SampleItem).where(SampleItem.sample_id == first.id))]
    again = sampling.draw(list(reversed(pop.items)), quality.rates_of(s), 2026)  # order given does not matter
    assert sorted(stored) == sorted(p.id for p in again)
    assert positions(session, again, pop) == EXPECTED_2026
    assert all(p.reason == "routine: 30% of decisions" for p in again)


def test_new_assessor_first_decisions_sampled_at_the_configured_rate(session, factory, centre):
    """With a 100% rate for a new assessor's first 10 decisions and 0% otherwise, exactly those 10 are drawn."""
    s = strategy(session, factory, centre["iqa"], base_rate=0, new_assessor_rate=100, new_assessor_decisions=10,
                 new_assessor_months=0)
    sample = quality.draw(session, factory.actor(centre["iqa"]), s.id, 1)
    items = session.exec(select(SampleItem).where(SampleItem.sample_id == sample.id)).all()
    decisions = session.exec(select(CriterionDecision).where(CriterionDecision.assessor_id == centre["a"].id)
                             .order_by(CriterionDecision.decided_at, CriterionDecision.id)).all()
    assert sorted(i.decision_id for i in items) == sorted(d.id for d in decisions[:10])
    assert {i.reason for i in items} == {"new assessor: 100% of first 10 decisions"}


def test_uncovered_method_is_added_with_its_reason():
    """A method no earlier sample covered gets one item, saying so."""
    items = [sampling.Item(f"{n:02d}", "c", "a", "Ann", "1.1", (m,), ("home",)) for n, m in
             enumerate(["observation"] * 5 + ["questioning"])]
    picks = sampling.draw(items, sampling.Rates(base=0, new_assessor=0), 3,
                          sampling.Covered(frozenset({"a"}), frozenset({"observation"}), frozenset({"home"})))
    assert picks == [sampling.Pick("05", "method not yet sampled this cycle: questioning")]


def test_iqa_never_offered_own_decisions_and_exclusion_names_who_can(session, factory):
    """An IQA who also assesses a candidate is never offered those decisions; the plan names the other IQA."""
    dual = factory.assessor(name="Dee Dual", extra_roles=(Role.IQA,))
    other = factory.user(Role.IQA, name="Olu Other")
    d = factory.candidate(name="Dan Candidate", assessors=(dual,), iqas=(dual, other))
    factory.all_met(dual, d)
    s = strategy(session, factory, dual, base_rate=100)
    pop = quality.population(session, s)
    assert pop.items == [] and len(pop.excluded) == 20
    assert {e.others for e in pop.excluded} == {("Olu Other",)}
    assert {e.why for e in pop.excluded} == {"they made this decision"}
    sample = quality.draw(session, factory.actor(dual), s.id, 5)
    assert session.exec(select(SampleItem).where(SampleItem.sample_id == sample.id)).all() == []
    decision = session.exec(select(CriterionDecision).where(CriterionDecision.candidate_id == d.id)).first()
    with pytest.raises(RuleViolation, match="cannot quality assure"):
        quality.add_item(session, factory.actor(dual), sample.id, decision.id, "Checking a concern")


@pytest.mark.parametrize("change, field", [
    ({"base_rate": 101}, "base_rate"), ({"new_site_rate": -1}, "new_site_rate"), ({"base_rate": "ten"}, "base_rate"),
    ({"kind": "weekly"}, "kind"), ({"name": ""}, "name"), ({"cycle_end": "not a date"}, "cycle_end"),
    ({"cohort": "not-an-id"}, "cohort"), ({"cohort": "0190b6a4-1a2b-7c3d-8e4f-5a6b7c8d9e0f"}, "cohort"),
])
def test_bad_strategy_input_is_refused(session, factory, centre, change, field):
    """Rates outside 0-100, wrong types, unknown kinds and forged cohort ids are refused by field."""
    with pytest.raises(InvalidInput) as refused:
        strategy(session, factory, centre["iqa"], **change)
    assert refused.value.field == field


def test_only_iqas_make_strategies_and_another_iqa_cannot_draw(session, factory, centre):
    """An assessor cannot make a strategy; another IQA's strategy is 'not found' to a second IQA."""
    with pytest.raises(NotPermitted):
        strategy(session, factory, centre["a"])
    s = strategy(session, factory, centre["iqa"])
    with pytest.raises(NotFound):
        quality.draw(session, factory.actor(centre["other"]), s.id, 1)
    with pytest.raises(InvalidInput):
        quality.draw(session, factory.actor(centre["iqa"]), s.id, "seven")


def test_action_goes_round_the_loop_with_a_complete_audit_trail(session, factory, centre):
    """Disagree and raise an action; the assessor answers and reopens the decision; the IQA closes it."""
    s = strategy(session, factory, centre["iqa"], base_rate=100)
    sample = quality.draw(session, factory.actor(centre["iqa"]), s.id, 9)
    item = session.exec(select(SampleItem).where(SampleItem.sample_id == sample.id)
                        .order_by(SampleItem.decision_id)).first()
    with pytest.raises(InvalidInput):
        quality.review(session, factory.actor(centre["iqa"]), item.id, "disagree", "too short")
    quality.review(session, factory.actor(centre["iqa"]), item.id, "disagree",
                   "The observation does not show the person leading their own plan.",
                   "Feedback to the candidate was thin.", "Re-observe 1.1 and record the person's own words.",
                   factory.today + timedelta(days=14))
    session.commit()
    due = quality.actions_for(session, centre["a"].id)
    assert [a.text for a in due] == ["Re-observe 1.1 and record the person's own words."]
    with pytest.raises(NotFound):
        quality.respond(session, factory.actor(centre["other"]), due[0].id, "Not my action to answer")
    with pytest.raises(InvalidInput):
        quality.close(session, factory.actor(centre["iqa"]), due[0].id)  # not answered yet
    quality.respond(session, factory.actor(centre["a"]), due[0].id, "Booked a new observation for Friday.",
                    reopen=True)
    assert session.get(CriterionDecision, item.decision_id).current is False
    quality.close(session, factory.actor(centre["iqa"]), due[0].id)
    session.commit()
    assert session.get(IqaAction, due[0].id).status == "closed"
    assert quality.actions_for(session, centre["a"].id) == []
    actions = [e.action for e in session.exec(select(AuditEntry).order_by(AuditEntry.seq))]
    tail = actions[actions.index("iqa.sample_drawn"):]
    assert [a for a in tail if a != "iqa.item_added"] == [
        "iqa.sample_drawn", "iqa.reviewed", "iqa.action_raised", "decision.reopened", "iqa.action_answered",
        "iqa.action_closed"]
    rep = quality.report(session, centre["iqa"])
    assert rep.by_assessor["Ann Assessor"]["disagree"] == 1 and rep.open_actions == []
    assert quality.report_pdf(rep, factory.today).startswith(b"%PDF")


def test_coverage_shows_sampled_and_unsampled(session, factory, centre):
    """The matrix marks the criteria sampled this cycle and leaves the rest as gaps."""
    s = strategy(session, factory, centre["iqa"], base_rate=0, new_assessor_decisions=1, new_assessor_months=0)
    quality.draw(session, factory.actor(centre["iqa"]), s.id, 4)
    matrix = quality.coverage(session, s)
    states = [matrix.cells[(str(centre["a"].id), "observation", c)] for c in matrix.criteria]
    assert states.count("sampled") == 1 and states.count("unsampled") == 19
    assert matrix.sites[str(centre["a"].id)] == {"long_term_care": "sampled"}


def test_summative_strategy_samples_signed_off_units(session, factory, centre):
    """A summative draw chooses from signed-off units, and reopened units are no longer offered."""
    from tracker.services import assessment

    assessment.sign_off(session, factory.actor(centre["a"]), centre["c"].id, "002", declaration_signed=True)
    s = strategy(session, factory, centre["iqa"], kind="summative", base_rate=100)
    sample = quality.draw(session, factory.actor(centre["iqa"]), s.id, 11)
    items = session.exec(select(SampleItem).where(SampleItem.sample_id == sample.id)).all()
    assert len(items) == 1 and items[0].signoff_id and items[0].decision_id is None
    assert items[0].reason == "routine: 100% of decisions"
    assessment.reopen(session, factory.actor(centre["iqa"]), centre["c"].id, "002", "IQA found a gap in 2.1")
    assert quality.population(session, s).items == []


def test_overdue_actions_seen_by_assessor_iqa_and_lead_only(session, factory, centre):
    """An overdue action is listed for its assessor and IQA, and for the lead IQA; not for another IQA."""
    s = strategy(session, factory, centre["iqa"], base_rate=100)
    sample = quality.draw(session, factory.actor(centre["iqa"]), s.id, 9)
    item = session.exec(select(SampleItem).where(SampleItem.sample_id == sample.id)).first()
    quality.review(session, factory.actor(centre["iqa"]), item.id, "agree", "", "", "Add the person's words.",
                   factory.today)
    action = session.exec(select(IqaAction)).one()
    action.due_on = factory.today - timedelta(days=3)
    session.add(action)
    lead = factory.user(Role.IQA, name="Lena Lead")
    quality.set_lead(session, factory.as_admin, lead, True)
    session.commit()
    for who, sees in ((centre["a"], True), (centre["iqa"], True), (lead, True), (centre["other"], False)):
        rows = quality.actions(session, who, open_only=True)
        assert [r.overdue(factory.today) for r in rows] == ([True] if sees else []), who.name
    with pytest.raises(NotPermitted):
        quality.set_lead(session, factory.actor(centre["iqa"]), lead, False)


# --- Summative review: a sampled unit sign-off ---------------------------------------------------------------------


def summative_item(session, factory, iqa, candidate, signer) -> SampleItem:
    """Sign the candidate's unit off and draw it into the IQA's summative sample."""
    assessment.sign_off(session, factory.actor(signer), candidate.id, "002", declaration_signed=True)
    s = strategy(session, factory, iqa, kind="summative", name="Autumn summative", base_rate=100)
    sample = quality.draw(session, factory.actor(iqa), s.id, 5)
    session.commit()
    return session.exec(select(SampleItem).where(SampleItem.sample_id == sample.id,
                                                 SampleItem.candidate_id == candidate.id)).one()


def reviews(session) -> list[tuple]:
    """Return every stored IQA review's subject and verdict."""
    return [(r.decision_id, r.signoff_id, r.verdict) for r in session.exec(select(IqaReview))]


def test_iqa_agrees_with_a_sampled_sign_off(session, factory, centre):
    """Agreeing stores a review of the sign-off, links it to the item, audits it and counts it in the report."""
    item = summative_item(session, factory, centre["iqa"], centre["c"], centre["a"])
    quality.review(session, factory.actor(centre["iqa"]), item.id, "agree", "",
                   "Each decision names what Cara did; feedback on her evidence says what to develop next.")
    session.commit()
    signoff = session.exec(select(UnitSignOff)).one()
    assert reviews(session) == [(None, signoff.id, "agree")]
    assert session.get(SampleItem, item.id).review_id == session.exec(select(IqaReview.id)).one()
    entry = session.exec(select(AuditEntry).where(AuditEntry.action == "iqa.reviewed")).one()
    assert entry.candidate_id == centre["c"].id
    assert {k: entry.details[k] for k in ("signoff", "unit", "verdict")} == {
        "signoff": str(signoff.id), "unit": "002", "verdict": "agree"}
    assert entry.details["practice_feedback"].startswith("Each decision names what Cara did")
    rep = quality.report(session, centre["iqa"])
    assert rep.by_assessor == {"Ann Assessor": {"agree": 1}}
    assert rep.by_method == {quality.SIGN_OFF_METHOD: {"agree": 1}}
    assert rep.sampled == rep.reviewed == 1


def test_disagreeing_with_a_sign_off_needs_reasons(session, factory, centre):
    """A disagreement without reasons of ten characters or more is refused and nothing is stored."""
    item = summative_item(session, factory, centre["iqa"], centre["c"], centre["a"])
    with pytest.raises(InvalidInput, match="reasons for disagreeing") as refused:
        quality.review(session, factory.actor(centre["iqa"]), item.id, "disagree", "Too thin")
    assert refused.value.field == "reasons"
    session.rollback()
    with pytest.raises(InvalidInput, match="Keep the feedback on practice to at most 5,000 characters"):
        quality.review(session, factory.actor(centre["iqa"]), item.id, "agree", "", "x" * 5001)
    session.rollback()
    assert reviews(session) == [] and session.get(SampleItem, item.id).review_id is None


def test_disagreement_with_a_sign_off_raises_an_action_the_assessor_can_answer_by_reopening(session, factory, centre):
    """The action goes to the assessor who signed off; answering it with reopen reopens the unit; the assessor now
    counts as disagreed with in this cycle's interim sampling."""
    item = summative_item(session, factory, centre["iqa"], centre["c"], centre["a"])
    quality.review(session, factory.actor(centre["iqa"]), item.id, "disagree",
                   "Criterion 4.3 rests on an observation that does not show the review meeting.", "",
                   "Observe a review meeting for 4.3.", factory.today + timedelta(days=10))
    session.commit()
    action = session.exec(select(IqaAction)).one()
    assert (action.assessor_id, action.candidate_id, action.item_id) == (centre["a"].id, centre["c"].id, item.id)
    interim = strategy(session, factory, centre["iqa"])
    assert {i.disagreed for i in quality.population(session, interim).items} == {True}
    quality.respond(session, factory.actor(centre["a"]), action.id, "Booked an observation of the next review.",
                    reopen=True)
    session.commit()
    assert session.exec(select(UnitSignOff)).one().reopened_at is not None
    with pytest.raises(InvalidInput, match="reopened after this sign-off"):
        assessment.iqa_review_sign_off(session, factory.actor(centre["other"]), item.signoff_id, "agree", "")


@pytest.fixture
def dual(session, factory, centre):
    """Dee, an assessor who is also an IQA of Dan, whose assessor Ann judged all 20 criteria on one observation."""
    dee = factory.assessor(name="Dee Dual", extra_roles=(Role.IQA,))
    dan = factory.candidate(name="Dan Candidate", assessors=(centre["a"], dee), iqas=(dee, centre["other"]))
    observation = factory.all_met(centre["a"], dan)
    return dee, dan, observation


@pytest.mark.parametrize("part, message", [
    ("signed it off", "Dee Dual signed this unit off, so cannot quality assure it"),
    ("judged a criterion", "Dee Dual made assessment decisions this unit sign-off rests on"),
    ("recorded evidence", "Dee Dual recorded evidence this unit sign-off rests on"),
])
def test_an_iqa_with_a_part_in_the_sign_off_cannot_review_it(session, factory, centre, dual, part, message):
    """An IQA who signed the unit off, judged one of its criteria or recorded evidence under it is refused with the
    rule's message, is never offered it by sampling, and nothing is stored."""
    dee, dan, observation = dual
    signer = dee if part == "signed it off" else centre["a"]
    if part == "judged a criterion":
        assessment.decide(session, factory.actor(dee), dan.id, "002", "2.1", "met", [observation.id])
    if part == "recorded evidence":
        own = factory.accepted(centre["a"], dan, by=dee, criteria=[{"code": "4.3", "note": "Led the review"}])
        assessment.decide(session, factory.actor(centre["a"]), dan.id, "002", "4.3", "met",
                          [observation.id, own.id])
    assessment.sign_off(session, factory.actor(signer), dan.id, "002", declaration_signed=True)
    session.commit()
    signoff = session.exec(select(UnitSignOff).where(UnitSignOff.candidate_id == dan.id)).one()
    with pytest.raises(RuleViolation) as refused:
        assessment.iqa_review_sign_off(session, factory.actor(dee), signoff.id, "agree", "")
    assert refused.value.code == "iqa_own_assessment" and message in refused.value.message
    session.rollback()
    assert reviews(session) == []
    s = strategy(session, factory, dee, kind="summative", base_rate=100)
    pop = quality.population(session, s)
    assert pop.items == [] and [e.item.id for e in pop.excluded] == [str(signoff.id)]
    assert pop.excluded[0].others == ("Olu Other",)
    # Olu had no part: the same sign-off is his to review.
    assessment.iqa_review_sign_off(session, factory.actor(centre["other"]), signoff.id, "agree", "")
    assert reviews(session) == [(None, signoff.id, "agree")]


def test_forged_and_unknown_sign_off_ids_are_not_found(session, factory, centre):
    """A malformed or unknown id, or a decision's id given as a sign-off's, is 'not found'; an assessor is refused."""
    item = summative_item(session, factory, centre["iqa"], centre["c"], centre["a"])
    decision = session.exec(select(CriterionDecision)).first()
    for bad in ("not-an-id", "0190b6a4-1a2b-7c3d-8e4f-5a6b7c8d9e0f", decision.id):
        with pytest.raises(NotFound):
            assessment.iqa_review_sign_off(session, factory.actor(centre["iqa"]), bad, "agree", "")
        with pytest.raises(NotFound):
            quality.review(session, factory.actor(centre["iqa"]), bad, "agree", "")
    with pytest.raises(NotFound):  # another IQA's sampled item
        quality.review(session, factory.actor(centre["other"]), item.id, "agree", "")
    with pytest.raises(NotPermitted):
        assessment.iqa_review_sign_off(session, factory.actor(centre["a"]), item.signoff_id, "agree", "")
    assert reviews(session) == []


def test_sign_off_detail_shows_every_decision_with_its_evidence(session, factory, centre):
    """The review page's data: the unit, declaration, who signed off, and all 20 decisions with their evidence."""
    item = summative_item(session, factory, centre["iqa"], centre["c"], centre["a"])
    detail = quality.item_detail(session, item)
    assert (detail.candidate, detail.assessor, detail.unit) == ("Cara Candidate", "Ann Assessor", "002")
    assert detail.declaration == assessment.SIGNOFF_DECLARATION and detail.review is None
    assert [d.criterion for d, _ in detail.decisions][:3] == ["1.1", "1.2", "1.3"] and len(detail.decisions) == 20
    assert {(d.outcome, d.assessor) for d, _ in detail.decisions} == {("met", "Ann Assessor")}
    assert {len(rows) for _, rows in detail.decisions} == {1}
    _, title, method, setting, status, _ = detail.decisions[0][1][0]
    assert (method, setting, status) == ("observation", "long_term_care", "accepted") and title
