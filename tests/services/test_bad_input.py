"""Bad input through the services: always a clear refusal, never a bare exception, and nothing left behind."""
import uuid
from datetime import date, timedelta

import pytest
from sqlmodel import func, select

from support.factories import TODAY
from tracker.errors import InvalidInput, NotFound, NotPermitted, Refusal
from tracker.models import (
    Attachment,
    AuditEntry,
    Candidate,
    CandidateAssignment,
    CriterionDecision,
    DecisionEvidence,
    Evidence,
    EvidenceCriterion,
    EvidenceRangeItem,
    EvidenceReview,
    EvidenceVersion,
    IqaReview,
    Role,
    RoleGrant,
    Signature,
    UnitSignOff,
    User,
)
from tracker.services import assessment, evidence, people
from tracker.specpacks.loader import range_key

EVIDENCE = (Evidence, EvidenceVersion, EvidenceCriterion, EvidenceRangeItem, Attachment, Signature)
JUDGEMENT = (EvidenceReview, CriterionDecision, DecisionEvidence, UnitSignOff, IqaReview)
PEOPLE = (User, RoleGrant, Candidate, CandidateAssignment)
DROP = object()
MISSING_BLOB = "0" * 64
UNKNOWN = uuid.UUID("5b1f0c52-7a43-4c8e-9d61-0f2a3b4c5d6e")  # well-formed, names nothing
OWN_RANGE_ITEM = range_key("Person-centred tools", "good days and bad days")  # belongs to 2.1
OTHER_RANGE_ITEM = range_key("Develop", "relationship circle")  # belongs to 6.2


def counts(session, *models) -> dict[str, int]:
    """Count the rows of each table, and of the audit log."""
    session.flush()
    return {m.__name__: session.exec(select(func.count()).select_from(m)).one() for m in (*models, AuditEntry)}


def refused(session, models, call, kind: type[Refusal], field: str | None = ...) -> Refusal:
    """Run a call that must be refused clearly, of the given kind, leaving no rows behind."""
    before = counts(session, *models)
    with pytest.raises(Refusal) as caught:
        call()
    failure = caught.value
    assert isinstance(failure, kind), (type(failure), failure.message)
    if field is not ...:
        assert failure.field == field, failure.message
    assert failure.message.strip().endswith(".")
    assert "pydantic" not in failure.message and "Traceback" not in failure.message
    assert counts(session, *models) == before
    return failure


def user_of(session, candidate: Candidate) -> User:
    """Return the candidate's account."""
    return session.get(User, candidate.user_id)


@pytest.fixture
def people_(backend, session, factory):
    """An eligible assessor and their candidate."""
    assessor = factory.assessor()
    return assessor, factory.candidate(assessors=(assessor,))


