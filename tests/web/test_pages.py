"""The pages as a person uses them: caseload, portfolio grid, recording, reviewing, revising, judging, signing off."""
import html
import io
import re
from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from PIL import Image
from sqlalchemy import func
from sqlmodel import select

from support.web import form_token
from tracker.models import (
    Attachment,
    Candidate,
    Criterion,
    CriterionDecision,
    Evidence,
    EvidenceCriterion,
    EvidenceVersion,
    Role,
    Signature,
    UnitSignOff,
    User,
)
from tracker.services import assessment
from tracker.services import evidence as evidence_service


@dataclass
class People:
    """An assessor, their candidate and a witness attached to the candidate."""

    assessor: User
    candidate: Candidate
    me: User  # the candidate's account
    witness: User


@pytest.fixture
def people(backend, app, session, factory) -> People:
    """Ann assesses Cara; Will is Cara's witness."""
    assessor = factory.assessor(name="Ann Assessor")
    witness = factory.user(Role.WITNESS, name="Will Witness")
    candidate = factory.candidate(name="Cara Candidate", assessors=(assessor,), witnesses=(witness,))
    session.commit()
    return People(assessor, candidate, session.get(User, candidate.user_id), witness)


@pytest.fixture
def signed_in(client, sign_in):
    """Sign a person in and return a CSRF token for their forms."""
    def do(user: User) -> str:
        assert sign_in(user).status_code == 302
        return form_token(client.get("/").get_data(as_text=True))
    return do


def count(session, model, *where) -> int:
    """Count rows as the app has committed them."""
    session.commit()
    return session.exec(select(func.count()).select_from(model).where(*where)).one()


def day(days_ago: int = 3) -> str:
    """Return a recent date as a date field sends it."""
    return (date.today() - timedelta(days=days_ago)).isoformat()


def photo_with_gps(size: tuple[int, int] = (800, 600)) -> bytes:
    """Return a JPEG carrying a camera make and a GPS position in its EXIF."""
    exif = Image.Exif()
    exif[0x010F] = "Acme Cameras"
    exif[0x8825] = {1: "N", 2: (51.0, 30.0, 12.5), 3: "W", 4: (0.0, 7.0, 39.0)}
    out = io.BytesIO()
    Image.new("RGB", size, "orange").save(out, "JPEG", exif=exif)
    return out.getvalue()


def observation_form(token: str, **changes) -> dict:
    """Return a complete observation form covering 2.1, 2.2 and 3.1, countersigned by typed name."""
    return {"csrf_token": token, "title": "Person-centred review with Mrs B", "activity_date": day(),
            "setting": "long_term_care", "narrative": "Cara supported Mrs B to lead her review.",
            "criteria": ["2.1", "2.2", "3.1"], "note-2.1": "Good days and bad days", "note-2.2": "Used her words",
            "note-3.1": "Mrs B chaired it", "countersignature_name": "Cara Candidate", "action": "submit"} | changes


def page(response) -> str:
    """Return a response's text as a person reads it (entities such as &#39; turned back into characters)."""
    return html.unescape(response.get_data(as_text=True))


# --- Caseload and grid ---------------------------------------------------------------------------------------


def test_caseload_lists_candidate_with_counts(client, session, factory, people, signed_in):
    """The caseload shows Cara with criteria met, evidence waiting and evidence referred."""
    a, c = people.assessor, people.candidate
    accepted = factory.accepted(a, c)
    assessment.decide(session, factory.actor(a), c.id, "002", "2.1", "met", [accepted.id])
    factory.capture(a, c, "observation")
    referred = factory.capture(a, c, "observation")
    evidence_service.review(session, factory.actor(a), referred.id, "referred", "Say how Mrs B chose the time.")
    session.commit()
    signed_in(a)
    text = page(client.get("/caseload/"))
    assert "Cara Candidate" in text and f"/candidates/{c.id}" in text
    assert "1 of 20 criteria met" in text
    assert "1 waiting for a decision" in text and "1 referred, awaiting resubmission" in text


def test_portfolio_grid_shows_outcomes_criteria_readiness_and_evidence(client, factory, session, people, signed_in):
    """Cara's grid has 6 outcomes, 20 criteria, what blocks sign-off, and a link to the evidence."""
    item = factory.capture(people.assessor, people.candidate, "observation", title="Observed review")
    session.commit()
    signed_in(people.assessor)
    text = page(client.get(f"/candidates/{people.candidate.id}"))
    assert len(re.findall(r'<h2 id="outcome-\d+"', text)) == 6
    assert len(re.findall(r'<tr id="c-\d\.\d+"', text)) == 20
    assert "What blocks sign-off" in text and "20 of 20 assessment criteria are not yet met" in text
    assert f'href="/evidence/{item.id}"' in text and "Observed review" in text


