"""The demo centre: it loads through the services, and each candidate's readiness says exactly what blocks sign-off."""
import hashlib
import re
from collections import defaultdict
from datetime import timedelta

import pytest
from PIL import Image
from sqlmodel import select

from support.factories import TODAY
from tracker import demo
from tracker.audit import Actor
from tracker.errors import InvalidInput
from tracker.models import (
    AssignmentResult,
    Attachment,
    Blob,
    Candidate,
    CandidateAssignment,
    CriterionDecision,
    Evidence,
    EvidenceCriterion,
    EvidenceReview,
    EvidenceVersion,
    RoleGrant,
    Signature,
    Unit,
)
from tracker.rules import RuleViolation
from tracker.services import assessment, evidence, people
from tracker.storage import LocalStorage

ALL = ("1.1", "1.2", "1.3", "2.1", "2.2", "2.3", "2.4", "3.1", "3.2", "3.3", "3.4", "4.1", "4.2", "4.3", "4.4",
       "5.1", "5.2", "6.1", "6.2", "6.3")


@pytest.fixture
def storage(tmp_path):
    """A file store in this test's folder."""
    return LocalStorage(tmp_path / "media")


@pytest.fixture
def centre(backend, session, storage):
    """The demo centre, loaded into this test's database."""
    return demo.load_demo(session, storage, TODAY)


def _candidate(session, centre, stage: str) -> Candidate:
    return people.get_candidate(session, centre.candidates[stage])


def _readiness(session, centre, stage: str):
    candidate = _candidate(session, centre, stage)
    return assessment.readiness_for(session, candidate, evidence.unit_for(session, candidate, "002"))


def _blockers(state) -> dict:
    return {b.code: b for b in state.blockers}


def _user(session, key: str):
    return people.find_user(session, demo.STAFF[key].email)


# --- People -----------------------------------------------------------------------------------------


def test_demo_has_the_expected_people_and_roles(backend, session, centre):
    """One administrator, three assessors, two IQA accounts (one also an assessor), six candidates, two witnesses."""
    holders = defaultdict(set)
    for grant in session.exec(select(RoleGrant)):
        holders[grant.role].add(grant.user_id)
    assert len(holders["administrator"]) == 1
    assert len(holders["assessor"]) == 3
    assert len(holders["iqa"]) == 2
    assert len(holders["iqa"] & holders["assessor"]) == 1
    assert len(holders["expert_witness"]) == 1 and len(holders["witness"]) == 1
    assert len(holders["candidate"]) == 6
    assert len(session.exec(select(Candidate)).all()) == 6
    assert set(centre.candidates) == set("abcdef")


def test_assessor_eligibility_is_derived_from_the_recorded_credentials(backend, session, centre):
    """Two assessors may assess Unit 002; the third only Unit 001."""
    units = {u.code: u for u in session.exec(select(Unit).where(Unit.pack_key == "cg-3085"))}
    for key, unit_002 in (("helen", True), ("daniel", True), ("priya", False)):
        user = _user(session, key)
        creds = people.credentials(session, [user.id])[user.id]
        assert people.eligibility(creds, units["002"], TODAY).eligible is unit_002, key
        assert people.eligibility(creds, units["001"], TODAY).eligible, key


def test_every_login_signs_in_with_the_demo_password_and_has_a_hint(backend, session, centre):
    """Each listed login exists with exactly the listed roles, the shared password, and a what-to-try hint."""
    assert len(demo.DEMO_PASSWORD) >= 10 and centre.password == demo.DEMO_PASSWORD
    assert len(centre.logins) == 13 and len({login.email for login in centre.logins}) == 13
    for login in centre.logins:
        user = people.find_user(session, login.email)
        assert user is not None and user.name == login.name
        assert user.role_names == set(login.roles), login.email
        assert people.verify_password(user, demo.DEMO_PASSWORD)
        assert login.hint.strip()


