"""The handbook's rules through the services on the real database: refusals write nothing, acceptances write exactly."""
from datetime import date, timedelta

import pytest
from sqlmodel import func, select

from support.factories import TODAY
from tracker.errors import Refusal
from tracker.models import (
    AssignmentResult,
    Attachment,
    AuditEntry,
    Candidate,
    CandidateAssignment,
    CriterionDecision,
    DecisionEvidence,
    Evidence,
    EvidenceCriterion,
    EvidenceReview,
    EvidenceVersion,
    ExpertWitnessApproval,
    IqaReview,
    Role,
    RoleGrant,
    Signature,
    UnitSignOff,
    User,
)
from tracker.services import assessment, evidence, people

EVIDENCE = (Evidence, EvidenceVersion, EvidenceCriterion, Signature)
JUDGEMENT = (EvidenceReview, CriterionDecision, DecisionEvidence, UnitSignOff)
SIXTEENTH_BIRTHDAY = TODAY.replace(year=TODAY.year - 16)  # a valid day even on 29 February: 16 is a leap cycle


# --- Helpers ---------------------------------------------------------------------------------------------


def counts(session, *models) -> dict[str, int]:
    """Count the rows of each table, and of the audit log."""
    session.flush()
    return {m.__name__: session.exec(select(func.count()).select_from(m)).one() for m in (*models, AuditEntry)}


def refused(session, models, call, code: str, field: str | None = ...) -> Refusal:
    """Run a call that must be refused with a code, and check it wrote nothing to the tables or the audit log."""
    before = counts(session, *models)
    with pytest.raises(Refusal) as caught:
        call()
    assert caught.value.code == code, caught.value.message
    if field is not ...:
        assert caught.value.field == field
    assert counts(session, *models) == before
    return caught.value


def mark(session) -> int:
    """Return the newest audit entry's id."""
    session.flush()
    return session.exec(select(func.max(AuditEntry.id))).one() or 0


def actions_since(session, since: int) -> list[str]:
    """Return the audit actions written after a mark, in order."""
    session.flush()
    return list(session.exec(select(AuditEntry.action).where(AuditEntry.id > since).order_by(AuditEntry.id)))


def user_of(session, candidate: Candidate) -> User:
    """Return the candidate's account."""
    return session.get(User, candidate.user_id)


def content(factory, candidate, method: str, **overrides) -> dict:
    """Return content input (no capture-only fields) for revising or editing evidence."""
    data = factory.evidence_data(candidate, method, **overrides)
    for key in ("candidate_id", "unit", "method", "submit", "signatures"):
        data.pop(key, None)
    return data


ALL = [f"{o}.{c}" for o, n in ((1, 3), (2, 4), (3, 4), (4, 4), (5, 2), (6, 3)) for c in range(1, n + 1)]


# --- Capture: methods, dates, settings -------------------------------------------------------------------


@pytest.mark.parametrize(("overrides", "code", "field"), [
    pytest.param({"method": "rpl"}, "rpl_not_allowed", "method", id="rpl"),
    pytest.param({"method": "prior_certificate"}, "rpl_not_allowed", "method", id="prior-certificate"),
    pytest.param({"activity_date": TODAY - timedelta(days=366)}, "rpl_not_allowed", "activity_date",
                 id="day-before-registration"),
    pytest.param({"activity_date": TODAY + timedelta(days=1)}, "future_activity_date", "activity_date",
                 id="tomorrow"),
    pytest.param({"simulated": True}, "simulation_not_allowed", "setting", id="simulated"),
    pytest.param({"setting": "other"}, "simulation_not_allowed", "setting_detail", id="other-setting-unnamed"),
    pytest.param({"setting": "other", "setting_detail": "Role play in the classroom"}, "simulation_not_allowed",
                 "setting", id="role-play"),
    pytest.param({"setting": None}, "simulation_not_allowed", "setting", id="observation-without-setting"),
    pytest.param({"unit": "001", "method": "work_product"}, "method_not_allowed", "method", id="work-product-001"),
    pytest.param({"unit": "001"}, "method_not_allowed", "method", id="observation-001"),
    pytest.param({"method": "assignment"}, "method_not_allowed", "method", id="assignment-002"),
])
def test_capture_refused_by_rule(backend, session, factory, overrides, code, field):
    """Evidence breaking a handbook rule is refused with the rule's code, and nothing is written."""
    assessor = factory.assessor()
    candidate = factory.candidate(assessors=(assessor,))
    overrides = dict(overrides)
    data = factory.evidence_data(candidate, overrides.pop("method", "observation"), **overrides)
    refused(session, EVIDENCE, lambda: evidence.capture(session, factory.actor(assessor), data), code, field)