# --- Capture input --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "overrides", "field", "phrase"), [
    ("observation", {"activity_date": "last Tuesday"}, "activity_date", "Activity date should be a valid date"),
    ("observation", {"activity_date": "2026-02-30"}, "activity_date", "Activity date"),
    ("observation", {"narrative": ["Supported Mrs B", "with her plan"]}, "narrative", "Narrative should be"),
    ("observation", {"simulated": "perhaps"}, "simulated", "Simulated"),
    ("observation", {"criteria": "2.1"}, "criteria", "Criteria"),
    ("observation", {"title": DROP}, "title", "Title: Field required"),
    ("observation", {"narrative": DROP}, "narrative", "Narrative: Field required"),
    ("observation", {"method": DROP}, "method", "Method: Field required"),
    ("observation", {"candidate_id": DROP}, "candidate_id", "Candidate id: Field required"),
    ("observation", {"title": "   "}, "title", "Title"),
    ("observation", {"title": "x" * 201}, "title", "at most 200 characters"),
    ("observation", {"narrative": "x" * 50_001}, "narrative", "at most 50000 characters"),
    ("observation", {"setting_detail": "x" * 301}, "setting_detail", "at most 300 characters"),
    ("observation", {"method": "x" * 41}, "method", "at most 40 characters"),
    ("observation", {"grade": "A*"}, "grade", "Grade"),
    ("observation", {"candidate_id": "not-a-uuid"}, "candidate_id", "Candidate id"),
    ("observation", {"unit": "999"}, "unit", "Unit 999 is not part of 3085-02"),
    ("observation", {"criteria": []}, "criteria", "Map the evidence to at least one assessment criterion"),
    ("observation", {"criteria": [{"code": "9.9"}]}, "criteria", "Unit 002 has no criterion 9.9"),
    ("observation", {"criteria": [{"code": "2.1"}, {"code": "2.1", "note": "again"}]}, "criteria",
     "only once"),
    ("observation", {"range_items": [OTHER_RANGE_ITEM]}, "range_items",
     "do not belong to the mapped criteria: " + OTHER_RANGE_ITEM),
    ("observation", {"range_items": ["made-up-item"]}, "range_items", "made-up-item"),
    ("work_product", {"attachments": [{"sha256": MISSING_BLOB, "filename": "plan.pdf"}]}, "attachments",
     "has not been uploaded yet"),
    ("work_product", {"attachments": [{"sha256": "not-a-hash", "filename": "plan.pdf"}]}, "attachments.0.sha256",
     "Attachments.0.sha256"),
    ("work_product", {"attachments": []}, "attachments", "Attach the work product"),
    ("work_product", {"attachments": [], "seen_in_place": True}, "location", "Say where the original"),
])
def test_capture_refuses_bad_input(session, factory, people_, method, overrides, field, phrase):
    """Malformed, missing, oversize or unknown input is refused as invalid, naming the field, and nothing is stored."""
    assessor, candidate = people_
    data = factory.evidence_data(candidate, method) | overrides
    data = {k: v for k, v in data.items() if v is not DROP}
    failure = refused(session, EVIDENCE, lambda: evidence.capture(session, factory.actor(assessor), data),
                      InvalidInput, field)
    assert phrase in failure.message


def test_range_item_of_the_mapped_criterion_is_stored(session, factory, people_):
    """A range item that belongs to the mapped criterion is accepted and linked."""
    assessor, candidate = people_
    factory.capture(assessor, candidate, "observation", range_items=[OWN_RANGE_ITEM, OWN_RANGE_ITEM])
    assert counts(session, EvidenceRangeItem)["EvidenceRangeItem"] == 1


@pytest.mark.parametrize(("data", "kind"), [
    (None, InvalidInput),
    ("observation", InvalidInput),
    ([1, 2, 3], InvalidInput),
])
def test_capture_refuses_input_that_is_not_a_record(session, factory, people_, data, kind):
    """Input that is not a record at all is refused as invalid."""
    assessor, _ = people_
    refused(session, EVIDENCE, lambda: evidence.capture(session, factory.actor(assessor), data), kind)


def test_capture_for_an_unknown_candidate_is_not_found(session, factory, people_):
    """A well-formed but unknown candidate id is refused as not found."""
    assessor, candidate = people_
    data = factory.evidence_data(candidate, "observation", candidate_id=str(UNKNOWN))
    failure = refused(session, EVIDENCE, lambda: evidence.capture(session, factory.actor(assessor), data), NotFound)
    assert failure.message == "No such candidate."


# --- Forged and malformed ids ------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad_id", ["not-a-uuid", str(UNKNOWN), UNKNOWN, ""], ids=["malformed", "unknown-text",
                                                                                "unknown-uuid", "empty"])
@pytest.mark.parametrize("operation", ["review", "sign", "submit", "update_draft", "revise", "decide", "sign_off",
                                       "reopen", "iqa_review", "iqa_review_sign_off", "get_candidate", "get_user"])