def test_htmx_request_gets_only_the_grid(client, people, signed_in):
    """An in-page htmx request gets the #grid fragment; the response varies on HX-Request."""
    signed_in(people.assessor)
    response = client.get(f"/candidates/{people.candidate.id}", headers={"HX-Request": "true"})
    assert response.status_code == 200 and page(response).lstrip().startswith('<div id="grid"')
    assert "<html" not in page(response) and "HX-Request" in response.headers["Vary"]


def test_boosted_request_gets_the_full_page(client, people, signed_in):
    """A boosted navigation (hx-boost) gets the whole page."""
    signed_in(people.assessor)
    response = client.get(f"/candidates/{people.candidate.id}", headers={"HX-Request": "true", "HX-Boosted": "true"})
    assert response.status_code == 200 and "<html" in page(response) and 'id="grid"' in page(response)
    assert "HX-Request" in response.headers["Vary"]


# --- Recording an observation ----------------------------------------------------------------------------------


def test_record_observation_with_photo(client, session, people, signed_in):
    """An observation posted with a GPS-tagged photo is stored, countersigned, and its photo served clean."""
    token = signed_in(people.assessor)
    data = observation_form(token, files=(io.BytesIO(photo_with_gps()), "IMG_0042.jpg"))
    response = client.post(f"/candidates/{people.candidate.id}/evidence/new/observation", data=data,
                           content_type="multipart/form-data")
    assert response.status_code == 303
    item = session.exec(select(Evidence)).one()
    assert response.headers["Location"] == f"/evidence/{item.id}" and item.method == "observation"
    version = session.exec(select(EvidenceVersion).where(EvidenceVersion.evidence_id == item.id)).one()
    assert count(session, EvidenceCriterion, EvidenceCriterion.version_id == version.id) == 3
    assert sorted(session.exec(select(Signature.kind).where(Signature.version_id == version.id))) == [
        "countersignature", "observer"]
    attachment = session.exec(select(Attachment).where(Attachment.version_id == version.id)).one()
    with client.get(f"/files/{attachment.sha256}/{attachment.filename}") as served:
        assert served.status_code == 200 and served.mimetype == "image/jpeg"
        full = Image.open(io.BytesIO(served.data))
        assert dict(full.getexif()) == {} and full.size == (800, 600)
    with client.get(f"/files/{attachment.sha256}/{attachment.filename}?size=thumb") as thumb:
        small = Image.open(io.BytesIO(thumb.data))
        assert thumb.status_code == 200 and max(small.size) == 320 and dict(small.getexif()) == {}
    shown = page(client.get(f"/evidence/{item.id}"))
    picture = re.search(r'<a href="([^"]+)"><img src="([^"]+)" alt="Photo: IMG_0042.jpg \(opens larger\)"', shown)
    assert picture, "the photo shows on the evidence page as a picture"
    larger, thumbnail = (html.unescape(u) for u in picture.groups())
    assert thumbnail == f"/files/{attachment.sha256}/{attachment.filename}?size=thumb"
    with client.get(larger) as screen:
        assert screen.status_code == 200 and max(Image.open(io.BytesIO(screen.data)).size) == 800


def test_rpl_attempt_refused(client, session, people, signed_in):
    """Posting evidence as recognition of prior learning shows the RPL refusal and writes nothing."""
    token = signed_in(people.assessor)
    response = client.post(f"/candidates/{people.candidate.id}/evidence/new/rpl", data=observation_form(token))
    assert response.status_code == 422
    assert "Recognition of prior learning (RPL) is not allowed for this qualification" in page(response)
    assert count(session, Evidence) == 0 and count(session, Signature) == 0


