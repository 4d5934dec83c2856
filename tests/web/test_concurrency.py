"""Bursts of simultaneous requests against the app served over real HTTP (a thread per request), on SQLite and on
PostgreSQL: double clicks, colleagues deciding at the same moment, the same form or file sent twice at once.
Never a 500, exactly one decision per version, and a repeat answered as the first was."""
import io
import re
import threading
import uuid
from collections import Counter
from datetime import timedelta

import pytest
import requests
from PIL import Image
from sqlalchemy import func
from sqlmodel import select

from support.factories import TODAY
from support.web import form_token, serve
from tracker.models import (
    AuditEntry,
    Blob,
    BlobHolder, BlobRendition,
    CriterionDecision,
    Evidence,
    EvidenceReview,
    IqaReview,
    Role,
    UnitSignOff,
)

BURST = 10
PASSWORD = "correct horse battery"


class Browser:
    """A signed-in person's browser against the served app: one cookie and CSRF token, any number of tabs."""

    def __init__(self, base: str, email: str):
        self.base = base
        first = requests.Session()
        token = form_token(first.get(f"{base}/auth/login").text)
        assert first.post(f"{base}/auth/login", data={"email": email, "password": PASSWORD, "csrf_token": token},
                          allow_redirects=False).status_code == 302
        self.cookies = first.cookies.get_dict()
        self.token = form_token(first.get(f"{base}/").text)

    def post(self, path: str, data: dict, files: dict | None = None) -> requests.Response:
        """Post a form in a tab of its own, as a second click or a second device would."""
        return requests.post(f"{self.base}{path}", data=data | {"csrf_token": self.token}, files=files,
                             cookies=self.cookies, allow_redirects=False, timeout=120)


def burst(send, bodies: list) -> list[requests.Response]:  # noqa: ANN001
    """Send every body at the same instant, each from its own thread; return the answers in the same order."""
    start, answers, errors = threading.Barrier(len(bodies)), [None] * len(bodies), []

    def run(i: int, body) -> None:  # noqa: ANN001
        try:
            start.wait(timeout=60)
            answers[i] = send(body)
        except Exception as exc:  # noqa: BLE001 - a failed request fails the test below, with its reason
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, b)) for i, b in enumerate(bodies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert errors == []
    statuses = Counter(a.status_code for a in answers)
    assert not [s for s in statuses if s >= 500], statuses
    return answers


def count(session, model, *where) -> int:  # noqa: ANN001
    """Count rows as they are now."""
    session.commit()
    return session.exec(select(func.count()).select_from(model).where(*where)).one()


@pytest.fixture
def centre(backend, session, factory):
    """An assessor with a candidate and a submitted observation, committed so the served app sees them."""
    assessor = factory.assessor(name="Ann Assessor")
    iqa = factory.user(Role.IQA, name="Ida Iqa")
    candidate = factory.candidate(name="Cara Candidate", assessors=(assessor,), iqas=(iqa,))
    item = factory.capture(assessor, candidate, "observation", title="Observed care planning")
    session.commit()
    return {"assessor": assessor, "iqa": iqa, "candidate": candidate, "item": item}


@pytest.fixture
def served(app):
    """The app served over HTTP on 127.0.0.1."""
    with serve(app) as base:
        yield base


def test_ten_identical_accepts_record_one_decision(served, session, centre):
    """Ten simultaneous accepts of one piece of evidence: each answered as the first was, one review stored."""
    item = centre["item"]
    assessor = Browser(served, centre["assessor"].email)
    answers = burst(lambda body: assessor.post(f"/evidence/{item.id}/review", body),
                    [{"outcome": "accepted", "feedback": "Clear, person-centred practice."}] * BURST)
    assert {a.status_code for a in answers} == {303}
    assert count(session, EvidenceReview, EvidenceReview.evidence_id == item.id) == 1
    assert count(session, AuditEntry, AuditEntry.action == "evidence.accepted") == 1
    assert session.get(Evidence, item.id, populate_existing=True).status == "accepted"


def test_accepts_and_referrals_at_once_keep_one_outcome(served, session, centre):
    """Five accepts and five referrals at once: one outcome is stored on the version; the others are told who
    decided first (409), and nothing else is written."""
    item = centre["item"]
    assessor = Browser(served, centre["assessor"].email)
    bodies = [{"outcome": "accepted", "feedback": ""}, {"outcome": "referred", "feedback": "Add how Mrs B chose."}] * 5
    answers = burst(lambda body: assessor.post(f"/evidence/{item.id}/review", body), bodies)
    reviews = session.exec(select(EvidenceReview).where(EvidenceReview.evidence_id == item.id)).all()
    assert len(reviews) == 1
    winner = reviews[0].outcome
    for body, answer in zip(bodies, answers, strict=True):
        if body["outcome"] == winner:
            assert answer.status_code == 303
        else:
            assert answer.status_code == 409 and "already decided by Ann Assessor" in answer.text
    assert session.get(Evidence, item.id, populate_existing=True).status == winner


def _capture_form(evidence_id: str) -> dict:
    return {"title": "Review meeting led by Mr K", "activity_date": (TODAY - timedelta(days=3)).isoformat(),
            "setting": "long_term_care", "narrative": "Supported Mr K to lead his review.", "criteria": "3.1",
            "note-3.1": "Led by the person", "action": "submit", "evidence_id": evidence_id}


def test_the_same_form_sent_ten_times_at_once_stores_it_once(served, session, centre):
    """A capture form double-clicked ten times (one evidence id): every answer is the first one's, one record."""
    evidence_id = str(uuid.uuid4())
    assessor = Browser(served, centre["assessor"].email)
    answers = burst(lambda body: assessor.post(f"/candidates/{centre['candidate'].id}/evidence/new/observation",
                                               body), [_capture_form(evidence_id)] * BURST)
    assert {a.status_code for a in answers} == {303}
    assert {a.headers["Location"] for a in answers} == {f"/evidence/{evidence_id}"}
    assert count(session, Evidence, Evidence.id == uuid.UUID(evidence_id)) == 1
    assert count(session, AuditEntry, AuditEntry.action == "evidence.captured",
                 AuditEntry.entity_id == evidence_id) == 1


def _photo() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), "teal").save(out, "PNG")
    return out.getvalue()