def test_forged_ids_are_refused(backend, session, factory, operation, bad_id):
    """A malformed or unknown id for evidence, candidate, decision, sign-off or person is refused as not found."""
    actor = factory.actor(factory.user(Role.ASSESSOR, Role.IQA))
    body = {"title": "Review meeting", "activity_date": TODAY - timedelta(days=22), "setting": "long_term_care",
            "narrative": "Facilitated Mr D's review.", "criteria": [{"code": "4.3"}]}
    call = {
        "review": lambda: evidence.review(session, actor, bad_id, "accepted", ""),
        "sign": lambda: evidence.sign(session, actor, bad_id, {"kind": "observer"}),
        "submit": lambda: evidence.submit(session, actor, bad_id),
        "update_draft": lambda: evidence.update_draft(session, actor, bad_id, body),
        "revise": lambda: evidence.revise(session, actor, bad_id, body),
        "decide": lambda: assessment.decide(session, actor, bad_id, "002", "2.1", "met", []),
        "sign_off": lambda: assessment.sign_off(session, actor, bad_id, "002", True),
        "reopen": lambda: assessment.reopen(session, actor, bad_id, "002", "A reason long enough to keep."),
        "iqa_review": lambda: assessment.iqa_review(session, actor, bad_id, "agree", ""),
        "iqa_review_sign_off": lambda: assessment.iqa_review_sign_off(session, actor, bad_id, "agree", ""),
        "get_candidate": lambda: people.get_candidate(session, bad_id),
        "get_user": lambda: people.get_user(session, bad_id),
    }[operation]
    refused(session, (*EVIDENCE, *JUDGEMENT), call, NotFound)


@pytest.mark.parametrize("bad_id", ["not-a-uuid", str(UNKNOWN)])
def test_decision_on_forged_evidence_ids_is_refused(session, factory, people_, bad_id):
    """A decision naming evidence that is malformed or not this candidate's is refused as invalid."""
    assessor, candidate = people_
    refused(session, JUDGEMENT, lambda: assessment.decide(
        session, factory.actor(assessor), candidate.id, "002", "2.1", "not_met", [bad_id]), InvalidInput, "evidence")


def test_decision_on_another_candidates_evidence_is_refused(session, factory, people_):
    """Evidence of another candidate cannot support a decision about this one."""
    assessor, candidate = people_
    other = factory.candidate(assessors=(assessor,))
    item = factory.accepted(assessor, other)
    refused(session, JUDGEMENT, lambda: assessment.decide(
        session, factory.actor(assessor), candidate.id, "002", "2.1", "met", [item.id]), InvalidInput, "evidence")


def test_decision_on_evidence_not_mapped_to_the_criterion_is_refused(session, factory, people_):
    """A criterion can be judged only on evidence mapped to it."""
    assessor, candidate = people_
    item = factory.accepted(assessor, candidate)
    refused(session, JUDGEMENT, lambda: assessment.decide(
        session, factory.actor(assessor), candidate.id, "002", "4.3", "met", [item.id]), InvalidInput, "evidence")


@pytest.mark.parametrize(("criterion", "outcome", "field"), [("9.9", "met", "criterion"),
                                                             ("2.1", "excellent", "outcome")])
def test_decision_with_unknown_criterion_or_outcome_is_refused(session, factory, people_, criterion, outcome, field):
    """Only the unit's criteria can be judged, and only met or not yet met."""
    assessor, candidate = people_
    item = factory.accepted(assessor, candidate)
    refused(session, JUDGEMENT, lambda: assessment.decide(
        session, factory.actor(assessor), candidate.id, "002", criterion, outcome, [item.id]), InvalidInput, field)


@pytest.mark.parametrize(("outcome", "feedback", "field"), [("approved", "", "outcome"),
                                                            ("referred", "Redo", "feedback")])
def test_review_with_bad_outcome_or_no_feedback_is_refused(session, factory, people_, outcome, feedback, field):
    """A review is accepted or referred, and a referral says what to change."""
    assessor, candidate = people_
    item = factory.capture(assessor, candidate, "observation")
    refused(session, JUDGEMENT, lambda: evidence.review(session, factory.actor(assessor), item.id, outcome, feedback),
            InvalidInput, field)
    assert session.get(Evidence, item.id).status == "submitted"