def test_activity_before_registration_keeps_what_was_typed(client, session, people, signed_in):
    """A date before registration is refused beside the date; typing and the uploaded photo are kept for the retry."""
    token = signed_in(people.assessor)
    before = (people.candidate.registration_date - timedelta(days=30)).isoformat()
    url = f"/candidates/{people.candidate.id}/evidence/new/observation"
    response = client.post(url, data=observation_form(token, activity_date=before,
                                                      files=(io.BytesIO(photo_with_gps()), "IMG_0042.jpg")),
                           content_type="multipart/form-data")
    text = page(response)
    assert response.status_code == 422 and count(session, Evidence) == 0
    error = re.search(r'<p class="field-error" id="activity_date-error">(.*?)</p>', text, re.S)
    assert error and "before the candidate's registration" in error.group(1)
    assert 'value="Person-centred review with Mrs B"' in text and "Cara supported Mrs B to lead her review." in text
    for code in ("2.1", "2.2", "3.1"):
        assert f'value="{code}" checked' in text
    assert 'value="Good days and bad days"' in text
    assert "Already uploaded" in text
    kept = re.search(r'name="kept" value="([0-9a-f]{64}\|[^"]+)" checked', text)
    assert kept and kept.group(1).endswith("|IMG_0042.jpg")
    response = client.post(url, data=observation_form(token, kept=kept.group(1)))
    assert response.status_code == 303
    assert session.exec(select(Attachment.sha256)).one() == kept.group(1).split("|")[0]


def test_witness_cannot_record_an_observation(client, session, people, signed_in):
    """A witness posting an observation is told to record witness testimony instead; nothing is written."""
    token = signed_in(people.witness)
    response = client.post(f"/candidates/{people.candidate.id}/evidence/new/observation",
                           data=observation_form(token, countersignature_name=""))
    assert response.status_code == 422
    assert "is a witness, not an assessor or expert witness" in page(response)
    assert count(session, Evidence) == 0


# --- Review and resubmission -------------------------------------------------------------------------------------


@pytest.fixture
def work_product(factory, session, people) -> Evidence:
    """Cara's submitted work product, with her declaration."""
    item = factory.capture(people.me, people.candidate, "work_product", title="One-page profile")
    evidence_service.sign(session, factory.actor(people.me), item.id, {"kind": "authenticity"})
    session.commit()
    return item


def test_a_document_shows_as_a_link_not_a_picture(client, people, work_product, signed_in):
    """A PDF work product is listed by its name as a link, with no picture."""
    signed_in(people.assessor)
    files = re.search(r'<ul class="files">(.*?)</ul>', page(client.get(f"/evidence/{work_product.id}")), re.S)
    assert files and "one-page profile.pdf</a>" in files.group(1) and "<img" not in files.group(1)


def test_accept(client, session, people, work_product, signed_in):
    """The assessor accepts submitted evidence."""
    token = signed_in(people.assessor)
    response = client.post(f"/evidence/{work_product.id}/review", data={"csrf_token": token, "outcome": "accepted"})
    assert response.status_code == 303
    session.refresh(work_product)
    assert work_product.status == "accepted"


def test_refer_needs_feedback_then_candidate_reads_it(client, session, people, work_product, signed_in):
    """Referring without feedback is refused beside the feedback field; with feedback Cara sees it."""
    token = signed_in(people.assessor)
    url = f"/evidence/{work_product.id}/review"
    response = client.post(url, data={"csrf_token": token, "outcome": "referred", "feedback": ""})
    assert response.status_code == 422
    error = re.search(r'<p class="field-error" id="feedback-error">(.*?)</p>', page(response), re.S)
    assert error and "Give developmental feedback when referring evidence" in error.group(1)
    session.refresh(work_product)
    assert work_product.status == "submitted"
    feedback = "Add how Mrs B chose the words on her profile."
    assert client.post(url, data={"csrf_token": token, "outcome": "referred", "feedback": feedback}).status_code == 303
    session.commit()
    session.refresh(work_product)
    assert work_product.status == "referred"
    signed_in(people.me)
    assert feedback in page(client.get(f"/evidence/{work_product.id}"))


def test_candidate_resubmits_referred_evidence(client, session, factory, people, work_product, signed_in):
    """Cara acts on a referral: version 2 is resubmitted and version 1 stays readable."""
    evidence_service.review(session, factory.actor(people.assessor), work_product.id, "referred",
                            "Add how Mrs B chose the words on her profile.")
    session.commit()
    token = signed_in(people.me)
    url = f"/evidence/{work_product.id}/revise"
    form = page(client.get(url))
    kept = re.search(r'name="kept" value="([^"]+)" checked', form).group(1)
    assert 'value="One-page profile"' in form
    response = client.post(url, data={
        "csrf_token": token, "title": "One-page profile, in Mrs B's words", "activity_date": day(),
        "narrative": "Mrs B chose every word on her profile.", "criteria": "2.1", "note-2.1": "Her words",
        "kept": kept, "base_version": "1", "declaration": "yes", "action": "submit"})
    assert response.status_code == 303
    session.refresh(work_product)
    assert (work_product.current_version, work_product.status) == (2, "resubmitted")
    current = page(client.get(f"/evidence/{work_product.id}"))
    assert "One-page profile, in Mrs B's words" in current and "version 2 of 2" in current
    first = page(client.get(f"/evidence/{work_product.id}?version=1"))
    assert "<h1>One-page profile</h1>" in first and "You are reading an earlier version" in first