def test_simulated_work_product_refused(backend, session, factory):
    """A work product marked as simulated is refused even though work products need no setting."""
    assessor = factory.assessor()
    candidate = factory.candidate(assessors=(assessor,))
    data = factory.evidence_data(candidate, "work_product", setting=None, simulated=True)
    refused(session, EVIDENCE, lambda: evidence.capture(session, factory.actor(user_of(session, candidate)), data),
            "simulation_not_allowed", "setting")


@pytest.mark.parametrize("overrides", [
    pytest.param({"activity_date": TODAY - timedelta(days=365)}, id="on-registration-day"),
    pytest.param({"activity_date": TODAY}, id="today"),
    pytest.param({"setting": "other", "setting_detail": "Supported living house"}, id="other-named-setting"),
])
def test_capture_accepted_writes_one_evidence_and_one_audit_entry(backend, session, factory, overrides):
    """Evidence within the rules is stored as one evidence, one version, its criteria, and one audit entry."""
    assessor = factory.assessor()
    candidate = factory.candidate(assessors=(assessor,))
    before, since = counts(session, *EVIDENCE), mark(session)
    item = factory.capture(assessor, candidate, "observation", **overrides)
    after = counts(session, *EVIDENCE)
    assert {k: after[k] - before[k] for k in after} == {"Evidence": 1, "EvidenceVersion": 1, "EvidenceCriterion": 1,
                                                          "Signature": 0, "AuditEntry": 1}
    assert actions_since(session, since) == ["evidence.captured"]
    assert (item.status, item.method) == ("submitted", "observation")


# --- Observers -----------------------------------------------------------------------------------------------


def _plain_witness(factory):
    w = factory.user(Role.WITNESS)
    return w, factory.candidate(assessors=(factory.assessor(),), witnesses=(w,))


def _avra_assessor(factory):
    a = factory.assessor(qualification="QCF_L3_AVRA")
    return a, factory.candidate(assessors=(a,))


def _knowledgeable_assessor(factory):
    a = factory.assessor(competence="knowledgeable")
    return a, factory.candidate(assessors=(a,))


def _unapproved_expert_witness(factory):
    e = factory.expert_witness(approved=False)
    return e, factory.candidate(assessors=(factory.assessor(),), expert_witnesses=(e,))


def _withdrawn_expert_witness(factory):
    e = factory.expert_witness()
    approval = factory.session.exec(select(ExpertWitnessApproval).where(ExpertWitnessApproval.user_id == e.id)).one()
    people.withdraw(factory.session, factory.as_admin, "expert_witness_approval", approval.id,
                    factory.today - timedelta(days=30), "Left the hospice")
    return e, factory.candidate(assessors=(factory.assessor(),), expert_witnesses=(e,))


def _the_candidate(factory):
    candidate = factory.candidate(assessors=(factory.assessor(),))
    return user_of(factory.session, candidate), candidate


def _approved_expert_witness(factory):
    e = factory.expert_witness()
    return e, factory.candidate(assessors=(factory.assessor(),), expert_witnesses=(e,))


def _witness_and_expert_witness(factory):
    e = factory.user(Role.WITNESS)
    people.approve_expert_witness(factory.session, factory.as_admin, {
        "user_id": e.id, "working_knowledge": "Trained in person-centred thinking tools",
        "occupational_competence": "Registered manager", "assessment_qualification": "D32/D33",
        "approved_on": factory.today - timedelta(days=100)})
    return e, factory.candidate(assessors=(factory.assessor(),), witnesses=(e,), expert_witnesses=(e,))


def _eligible_assessor(factory):
    a = factory.assessor()
    return a, factory.candidate(assessors=(a,))