# --- Who may do what ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("operation", ["capture", "review", "decide", "sign_off"])
def test_another_assessors_candidate_is_not_permitted(session, factory, people_, operation):
    """An eligible assessor who is not assigned to the candidate can neither record nor judge their evidence."""
    assessor, candidate = people_
    stranger = factory.assessor()
    item = factory.accepted(assessor, candidate)
    actor = factory.actor(stranger)
    call = {
        "capture": lambda: factory.capture(stranger, candidate, "observation"),
        "review": lambda: evidence.review(session, actor, item.id, "referred", "Add more detail please."),
        "decide": lambda: assessment.decide(session, actor, candidate.id, "002", "2.1", "met", [item.id]),
        "sign_off": lambda: assessment.sign_off(session, actor, candidate.id, "002", True),
    }[operation]
    refused(session, (*EVIDENCE, *JUDGEMENT), call, NotPermitted)


@pytest.mark.parametrize(("who", "method", "phrase"), [
    ("candidate", "witness_testimony", "A candidate cannot write witness testimony"),
    ("candidate", "professional_discussion", "recorded by the candidate's assessor"),
    ("candidate", "questioning", "recorded by the candidate's assessor"),
    ("witness", "work_product", "Work products are provided by the candidate"),
    ("witness", "professional_discussion", "recorded by the candidate's assessor"),
])
def test_capture_by_the_wrong_person_is_not_permitted(session, factory, people_, who, method, phrase):
    """Each method is recorded only by the people the handbook's practice allows."""
    _, candidate = people_
    person = user_of(session, candidate) if who == "candidate" else factory.user(Role.WITNESS)
    if who == "witness":
        people.assign(session, factory.as_admin, candidate, person, Role.WITNESS)
    data = factory.evidence_data(candidate, method)
    failure = refused(session, EVIDENCE, lambda: evidence.capture(session, factory.actor(person), data), NotPermitted)
    assert phrase in failure.message


@pytest.mark.parametrize(("kind", "error"), [("countersignature", NotPermitted), ("authenticity", NotPermitted),
                                             ("observer", NotPermitted), ("witness", InvalidInput)])
def test_a_candidate_cannot_sign_someone_elses_evidence(session, factory, people_, kind, error):
    """A candidate cannot countersign, declare, or sign as observer or witness on another candidate's observation."""
    assessor, candidate = people_
    other = factory.candidate(assessors=(assessor,))
    item = factory.capture(assessor, other, "observation")
    refused(session, (Signature,), lambda: evidence.sign(
        session, factory.actor(user_of(session, candidate)), item.id, {"kind": kind}), error)


def test_signature_with_unknown_kind_is_invalid(session, factory, people_):
    """A signature kind the tracker does not know is refused as invalid."""
    assessor, candidate = people_
    item = factory.capture(assessor, candidate, "observation")
    refused(session, (Signature,), lambda: evidence.sign(
        session, factory.actor(assessor), item.id, {"kind": "notary"}), InvalidInput, "kind")


@pytest.mark.parametrize(("method", "signatures", "error"), [
    ("work_product", [{"kind": "witness"}], InvalidInput),
    ("work_product", [{"kind": "countersignature"}], InvalidInput),
    ("work_product", [{"kind": "observer"}], NotPermitted),
    ("work_product", [{"kind": "authenticity", "image_sha256": MISSING_BLOB}], InvalidInput),
])
def test_capture_with_a_signature_that_is_refused_stores_nothing(session, factory, people_, method, signatures, error):
    """A capture whose signature is refused is refused whole: no evidence is left without it."""
    _, candidate = people_
    data = factory.evidence_data(candidate, method, signatures=signatures)
    refused(session, EVIDENCE, lambda: evidence.capture(session, factory.actor(user_of(session, candidate)), data),
            error)


def test_observation_signed_by_assessor_as_candidate_stores_nothing(session, factory, people_):
    """An assessor cannot sign the candidate's declaration while capturing an observation; nothing is stored."""
    assessor, candidate = people_
    data = factory.evidence_data(candidate, "observation", signatures=[{"kind": "authenticity"}])
    refused(session, EVIDENCE, lambda: evidence.capture(session, factory.actor(assessor), data), NotPermitted)


