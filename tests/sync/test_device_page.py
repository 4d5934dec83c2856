"""A field device's pages: the sync status on every page, the Sync page, "Sync now" and discarding an item."""
import hashlib
import html
import io
from datetime import timedelta

import pytest
from PIL import Image
from sqlmodel import Session, select

from device_support import PASSWORD
from support.web import form_token
from support.factories import TODAY
from tracker.models import (
    AssessorQualification,
    Attachment,
    AuditEntry,
    Evidence,
    EvidenceCriterion,
    EvidenceVersion,
    OutboxItem,
    Signature,
)


@pytest.fixture
def field_app(tablet, tmp_path):
    """The tracker running on the device, in field mode, its sync going to the in-process centre."""
    from tracker import create_app

    app = create_app({"TESTING": True, "SECRET_KEY": "device-secret", "FIELD_MODE": True,
                      "SYNC_IN_BACKGROUND": False, "DATABASE_URL": str(tablet.engine.url),
                      "MEDIA_ROOT": str(tmp_path / "device" / "media")}, instance=tmp_path / "device")
    app.extensions["sync_transport"] = tablet.centre
    yield app
    app.extensions["engine"].dispose()


@pytest.fixture
def browser(field_app, field):
    """A signed-in assessor on the device's pages; returns the test client and a fresh CSRF token getter."""
    client = field_app.test_client()
    token = form_token(client.get("/auth/login").get_data(as_text=True))
    answer = client.post("/auth/login", data={"email": field.assessor.email, "password": PASSWORD,
                                              "csrf_token": token})
    assert answer.status_code == 302
    return client


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def photo(colour: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 24), colour).save(out, "JPEG")
    return out.getvalue()


def record_observation(browser, field, **changes):
    """Record an observation with two photos and a countersignature through the device's form."""
    url = f"/candidates/{field.candidate.id}/evidence/new/observation"
    token = form_token(text(browser.get(url)))
    day = (TODAY - timedelta(days=3)).isoformat()
    data = {"csrf_token": token, "title": "Review with Mrs B, recorded offline", "activity_date": day,
            "setting": "long_term_care", "narrative": "Cara supported Mrs B to lead her review.",
            "criteria": ["2.1", "2.2"], "note-2.1": "Good days and bad days", "note-2.2": "Used her words",
            "countersignature_name": "Cara Candidate", "action": "submit",
            "files": [(io.BytesIO(photo("teal")), "one.jpg"), (io.BytesIO(photo("orange")), "two.jpg")]} | changes
    return browser.post(url, data=data, content_type="multipart/form-data")


def test_status_on_every_page_and_the_sync_page_lists_waiting_items(browser, field, tablet):
    answer = record_observation(browser, field)
    assert answer.status_code == 303, text(answer)
    home = text(browser.get("/"))
    assert "1 item not yet" in home and "Last successful sync:" in home and "never" in home
    sync_page = text(browser.get("/sync/"))
    assert "Review with Mrs B, recorded offline" in sync_page and "Waiting to be sent" in sync_page
    fragment = text(browser.get("/sync/", headers={"HX-Request": "true"}))
    assert fragment.lstrip().startswith('<section id="sync-items"')


def test_offline_observation_with_photos_arrives_whole_on_sync_now(browser, field, tablet, session, tmp_path):
    """Recorded with the network cut, then "Sync now": the centre has it, its photos (same hashes), its criteria."""
    assert record_observation(browser, field).status_code == 303
    with Session(tablet.engine) as s:
        local = s.exec(select(Evidence)).one()
        local_version = s.exec(select(EvidenceVersion).where(EvidenceVersion.evidence_id == local.id)).one()
        hashes = sorted(a.sha256 for a in local_version.attachments)
    token = form_token(text(browser.get("/sync/")))
    answer = browser.post("/sync/now", data={"csrf_token": token}, follow_redirects=True)
    assert "Synced: 1 item(s) sent" in text(answer) and "nothing waiting" in text(answer)
    version = session.exec(select(EvidenceVersion).where(EvidenceVersion.evidence_id == local.id)).one()
    assert version.content_hash == local_version.content_hash
    assert sorted(a.sha256 for a in session.exec(select(Attachment).where(Attachment.version_id == version.id))) \
        == hashes
    for sha in hashes:  # the bytes the centre received hash to the declared sha256
        assert hashlib.sha256(tablet.centre.uploads[sha]).hexdigest() == sha
    assert len(session.exec(select(EvidenceCriterion).where(EvidenceCriterion.version_id == version.id)).all()) == 2
    assert sorted(session.exec(select(Signature.kind).where(Signature.version_id == version.id))) == [
        "countersignature", "observer"]
    # Sync again: nothing is pushed, nothing changes.
    browser.post("/sync/now", data={"csrf_token": token})
    assert len(session.exec(select(EvidenceVersion).where(EvidenceVersion.evidence_id == local.id)).all()) == 1