@pytest.mark.parametrize(("setup", "code", "phrase"), [
    pytest.param(_plain_witness, "observer_not_eligible", "record it as witness testimony instead", id="witness"),
    pytest.param(_avra_assessor, "observer_not_eligible", "not eligible to assess Unit 002", id="avra-assessor"),
    pytest.param(_knowledgeable_assessor, "observer_not_eligible", "occupationally competent",
                 id="knowledgeable-assessor"),
    pytest.param(_unapproved_expert_witness, "expert_witness_not_eligible", "not an approved expert witness",
                 id="unapproved-expert-witness"),
    pytest.param(_withdrawn_expert_witness, "expert_witness_not_eligible", "not an approved expert witness",
                 id="expert-witness-approval-withdrawn"),
    pytest.param(_the_candidate, "observer_not_eligible", "is the candidate", id="candidate-own-observation"),
])
def test_observation_by_ineligible_observer_refused(backend, session, factory, setup, code, phrase):
    """Only an eligible assessor or an approved expert witness can record an observation."""
    person, candidate = setup(factory)
    data = factory.evidence_data(candidate, "observation")
    failure = refused(session, EVIDENCE, lambda: evidence.capture(session, factory.actor(person), data), code,
                      "observer")
    assert phrase in failure.message


@pytest.mark.parametrize("setup", [
    pytest.param(_eligible_assessor, id="eligible-assessor"),
    pytest.param(_approved_expert_witness, id="approved-expert-witness"),
    pytest.param(_witness_and_expert_witness, id="witness-who-is-also-approved-expert-witness"),
])
def test_observation_by_eligible_observer_accepted(backend, session, factory, setup):
    """An eligible assessor or approved expert witness records an observation, audited once."""
    person, candidate = setup(factory)
    since = mark(session)
    item = factory.capture(person, candidate, "observation")
    assert (item.method, item.created_by_id) == ("observation", person.id)
    assert actions_since(session, since) == ["evidence.captured"]


def test_avra_assessor_can_be_assigned_for_unit_001_but_not_judge_unit_002(backend, session, factory):
    """An assessor eligible only for Unit 001 marks its assignment but cannot accept Unit 002 evidence."""
    avra, candidate = _avra_assessor(factory)
    since = mark(session)
    assessment.record_assignment_result(session, factory.actor(avra), candidate.id, "001", "pass")
    assert actions_since(session, since) == ["assignment.marked"]
    item = factory.capture(user_of(session, candidate), candidate, "work_product")
    failure = refused(session, (*JUDGEMENT, Evidence), lambda: evidence.review(
        session, factory.actor(avra), item.id, "accepted", ""), "assessor_not_eligible", "assessor")
    assert "holds none of the qualifications" in failure.message
    assert session.get(Evidence, item.id).status == "submitted"


@pytest.mark.parametrize("action", ["decide", "sign_off"])
def test_ineligible_assessor_cannot_judge_or_sign_off(backend, session, factory, action):
    """An assessor not eligible for Unit 002 cannot judge criteria or sign the unit off."""
    avra, candidate = _avra_assessor(factory)
    item = factory.capture(user_of(session, candidate), candidate, "work_product")
    actor = factory.actor(avra)
    call = {"decide": lambda: assessment.decide(session, actor, candidate.id, "002", "2.1", "not_met", [item.id]),
            "sign_off": lambda: assessment.sign_off(session, actor, candidate.id, "002", True)}[action]
    refused(session, JUDGEMENT, call, "assessor_not_eligible", "assessor")


def test_assignment_result_refused_for_portfolio_unit(backend, session, factory):
    """Unit 002 is assessed by portfolio: an assignment result for it is refused."""
    assessor = factory.assessor()
    candidate = factory.candidate(assessors=(assessor,))
    refused(session, (AssignmentResult,), lambda: assessment.record_assignment_result(
        session, factory.actor(assessor), candidate.id, "002", "pass"), "method_not_allowed")


# --- Expert witness approval ----------------------------------------------------------------------------------


FACTS = {"working_knowledge": "Trained in person-centred thinking tools", "occupational_competence": "Hospice nurse",
         "evaluating_role": "Clinical lead who appraises staff practice"}