@pytest.mark.parametrize("who", ["candidate", "assessor", "stranger"])
def test_only_the_author_edits_a_draft(session, factory, people_, who):
    """A draft is changed only by the person who recorded it."""
    assessor, candidate = people_
    witness = factory.user(Role.WITNESS)
    people.assign(session, factory.as_admin, candidate, witness, Role.WITNESS)
    item = factory.capture(witness, candidate, "witness_testimony", submit=False, signatures=[])
    person = {"candidate": user_of(session, candidate), "assessor": assessor, "stranger": factory.user()}[who]
    body = {k: v for k, v in factory.evidence_data(candidate, "witness_testimony").items()
            if k not in ("candidate_id", "unit", "method", "submit", "signatures")}
    refused(session, EVIDENCE, lambda: evidence.update_draft(session, factory.actor(person), item.id, body),
            NotPermitted)


def test_candidate_cannot_review_own_evidence(session, factory, people_):
    """A candidate cannot accept their own evidence."""
    _, candidate = people_
    me = user_of(session, candidate)
    item = factory.capture(me, candidate, "work_product")
    refused(session, JUDGEMENT, lambda: evidence.review(session, factory.actor(me), item.id, "accepted", ""),
            NotPermitted)


def test_iqa_review_by_someone_without_the_iqa_role_is_not_permitted(session, factory, people_):
    """Only an IQA can record an IQA review."""
    assessor, candidate = people_
    item = factory.accepted(assessor, candidate)
    decision = assessment.decide(session, factory.actor(assessor), candidate.id, "002", "2.1", "met", [item.id])
    refused(session, JUDGEMENT, lambda: assessment.iqa_review(
        session, factory.actor(assessor), decision.id, "agree", ""), NotPermitted)


@pytest.mark.parametrize(("verdict", "reasons", "field"), [("maybe", "", "verdict"), ("disagree", "No", "reasons")])
def test_iqa_review_with_bad_verdict_is_refused(session, factory, people_, verdict, reasons, field):
    """An IQA agrees or disagrees, and gives reasons for disagreeing."""
    assessor, candidate = people_
    iqa = factory.user(Role.IQA)
    item = factory.accepted(assessor, candidate)
    decision = assessment.decide(session, factory.actor(assessor), candidate.id, "002", "2.1", "met", [item.id])
    refused(session, JUDGEMENT, lambda: assessment.iqa_review(
        session, factory.actor(iqa), decision.id, verdict, reasons), InvalidInput, field)


# --- Registration ----------------------------------------------------------------------------------------------------


def _registration(person, **overrides) -> dict:
    return {"user_id": person.id, "qualification": "3085-02", "registration_number": "CG777001",
            "date_of_birth": date(1990, 5, 17), "registration_date": TODAY - timedelta(days=83), "workplace": "Meadow View",
            "work_setting": "long_term_care"} | overrides


@pytest.mark.parametrize(("overrides", "error", "field", "phrase"), [
    ({"registration_number": "TAKEN"}, InvalidInput, "registration_number", "Registration number TAKEN is already"),
    ({"qualification": "9999-99"}, InvalidInput, "qualification", "No qualification 9999-99 is loaded"),
    ({"registration_date": TODAY + timedelta(days=1)}, InvalidInput, "registration_date", "cannot be in the future"),
    ({"work_setting": "prison"}, InvalidInput, "work_setting", "Choose the candidate's work setting"),
    ({"date_of_birth": "seventeenth of May"}, InvalidInput, "date_of_birth", "Date of birth"),
    ({"registration_number": ""}, InvalidInput, "registration_number", "Registration number"),
    ({"workplace": "x" * 301}, InvalidInput, "workplace", "at most 300 characters"),
    ({"user_id": "not-a-uuid"}, InvalidInput, "user_id", "User id"),
    ({"user_id": UNKNOWN}, NotFound, None, "No such person"),
    ({"assessor_ids": [UNKNOWN]}, NotFound, None, "No such person"),
])
def test_registration_refuses_bad_input(backend, session, factory, overrides, error, field, phrase):
    """Registration input that is malformed, unknown or already used is refused, and no candidate is created."""
    factory.candidate(registration_number="TAKEN")
    person = factory.user()
    failure = refused(session, PEOPLE, lambda: people.register_candidate(
        session, factory.as_admin, _registration(person, **overrides)), error, field)
    assert phrase in failure.message