def test_no_iqa_quality_assures_a_candidate_they_assess(backend, session, centre):
    """Each candidate has assessors and an IQA, and the IQA is never one of the candidate's assessors."""
    for stage in "abcdef":
        candidate = _candidate(session, centre, stage)
        assessors = {a.user_id for a in candidate_assignments(session, candidate, "assessor")}
        iqas = {a.user_id for a in candidate_assignments(session, candidate, "iqa")}
        assert assessors and len(iqas) == 1 and not assessors & iqas, stage


def candidate_assignments(session, candidate, role):
    """Return a candidate's current assignments in a role."""
    return session.exec(select(CandidateAssignment).where(CandidateAssignment.candidate_id == candidate.id,
                                                          CandidateAssignment.role == role)).all()


# --- Readiness, stage by stage -------------------------------------------------------------------------


def test_a_with_nothing_yet_needs_every_criterion_and_an_observation(backend, session, centre):
    """(a) All 20 criteria unmet, and no observation recorded yet."""
    state = _readiness(session, centre, "a")
    blockers = _blockers(state)
    assert list(blockers) == ["criteria_not_met", "observation_required"]
    assert blockers["criteria_not_met"].criteria == ALL
    assert "None has been recorded yet" in blockers["observation_required"].message


def test_b_is_ready_for_sign_off(backend, session, centre):
    """(b) Every criterion met on accepted evidence, an accepted observation: nothing blocks sign-off."""
    state = _readiness(session, centre, "b")
    assert state.ready and state.blockers == () and state.signed_off_on is None
    assert all(c.status == "met" for c in state.criteria) and len(state.criteria) == 20
    assert any(c.observed for c in state.criteria)


def test_b_evidence_uses_every_method_and_both_observers(backend, session, centre):
    """(b) Observations by the assessor and the expert witness, work products, discussion, questioning, testimony."""
    candidate = _candidate(session, centre, "b")
    items = session.exec(select(Evidence).where(Evidence.candidate_id == candidate.id)).all()
    methods = defaultdict(list)
    for item in items:
        methods[item.method].append(evidence.current_version(session, item))
    assert {k: len(v) for k, v in methods.items()} == {"observation": 3, "work_product": 3, "witness_testimony": 1,
                                                       "professional_discussion": 1, "questioning": 1}
    observers = {v.author_id for v in methods["observation"]}
    assert observers == {_user(session, "helen").id, _user(session, "joanne").id}
    in_place = [v for v in methods["work_product"] if v.seen_in_place]
    assert len(in_place) == 1 and in_place[0].location
    assert all(i.status == "accepted" for i in items)


def test_c_names_the_referred_criteria_and_says_resubmit(backend, session, centre):
    """(c) The referred work product's criteria are unmet, and their messages say to read feedback and resubmit."""
    state = _readiness(session, centre, "c")
    blockers = _blockers(state)
    assert list(blockers) == ["criteria_not_met"]
    assert {"2.2", "5.2"} <= set(blockers["criteria_not_met"].criteria)
    by_code = {c.code: c for c in state.criteria}
    for code in ("2.2", "5.2"):
        assert "referred" in by_code[code].message and "resubmit" in by_code[code].message
    assert [c.code for c in state.criteria if c.status == "met"] == ["1.3", "2.3", "4.1", "4.3", "4.4"]
    referred = session.exec(select(EvidenceReview).where(EvidenceReview.outcome == "referred")).one()
    assert len(referred.feedback) > 100


def test_d_witness_testimony_does_not_count_as_observation(backend, session, centre):
    """(d) Only witness testimony: readiness says it does not count as the required observation."""
    blockers = _blockers(_readiness(session, centre, "d"))
    assert list(blockers) == ["criteria_not_met", "observation_required"]
    message = blockers["observation_required"].message
    assert "witness testimony" in message and "not as an observation" in message
    candidate = _candidate(session, centre, "d")
    statuses = sorted((e.method, e.status) for e in session.exec(select(Evidence).where(
        Evidence.candidate_id == candidate.id)))
    assert statuses == [("witness_testimony", "accepted"), ("work_product", "accepted"),
                        ("work_product", "accepted")]