@pytest.mark.parametrize(("missing", "field"), [
    ({"working_knowledge": ""}, "working_knowledge"),
    ({"occupational_competence": "  "}, "occupational_competence"),
    ({"evaluating_role": None}, "assessment_qualification"),
])
def test_expert_witness_approval_refused_without_a_condition(backend, session, factory, missing, field):
    """An expert witness missing any of the three handbook conditions is not approved, and gains no role."""
    person = factory.user()
    data = {"user_id": person.id, "approved_on": TODAY} | FACTS | missing
    refused(session, (ExpertWitnessApproval, RoleGrant), lambda: people.approve_expert_witness(
        session, factory.as_admin, data), "expert_witness_not_eligible", field)
    assert Role.EXPERT_WITNESS not in person.role_names


def test_expert_witness_approval_accepted(backend, session, factory):
    """With all three conditions recorded the approval is stored, the role granted, and both audited."""
    person = factory.user()
    since = mark(session)
    people.approve_expert_witness(session, factory.as_admin, {"user_id": person.id, "approved_on": TODAY} | FACTS)
    assert counts(session, ExpertWitnessApproval)["ExpertWitnessApproval"] == 1
    assert actions_since(session, since) == ["role.granted", "expert_witness.approved"]


# --- Witness testimony ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("overrides", "field"), [
    ({"witness_name": None}, "witness_name"),
    ({"witness_contact": "  "}, "witness_contact"),
    ({"witness_relationship": None, "witness_role": None}, "witness_role"),
    ({"signatures": []}, "witness_signature"),
    ({"witness_related": True}, "witness_related"),
])
def test_witness_testimony_refused_without_details_or_signature(backend, session, factory, overrides, field):
    """Testimony must name, describe and be signed by an unrelated witness."""
    witness = factory.user(Role.WITNESS)
    candidate = factory.candidate(assessors=(factory.assessor(),), witnesses=(witness,))
    data = factory.evidence_data(candidate, "witness_testimony", **overrides)
    failure = refused(session, EVIDENCE, lambda: evidence.capture(session, factory.actor(witness), data),
                      "witness_details_missing", field)
    assert failure.message


def test_witness_testimony_accepted_with_details_and_signature(backend, session, factory):
    """Complete, signed testimony is stored with the witness's signature bound to its content."""
    witness = factory.user(Role.WITNESS)
    candidate = factory.candidate(assessors=(factory.assessor(),), witnesses=(witness,))
    since = mark(session)
    item = factory.capture(witness, candidate, "witness_testimony")
    version = evidence.current_version(session, item)
    assert [(s.kind, s.signer_name, s.content_hash) for s in version.signatures] == [
        ("witness", "Sam Patel", version.content_hash)]
    assert actions_since(session, since) == ["evidence.captured", "evidence.signed"]


def test_unsigned_testimony_can_be_kept_as_a_draft_but_not_submitted(backend, session, factory):
    """An unsigned draft is kept; submitting it is refused until the witness signs."""
    witness = factory.user(Role.WITNESS)
    candidate = factory.candidate(assessors=(factory.assessor(),), witnesses=(witness,))
    item = factory.capture(witness, candidate, "witness_testimony", signatures=[], submit=False)
    refused(session, EVIDENCE, lambda: evidence.submit(session, factory.actor(witness), item.id),
            "witness_details_missing", "witness_signature")
    assert session.get(Evidence, item.id).status == "draft"


# --- IQA independence ------------------------------------------------------------------------------------------


def test_iqa_cannot_review_own_decision(backend, session, factory):
    """A person who is both assessor and IQA cannot quality assure a decision they made."""
    both = factory.assessor(extra_roles=(Role.IQA,), name="Bo Both")
    candidate = factory.candidate(assessors=(both,), iqas=(both,))
    item = factory.accepted(both, candidate)
    decision = assessment.decide(session, factory.actor(both), candidate.id, "002", "2.1", "met", [item.id])
    failure = refused(session, (IqaReview,), lambda: assessment.iqa_review(
        session, factory.actor(both), decision.id, "agree", ""), "iqa_own_assessment", "iqa")
    assert "Bo Both made this assessment decision" in failure.message