def test_withdrawn_eligibility_is_shown_with_its_reason_and_the_record_stays_readable(browser, field, tablet,
                                                                                       session):
    assert record_observation(browser, field).status_code == 303
    for row in session.exec(select(AssessorQualification).where(
            AssessorQualification.user_id == field.assessor.id)):
        session.delete(row)
    session.commit()
    token = form_token(text(browser.get("/sync/")))
    answer = text(browser.post("/sync/now", data={"csrf_token": token}, follow_redirects=True))
    assert "need your attention" in answer and "observer_not_eligible" in answer
    assert "Check the observer's eligibility" in answer
    with Session(tablet.engine) as s:
        evidence_id = s.exec(select(Evidence.id)).one()
    assert session.get(Evidence, evidence_id) is None
    detail = browser.get(f"/evidence/{evidence_id}")
    assert detail.status_code == 200 and "Review with Mrs B, recorded offline" in text(detail)


def test_discarding_a_parked_item_needs_confirmation_and_keeps_a_copy(browser, field, tablet, session):
    assert record_observation(browser, field).status_code == 303
    for row in session.exec(select(AssessorQualification).where(
            AssessorQualification.user_id == field.assessor.id)):
        session.delete(row)
    session.commit()
    token = form_token(text(browser.get("/sync/")))
    browser.post("/sync/now", data={"csrf_token": token})
    with Session(tablet.engine) as s:
        item = s.exec(select(OutboxItem)).one()
    url = f"/sync/items/{item.item_id}/discard"
    answer = text(browser.post(url, data={"csrf_token": token}, follow_redirects=True))
    assert "Tick the box to confirm" in answer and "observer_not_eligible" in answer
    answer = text(browser.post(url, data={"csrf_token": token, "confirm": "yes"}, follow_redirects=True))
    assert "A copy is kept in this device's audit log" in answer and "Nothing is waiting" in answer
    with Session(tablet.engine) as s:
        entry = s.exec(select(AuditEntry).where(AuditEntry.action == "sync.discarded")).one()
        assert entry.details["payload"]["title"] == "Review with Mrs B, recorded offline"
        assert entry.details["code"] == "observer_not_eligible"


@pytest.mark.parametrize("path", ["/sync/items/not-a-uuid/discard",
                                  "/sync/items/0190f2a8-0000-7000-8000-000000000000/discard"])
def test_discarding_a_forged_item_is_not_found(browser, path):
    token = form_token(text(browser.get("/sync/")))
    assert browser.post(path, data={"csrf_token": token, "confirm": "yes"}).status_code == 404


def test_a_pending_item_cannot_be_discarded(browser, field, tablet):
    assert record_observation(browser, field).status_code == 303
    with Session(tablet.engine) as s:
        item = s.exec(select(OutboxItem)).one()
    token = form_token(text(browser.get("/sync/")))
    assert browser.post(f"/sync/items/{item.item_id}/discard",
                        data={"csrf_token": token, "confirm": "yes"}).status_code == 404


@pytest.mark.parametrize(("method", "path"), [("GET", "/sync/"), ("POST", "/sync/now"),
                                              ("POST", "/sync/items/0190f2a8-0000-7000-8000-000000000000/discard")])
def test_signed_out_people_are_sent_to_sign_in(field_app, method, path):
    client = field_app.test_client()
    token = form_token(client.get("/auth/login").get_data(as_text=True))
    answer = client.open(path, method=method, data={"csrf_token": token} if method == "POST" else None)
    assert answer.status_code == 302 and "/auth/login" in answer.headers["Location"]


def test_without_a_csrf_token_nothing_is_synced_or_discarded(browser):
    assert browser.post("/sync/now", data={}).status_code == 400


def test_the_centre_has_no_sync_page(client):
    """The Sync page belongs to field devices; the centre's tracker has no such route."""
    assert client.get("/sync/").status_code == 404