def test_e_observation_and_criteria_are_waiting_for_review(backend, session, centre):
    """(e) A submitted observation waiting for the assessor, and a draft that does not count yet."""
    state = _readiness(session, centre, "e")
    blockers = _blockers(state)
    assert list(blockers) == ["criteria_not_met", "observation_required"]
    assert "recorded but not yet accepted" in blockers["observation_required"].message
    by_code = {c.code: c for c in state.criteria}
    for code in ("3.4", "4.1"):
        assert "waiting for your assessor to review it" in by_code[code].message
    assert by_code["2.1"].status == "not_started"  # the draft is not submitted yet
    candidate = _candidate(session, centre, "e")
    assert sorted(e.status for e in session.exec(select(Evidence).where(
        Evidence.candidate_id == candidate.id))) == ["draft", "submitted"]


def test_f_is_signed_off_with_unit_001_passed(backend, session, centre):
    """(f) Unit 002 signed off and locked; the Unit 001 assignment marked as passed by a Unit 001 assessor."""
    state = _readiness(session, centre, "f")
    assert state.signed_off_on is not None and state.blockers == () and not state.ready
    candidate = _candidate(session, centre, "f")
    result = session.exec(select(AssignmentResult).where(AssignmentResult.candidate_id == candidate.id)).one()
    assert result.outcome == "pass" and result.marked_by_id == _user(session, "priya").id
    with pytest.raises(RuleViolation) as refused:
        evidence.capture(session, Actor(_user(session, "daniel"), today=TODAY), _observation(candidate))
    assert refused.value.code == "unit_locked"


# --- Rules the demo shows -------------------------------------------------------------------------------


def _observation(candidate: Candidate) -> dict:
    return {"candidate_id": candidate.id, "method": "observation", "title": "Observation",
            "activity_date": TODAY - timedelta(days=1), "setting": "reablement",
            "narrative": "Observed Mrs H planning her week with a good days and bad days conversation.",
            "criteria": [{"code": "2.1", "note": "Good days and bad days"}], "submit": True}


def test_ineligible_assessor_cannot_observe_or_accept(backend, session, centre):
    """The Unit 001-only assessor is refused an observation and an acceptance for a demo candidate."""
    priya = Actor(_user(session, "priya"), today=TODAY)
    candidate = _candidate(session, centre, "e")
    with pytest.raises(RuleViolation) as refused:
        evidence.capture(session, priya, _observation(candidate))
    assert refused.value.code == "observer_not_eligible"
    waiting = session.exec(select(Evidence).where(Evidence.candidate_id == candidate.id,
                                                  Evidence.status == "submitted")).one()
    with pytest.raises(RuleViolation) as refused:
        evidence.review(session, priya, waiting.id, "accepted", "")
    assert refused.value.code == "assessor_not_eligible"


def test_loading_twice_refuses_clearly(backend, session, centre, storage):
    """A second load is refused, saying the demo is already there."""
    assert demo.is_loaded(session)
    with pytest.raises(InvalidInput) as refused:
        demo.load_demo(session, storage, TODAY)
    assert refused.value.message == "The demo centre is already loaded."
    assert set(demo.logins(session).candidates) == set(centre.candidates)


def test_signatures_are_where_the_handbook_expects_them(backend, session, centre):
    """Observations carry observer and countersignature; testimony the witness's; candidate work their declaration."""
    for item in session.exec(select(Evidence).where(Evidence.status != "draft")):
        version = evidence.current_version(session, item)
        kinds = {s.kind for s in version.signatures}
        if item.method == "observation":
            assert {"observer", "countersignature"} <= kinds
        if item.method == "witness_testimony":
            assert "witness" in kinds and all(s.image_sha256 for s in version.signatures)
        if item.method == "work_product":
            assert "authenticity" in kinds
        assert all(s.content_hash == version.content_hash for s in version.signatures)


# --- Files and confidentiality -------------------------------------------------------------------------