def test_iqa_cannot_review_decision_on_evidence_they_recorded(backend, session, factory):
    """An IQA cannot quality assure a decision resting on evidence they recorded as assessor."""
    both = factory.assessor(extra_roles=(Role.IQA,), name="Bo Both")
    other = factory.assessor()
    candidate = factory.candidate(assessors=(both, other), iqas=(both,))
    item = factory.accepted(other, candidate, by=both)
    decision = assessment.decide(session, factory.actor(other), candidate.id, "002", "2.1", "met", [item.id])
    failure = refused(session, (IqaReview,), lambda: assessment.iqa_review(
        session, factory.actor(both), decision.id, "agree", ""), "iqa_own_assessment", "iqa")
    assert "recorded evidence this decision rests on" in failure.message


def test_independent_iqa_review_accepted(backend, session, factory):
    """An IQA with no part in the decision reviews it: one review row and one audit entry."""
    assessor, iqa = factory.assessor(), factory.user(Role.IQA)
    candidate = factory.candidate(assessors=(assessor,), iqas=(iqa,))
    item = factory.accepted(assessor, candidate)
    decision = assessment.decide(session, factory.actor(assessor), candidate.id, "002", "2.1", "met", [item.id])
    since = mark(session)
    assessment.iqa_review(session, factory.actor(iqa), decision.id, "agree", "")
    assert counts(session, IqaReview)["IqaReview"] == 1
    assert actions_since(session, since) == ["iqa.reviewed"]


# --- Registration ------------------------------------------------------------------------------------------------


def _registration(factory, person, **overrides) -> dict:
    return {"user_id": person.id, "qualification": "3085-02", "registration_number": "CG999001",
            "date_of_birth": SIXTEENTH_BIRTHDAY, "registration_date": TODAY, "workplace": "Meadow View",
            "work_setting": "long_term_care"} | overrides


def test_under_16_candidate_refused(backend, session, factory):
    """A candidate who would be 15 on the registration date is not registered and gains no role."""
    person = factory.user()
    data = _registration(factory, person, date_of_birth=SIXTEENTH_BIRTHDAY + timedelta(days=1))
    failure = refused(session, (Candidate, CandidateAssignment, RoleGrant), lambda: people.register_candidate(
        session, factory.as_admin, data), "candidate_under_16", "date_of_birth")
    assert f"would be 15 on the registration date {TODAY:%-d %B %Y}" in failure.message


def test_candidate_16_on_registration_day_registered(backend, session, factory):
    """A candidate turning 16 on the registration date is registered, with the candidate role, audited."""
    person = factory.user()
    since = mark(session)
    candidate = people.register_candidate(session, factory.as_admin, _registration(factory, person))
    assert candidate.registration_number == "CG999001"
    assert actions_since(session, since) == ["role.granted", "candidate.registered"]


# --- Signed content -----------------------------------------------------------------------------------------------


def test_signed_draft_cannot_change_in_place_and_is_revised_as_a_new_version(backend, session, factory):
    """Editing signed content is refused; revising makes version 2 and version 1 keeps its signature."""
    candidate = factory.candidate(assessors=(factory.assessor(),))
    me = user_of(session, candidate)
    item = factory.capture(me, candidate, "work_product", submit=False, signatures=[{"kind": "authenticity"}])
    v1 = evidence.current_version(session, item)
    original = v1.narrative
    changed = content(factory, candidate, "work_product", title=v1.title, narrative="Changed after signing.")
    failure = refused(session, (*EVIDENCE, Attachment), lambda: evidence.update_draft(
        session, factory.actor(me), item.id, changed), "signed_content_changed")
    assert "Save your changes as a new version" in failure.message
    session.refresh(v1)
    assert v1.narrative == original

    since = mark(session)
    evidence.revise(session, factory.actor(me), item.id, changed)
    assert actions_since(session, since) == ["evidence.revised"]
    session.refresh(item)
    v2 = evidence.current_version(session, item)
    session.refresh(v1, ["signatures"])
    assert (item.current_version, v2.number, v2.replaces_id, v2.narrative) == (2, 2, v1.id, "Changed after signing.")
    assert v2.signatures == []
    assert (v1.narrative, [s.content_hash for s in v1.signatures]) == (original, [v1.content_hash])
    assert v1.content_hash != v2.content_hash