def test_the_same_new_file_uploaded_ten_times_at_once_is_stored_once(served, session, centre):
    """Ten work products sent at once with the same new photo: all are recorded, the photo is stored once."""
    candidate = centre["candidate"]
    photo = _photo()
    assessor = Browser(served, centre["assessor"].email)

    def send(evidence_id: str) -> requests.Response:
        body = _capture_form(evidence_id) | {"seen_in_place": "", "title": f"Profile {evidence_id[:8]}"}
        body.pop("setting")
        return assessor.post(f"/candidates/{candidate.id}/evidence/new/work_product", body,
                             files={"files": ("profile.png", photo, "image/png")})

    blobs = count(session, Blob)
    answers = burst(send, [str(uuid.uuid4()) for _ in range(BURST)])
    assert {a.status_code for a in answers} == {303}, [a.text[:500] for a in answers if a.status_code != 303]
    created = [uuid.UUID(a.headers["Location"].rsplit("/", 1)[1]) for a in answers]
    assert count(session, Evidence, Evidence.id.in_(created)) == BURST
    holders = session.exec(select(BlobHolder.sha256).where(BlobHolder.user_id == centre["assessor"].id)).all()
    assert len(holders) == len(set(holders)) == 1
    renditions = count(session, BlobRendition, BlobRendition.original_sha256 == holders[0])
    assert count(session, Blob) == blobs + 1 + renditions  # the photo once, with its sizes for the pages once


def test_sign_off_sent_ten_times_at_once_signs_off_once(served, session, factory, centre):
    """Ten sign-offs at once: the unit is signed off once; the others are told it is locked (4xx)."""
    factory.all_met(centre["assessor"], centre["candidate"])
    session.commit()
    assessor = Browser(served, centre["assessor"].email)
    answers = burst(lambda body: assessor.post(f"/candidates/{centre['candidate'].id}/sign-off", body),
                    [{"declaration": "yes"}] * BURST)
    statuses = Counter(a.status_code for a in answers)
    assert statuses[303] == 1 and statuses[422] == BURST - 1, statuses
    assert count(session, UnitSignOff, UnitSignOff.candidate_id == centre["candidate"].id) == 1
    assert all("signed off" in a.text for a in answers if a.status_code == 422)


def test_criterion_decisions_at_once_leave_one_current_decision(served, session, factory, centre):
    """Ten judgements of one criterion at once, met and not met: never a 500, one current decision."""
    assessor, candidate = centre["assessor"], centre["candidate"]
    factory.accepted(assessor, candidate, criteria=[{"code": "2.1", "note": "Seen"}])
    session.commit()
    browser = Browser(served, assessor.email)
    bodies = [{"outcome": "met", "note": ""}, {"outcome": "not_met", "note": "Needs an observation."}] * 5
    answers = burst(lambda body: browser.post(f"/candidates/{candidate.id}/criteria/2.1/decision", body), bodies)
    assert {a.status_code for a in answers} == {303}
    assert count(session, CriterionDecision, CriterionDecision.candidate_id == candidate.id,
                 CriterionDecision.current.is_(True)) == 1


def test_an_iqa_review_sent_ten_times_at_once_is_recorded_once(served, session, factory, centre):
    """Five agreements and five disagreements with one sampled decision at once: one review; the others are told
    who reviewed it first."""
    assessor, candidate, iqa = centre["assessor"], centre["candidate"], centre["iqa"]
    _, _, _, sampled = factory.sampled_decision(assessor, candidate, iqa, days=30)
    session.commit()
    browser = Browser(served, iqa.email)
    bodies = [{"verdict": "agree", "reasons": ""}, {"verdict": "disagree", "reasons": "The note does not show 1.1."}] * 5
    answers = burst(lambda body: browser.post(f"/quality/items/{sampled.id}", body), bodies)
    assert count(session, IqaReview) == 1
    refused = [a for a in answers if a.status_code != 303]
    assert refused and all(a.status_code == 422 and re.search("already reviewed by Ida Iqa", a.text)
                           for a in refused)