@pytest.mark.parametrize(("staff", "key", "error", "code"), [
    ("witness", "assessor_ids", InvalidInput, "invalid_input"),
    ("witness", "iqa_ids", InvalidInput, "invalid_input"),
    ("uncredentialled assessor", "assessor_ids", Refusal, "assessor_not_eligible"),
])
def test_registration_with_wrong_staff_creates_no_candidate(backend, session, factory, staff, key, error, code):
    """Naming staff who lack the role, or an assessor eligible for no unit, registers nobody."""
    person = factory.user()
    member = factory.user(Role.WITNESS) if staff == "witness" else factory.assessor(qualification=None)
    failure = refused(session, PEOPLE, lambda: people.register_candidate(
        session, factory.as_admin, _registration(person, **{key: [member.id]})), error)
    assert failure.code == code


@pytest.mark.parametrize("role", ["boss", "candidate", "administrator"])
def test_assigning_an_unknown_or_unassignable_role_is_invalid(backend, session, factory, role):
    """Only assessors, IQAs, expert witnesses and witnesses can be attached to a candidate."""
    candidate = factory.candidate()
    refused(session, (CandidateAssignment,), lambda: people.assign(
        session, factory.as_admin, candidate, factory.admin, role), InvalidInput, "role")


def test_a_person_is_registered_only_once(backend, session, factory):
    """The same person cannot be registered as a candidate twice."""
    candidate = factory.candidate()
    refused(session, PEOPLE, lambda: people.register_candidate(
        session, factory.as_admin, _registration(user_of(session, candidate))), InvalidInput, "user_id")


def test_only_an_administrator_registers_candidates(backend, session, factory):
    """An assessor cannot register a candidate."""
    assessor, person = factory.assessor(), factory.user()
    refused(session, PEOPLE, lambda: people.register_candidate(
        session, factory.actor(assessor), _registration(person)), NotPermitted)


@pytest.mark.parametrize(("code", "field"), [("NVQ3_CARE", "qualification_code"), ("", "qualification_code")])
def test_unknown_assessor_qualification_is_refused(backend, session, factory, code, field):
    """Only the assessor qualifications the handbook lists can be recorded."""
    person = factory.user(Role.ASSESSOR)
    refused(session, (User,), lambda: people.add_assessor_qualification(session, factory.as_admin, {
        "user_id": person.id, "qualification_code": code, "verified_on": date(2026, 1, 1)}), InvalidInput, field)


# --- The same evidence sent twice ----------------------------------------------------------------------------------


def test_same_evidence_id_and_content_twice_is_stored_once(session, factory, people_):
    """A capture repeated with the same id and content returns the same evidence: one row, one audit entry."""
    assessor, candidate = people_
    data = factory.evidence_data(candidate, "observation", id=str(uuid.uuid4()))
    before = counts(session, *EVIDENCE)
    first = evidence.capture(session, factory.actor(assessor), data)
    again = evidence.capture(session, factory.actor(assessor), dict(data))
    after = counts(session, *EVIDENCE)
    assert again.id == first.id == uuid.UUID(data["id"])
    assert (after["Evidence"] - before["Evidence"], after["AuditEntry"] - before["AuditEntry"]) == (1, 1)


def test_same_evidence_id_with_different_content_is_a_conflict(session, factory, people_):
    """A capture reusing an id with different content is refused as a conflict and overwrites nothing."""
    assessor, candidate = people_
    data = factory.evidence_data(candidate, "observation", id=str(uuid.uuid4()))
    first = evidence.capture(session, factory.actor(assessor), data)
    original = evidence.current_version(session, first).narrative
    changed = data | {"narrative": "Something else entirely."}
    failure = refused(session, EVIDENCE, lambda: evidence.capture(session, factory.actor(assessor), changed), Refusal)
    assert failure.code == "conflict"
    assert "has not been overwritten" in failure.message
    assert evidence.current_version(session, first).narrative == original