def test_signed_draft_saved_unchanged_is_accepted(backend, session, factory):
    """Saving a signed draft with exactly the signed content changes nothing that was signed."""
    candidate = factory.candidate(assessors=(factory.assessor(),))
    me = user_of(session, candidate)
    attachments = [{"sha256": factory.blob().sha256, "filename": "profile.pdf"}]
    item = factory.capture(me, candidate, "work_product", submit=False, signatures=[{"kind": "authenticity"}],
                           title="My profile", attachments=attachments)
    same = content(factory, candidate, "work_product", title="My profile", attachments=attachments)
    since = mark(session)
    evidence.update_draft(session, factory.actor(me), item.id, same)
    version = evidence.current_version(session, item)
    assert [s.content_hash for s in version.signatures] == [version.content_hash]
    assert actions_since(session, since) == ["evidence.edited"]


# --- Sign-off and the lock ------------------------------------------------------------------------------------------


def test_sign_off_refused_with_only_witness_testimony(backend, session, factory):
    """Testimony covering every criterion, all met, is still not enough: Unit 002 needs an observation."""
    assessor = factory.assessor()
    candidate = factory.candidate(assessors=(assessor,))
    item = factory.accepted(assessor, candidate, "witness_testimony", criteria=[{"code": c} for c in ALL])
    for code in ALL:
        assessment.decide(session, factory.actor(assessor), candidate.id, "002", code, "met", [item.id])
    failure = refused(session, (UnitSignOff,), lambda: assessment.sign_off(
        session, factory.actor(assessor), candidate.id, "002", True), "observation_required")
    assert "counts as witness testimony, not as an observation" in failure.message


def test_sign_off_refused_when_criteria_not_met(backend, session, factory):
    """An observation with one criterion met leaves 19 unmet, and sign-off is refused naming them."""
    assessor = factory.assessor()
    candidate = factory.candidate(assessors=(assessor,))
    item = factory.accepted(assessor, candidate)
    assessment.decide(session, factory.actor(assessor), candidate.id, "002", "2.1", "met", [item.id])
    failure = refused(session, (UnitSignOff,), lambda: assessment.sign_off(
        session, factory.actor(assessor), candidate.id, "002", True), "criteria_not_met")
    assert "19 of 20 assessment criteria are not yet met" in failure.message


def test_sign_off_refused_when_a_declaration_is_missing(backend, session, factory):
    """Accepted candidate work without the declaration of authenticity blocks sign-off."""
    assessor = factory.assessor()
    candidate = factory.candidate(assessors=(assessor,))
    factory.all_met(assessor, candidate)
    item = factory.capture(user_of(session, candidate), candidate, "work_product", title="My one-page profile")
    evidence.review(session, factory.actor(assessor), item.id, "accepted", "")
    failure = refused(session, (UnitSignOff,), lambda: assessment.sign_off(
        session, factory.actor(assessor), candidate.id, "002", True), "declaration_missing")
    assert "'My one-page profile'" in failure.message


def test_sign_off_refused_without_the_assessor_declaration(backend, session, factory):
    """A ready unit is not signed off until the assessor signs the RF09 declaration."""
    assessor = factory.assessor()
    candidate = factory.candidate(assessors=(assessor,))
    factory.all_met(assessor, candidate)
    refused(session, (UnitSignOff,), lambda: assessment.sign_off(
        session, factory.actor(assessor), candidate.id, "002", False), "signoff_declaration_missing", "declaration")


def test_decision_met_refused_on_evidence_not_accepted(backend, session, factory):
    """A criterion cannot be judged met on evidence still waiting for review."""
    assessor = factory.assessor()
    candidate = factory.candidate(assessors=(assessor,))
    item = factory.capture(assessor, candidate, "observation")
    refused(session, (CriterionDecision, DecisionEvidence), lambda: assessment.decide(
        session, factory.actor(assessor), candidate.id, "002", "2.1", "met", [item.id]), "criteria_not_met",
        "evidence")


@pytest.fixture
def signed_off(backend, session, factory):
    """A candidate whose Unit 002 has been signed off, with their assessor and the observation."""
    assessor = factory.assessor()
    candidate = factory.candidate(assessors=(assessor,))
    item = factory.all_met(assessor, candidate)
    pending = factory.capture(assessor, candidate, "observation", criteria=[{"code": "4.3"}], submit=False)
    assessment.sign_off(session, factory.actor(assessor), candidate.id, "002", declaration_signed=True)
    return assessor, candidate, item, pending