def _check_pdf(data: bytes) -> None:
    assert data.startswith(b"%PDF-1.") and data.rstrip().endswith(b"%%EOF")
    start = int(re.search(rb"startxref\s+(\d+)", data).group(1))
    assert data[start:start + 4] == b"xref"
    offsets = [int(m) for m in re.findall(rb"(\d{10}) 00000 n ", data)]
    for number, offset in enumerate(offsets, 1):
        assert data[offset:].startswith(b"%d 0 obj" % number)


def test_every_attachment_is_stored_with_its_hash(backend, session, centre, storage):
    """Every attached file and signature image is on disk, and its bytes hash to the recorded sha256."""
    hashes = {a.sha256 for a in session.exec(select(Attachment))}
    hashes |= {s.image_sha256 for s in session.exec(select(Signature)) if s.image_sha256}
    assert len(hashes) >= 9
    media = set()
    for sha in hashes:
        assert storage.exists(sha)
        data = storage.path(sha).read_bytes()
        blob = session.get(Blob, sha)
        assert hashlib.sha256(data).hexdigest() == sha and blob.size == len(data)
        media.add(blob.media_type)
        if blob.media_type == "application/pdf":
            _check_pdf(data)
        else:
            with Image.open(storage.path(sha)) as image:
                image.verify()
    assert media == {"application/pdf", "image/png"}


NAMED = re.compile(r"\b(?:Mrs|Mr|Ms|Miss)\.? +[A-Z][a-z]+")


def test_service_users_appear_only_by_initials(backend, session, centre):
    """No title followed by a surname in any narrative, title, location, note or feedback."""
    texts = [t for v in session.exec(select(EvidenceVersion)) for t in (v.title, v.narrative, v.location or "")]
    texts += [c.note for c in session.exec(select(EvidenceCriterion))]
    texts += [r.feedback for r in session.exec(select(EvidenceReview))]
    texts += [d.note for d in session.exec(select(CriterionDecision))]
    assert len(texts) > 50
    for text in texts:
        assert not NAMED.search(text), text
    assert sum("Mr K" in t for t in texts) > 3


def test_evidence_is_dated_between_registration_and_today(backend, session, centre):
    """No demo evidence is prior learning or in the future; each narrative is two to five sentences."""
    for item in session.exec(select(Evidence)):
        version = evidence.current_version(session, item)
        candidate = session.get(Candidate, item.candidate_id)
        assert candidate.registration_date <= version.activity_date <= TODAY
        assert 2 <= len(re.findall(r"[.!?](?:\s|$)", version.narrative)) <= 5, version.title


def test_demo_iqa_has_a_sample_with_a_disagreement_and_an_open_action(backend, session, centre):
    """Daniel's strategy has a drawn sample, one disagreement, an open action for Helen; Margaret is lead IQA."""
    from tracker.models import IqaAction, IqaReview, SampleItem, SamplingStrategy
    from tracker.services import quality

    daniel, helen = _user(session, "daniel"), _user(session, "helen")
    strategy = session.exec(select(SamplingStrategy).where(SamplingStrategy.iqa_id == daniel.id)).one()
    assert session.exec(select(SampleItem)).all()
    assert [r.verdict for r in session.exec(select(IqaReview)) if r.verdict == "disagree"] == ["disagree"]
    assert [(a.assessor_id, a.status) for a in session.exec(select(IqaAction))] == [(helen.id, "open")]
    assert quality.is_lead(session, _user(session, "margaret").id)
    assert quality.population(session, strategy).items


def test_demo_lead_iqa_agreed_with_the_signed_off_unit(backend, session, centre):
    """Margaret's summative sample holds Leah Campbell's sign-off, reviewed with agreement and practice feedback."""
    from tracker.models import IqaReview, SampleItem, UnitSignOff

    margaret = _user(session, "margaret")
    signoff = session.exec(select(UnitSignOff).where(UnitSignOff.candidate_id == centre.candidates["f"])).one()
    item = session.exec(select(SampleItem).where(SampleItem.signoff_id == signoff.id)).one()
    review = session.get(IqaReview, item.review_id)
    assert (review.iqa_id, review.signoff_id, review.verdict) == (margaret.id, signoff.id, "agree")
    assert review.practice_feedback