# --- Judging criteria and signing off -----------------------------------------------------------------------------


@pytest.fixture
def accepted(factory, session, people) -> Evidence:
    """An accepted observation of Cara covering 2.1 and 2.2."""
    item = factory.accepted(people.assessor, people.candidate,
                            criteria=[{"code": "2.1", "note": "Seen"}, {"code": "2.2", "note": "Seen"}])
    session.commit()
    return item


def decisions(session, code: str) -> list[str]:
    """Return the current decisions on one of Cara's criteria."""
    session.commit()
    return list(session.exec(select(CriterionDecision.outcome).join(Criterion).where(
        Criterion.code == code, CriterionDecision.current == True)))  # noqa: E712


def test_judge_criterion_from_the_grid(client, session, people, accepted, signed_in):
    """The grid's form judges a criterion met: a page post redirects to the row."""
    token = signed_in(people.assessor)
    response = client.post(f"/candidates/{people.candidate.id}/criteria/2.1/decision",
                           data={"csrf_token": token, "outcome": "met"})
    assert response.status_code == 303 and response.headers["Location"].endswith("#c-2.1")
    assert decisions(session, "2.1") == ["met"]


def test_judge_criterion_with_htmx(client, session, people, accepted, signed_in):
    """From htmx, judging a criterion returns the updated grid fragment."""
    token = signed_in(people.assessor)
    response = client.post(f"/candidates/{people.candidate.id}/criteria/2.2/decision",
                           data={"csrf_token": token, "outcome": "met"}, headers={"HX-Request": "true"})
    text = page(response)
    assert response.status_code == 200 and text.lstrip().startswith('<div id="grid"') and "<html" not in text
    row = re.search(r'<tr id="c-2\.2".*?</tr>', text, re.S).group(0)
    assert "tag-met" in row and decisions(session, "2.2") == ["met"]


def test_judging_met_without_accepted_evidence_refused_in_the_row(client, session, people, accepted, signed_in):
    """Judging 3.1 met with no accepted evidence shows the reason in its row and records nothing."""
    token = signed_in(people.assessor)
    response = client.post(f"/candidates/{people.candidate.id}/criteria/3.1/decision",
                           data={"csrf_token": token, "outcome": "met"})
    row = re.search(r'<tr id="c-3\.1".*?</tr>', page(response), re.S).group(0)
    assert response.status_code == 422 and "can be judged met only on accepted evidence" in row
    assert decisions(session, "3.1") == []


def test_sign_off_blocked_then_allowed_then_locked(client, session, factory, people, signed_in):
    """Sign-off lists what blocks it; once all is met and the declaration ticked it signs, and locks the unit."""
    token = signed_in(people.assessor)
    url = f"/candidates/{people.candidate.id}/sign-off"
    blocked = page(client.get(url))
    assert 'id="blockers"' in blocked and "20 of 20 assessment criteria are not yet met" in blocked
    response = client.post(url, data={"csrf_token": token, "declaration": "yes"})
    assert response.status_code == 422 and "Unit 002 cannot be signed off yet" in page(response)
    factory.all_met(people.assessor, people.candidate)
    session.commit()
    response = client.post(url, data={"csrf_token": token})
    assert response.status_code == 422 and "Sign the unit declaration" in page(response)
    assert count(session, UnitSignOff) == 0
    response = client.post(url, data={"csrf_token": token, "declaration": "yes"})
    assert response.status_code == 303 and count(session, UnitSignOff) == 1
    response = client.post(f"/candidates/{people.candidate.id}/criteria/2.1/decision",
                           data={"csrf_token": token, "outcome": "not_met", "note": "On reflection"})
    assert response.status_code == 422 and "so its evidence and decisions are locked" in page(response)
    assert decisions(session, "2.1") == ["met"]