LOCKED_ACTIONS = {
    "review": lambda s, f, a, c, i, p: evidence.review(s, f.actor(a), i.id, "referred", "Please add more detail."),
    "decide": lambda s, f, a, c, i, p: assessment.decide(s, f.actor(a), c.id, "002", "4.3", "not_met", [i.id]),
    "capture": lambda s, f, a, c, i, p: f.capture(a, c, "observation"),
    "sign": lambda s, f, a, c, i, p: evidence.sign(s, f.actor(user_of(s, c)), i.id, {"kind": "countersignature"}),
    "submit": lambda s, f, a, c, i, p: evidence.submit(s, f.actor(a), p.id),
    "sign_off": lambda s, f, a, c, i, p: assessment.sign_off(s, f.actor(a), c.id, "002", True),
}


@pytest.mark.parametrize("action", list(LOCKED_ACTIONS))
def test_signed_off_unit_is_locked(backend, session, factory, signed_off, action):
    """After sign-off, no evidence, signature or decision of the unit changes."""
    assessor, candidate, item, pending = signed_off
    failure = refused(session, (*EVIDENCE, *JUDGEMENT), lambda: LOCKED_ACTIONS[action](
        session, factory, assessor, candidate, item, pending), "unit_locked")
    assert "Unit 002 was signed off on" in failure.message


def test_reopen_with_a_reason_unlocks_and_is_audited(backend, session, factory, signed_off):
    """An eligible assessor reopens the unit with a reason kept in the audit log; changes are then allowed."""
    assessor, candidate, item, _ = signed_off
    reason = "Criterion 4.3 was judged on the wrong observation."
    since = mark(session)
    row = assessment.reopen(session, factory.actor(assessor), candidate.id, "002", reason)
    assert (row.reopen_reason, row.reopened_by_id) == (reason, assessor.id)
    entry = session.exec(select(AuditEntry).where(AuditEntry.id > since)).one()
    assert (entry.action, entry.details["reason"]) == ("unit.reopened", reason)
    assessment.decide(session, factory.actor(assessor), candidate.id, "002", "4.3", "not_met", [item.id],
                      "Re-observe the review meeting.")
    assert actions_since(session, since) == ["unit.reopened", "decision.recorded"]


def _witness_of(session, factory, candidate):
    w = factory.user(Role.WITNESS)
    people.assign(session, factory.as_admin, candidate, w, Role.WITNESS)
    return w


@pytest.mark.parametrize(("who", "reason", "field", "phrase"), [
    ("assessor", "  ", "reason", "Give a reason"),
    ("assessor", "Mistake", "reason", "Give a reason"),
    ("witness", "Criterion 4.3 was judged on the wrong observation.", None, "cannot reopen Unit 002"),
    ("unassigned", "Criterion 4.3 was judged on the wrong observation.", None, "cannot reopen Unit 002"),
    ("candidate", "Criterion 4.3 was judged on the wrong observation.", None, "cannot reopen Unit 002"),
])
def test_reopen_refused(backend, session, factory, signed_off, who, reason, field, phrase):
    """Reopening needs a reason, from the candidate's eligible assessor or IQA; the unit stays locked."""
    assessor, candidate, _, _ = signed_off
    person = {"assessor": lambda: assessor, "witness": lambda: _witness_of(session, factory, candidate),
              "unassigned": factory.assessor, "candidate": lambda: user_of(session, candidate)}[who]()
    failure = refused(session, (UnitSignOff,), lambda: assessment.reopen(
        session, factory.actor(person), candidate.id, "002", reason), "unit_locked", field)
    assert phrase in failure.message
    assert evidence.locked_on(session, candidate.id, evidence.unit_for(session, candidate, "002").id) is not None


def test_assigned_iqa_may_reopen(backend, session, factory, signed_off):
    """The candidate's IQA may reopen a signed-off unit."""
    _, candidate, _, _ = signed_off
    iqa = factory.user(Role.IQA)
    people.assign(session, factory.as_admin, candidate, iqa, Role.IQA)
    since = mark(session)
    assessment.reopen(session, factory.actor(iqa), candidate.id, "002", "Sampling found 4.3 was not evidenced.")
    assert actions_since(session, since) == ["unit.reopened"]
    assert evidence.locked_on(session, candidate.id, evidence.unit_for(session, candidate, "002").id) is None
