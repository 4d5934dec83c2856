"""End to end with real processes: the centre served over HTTP by `tracker serve`, a device enrolled and synced by
`tracker field enrol` and `tracker sync`, and the observation recorded offline on the device's own pages."""
import hashlib
import io
from datetime import timedelta

from PIL import Image
from sqlmodel import Session, select

from field_support import PASSWORD, centre_page, device_app, device_engine, sync, text, world  # noqa: F401
from support.factories import TODAY
from support.web import form_token
from tracker.models import AssessorQualification, Attachment, Evidence, EvidenceCriterion, EvidenceVersion, OutboxItem


def photo(colour: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(out, "JPEG")
    return out.getvalue()


def record_offline(world) -> None:
    """Sign in on the device's own pages and record an observation with two photos and a countersignature."""
    app = device_app(world.device)
    assert app.config["FIELD_MODE"]
    client = app.test_client()
    token = form_token(text(client.get("/auth/login")))
    assert client.post("/auth/login", data={"email": world.assessor.email, "password": PASSWORD,
                                            "csrf_token": token}).status_code == 302
    url = f"/candidates/{world.candidate.id}/evidence/new/observation"
    token = form_token(text(client.get(url)))
    answer = client.post(url, content_type="multipart/form-data", data={
        "csrf_token": token, "title": "Review with Mrs B, recorded offline",
        "activity_date": (TODAY - timedelta(days=2)).isoformat(), "setting": "long_term_care",
        "narrative": "Cara supported Mrs B to lead her review.", "criteria": ["2.1", "2.2"],
        "note-2.1": "Good days and bad days", "note-2.2": "Used her words",
        "countersignature_name": "Cara Candidate", "action": "submit",
        "files": [(io.BytesIO(photo("teal")), "one.jpg"), (io.BytesIO(photo("orange")), "two.jpg")]})
    assert answer.status_code == 303, text(answer)
    app.extensions["engine"].dispose()


def centre_grid(world) -> str:
    """Sign in to the centre's pages over HTTP and return the candidate's tracking grid."""
    return centre_page(world, f"/candidates/{world.candidate.id}")


def test_offline_observation_with_photos_arrives_on_the_centre_grid(world, session):
    world.centre.stop()  # the network is cut
    record_offline(world)
    cut = sync(world)
    assert cut.returncode == 1 and "could not be reached" in cut.stderr
    world.centre.start()  # the network is back
    done = sync(world)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Items pushed: 1" in done.stdout and "Everything is accepted" in done.stdout
    engine = device_engine(world)
    with Session(engine) as s:
        local = s.exec(select(Evidence)).one()
        local_hashes = sorted(a.sha256 for a in s.exec(select(Attachment)))
        assert s.exec(select(OutboxItem)).one().state == "sent"
    version = session.exec(select(EvidenceVersion).where(EvidenceVersion.evidence_id == local.id)).one()
    centre_hashes = sorted(a.sha256 for a in session.exec(select(Attachment).where(
        Attachment.version_id == version.id)))
    assert centre_hashes == local_hashes and len(centre_hashes) == 2
    for sha in centre_hashes:  # the bytes stored on the centre hash to the same sha256
        stored = next((world.centre.instance / "media").rglob(sha + "*"))
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == sha
    assert len(session.exec(select(EvidenceCriterion).where(EvidenceCriterion.version_id == version.id)).all()) == 2
    grid = centre_grid(world)
    assert "Review with Mrs B, recorded offline" in grid and f"/evidence/{local.id}" in grid
    # The same observation pushed again changes nothing.
    with Session(engine) as s:
        item = s.exec(select(OutboxItem)).one()
        item.state = "pending"
        s.add(item)
        s.commit()
    again = sync(world)
    assert again.returncode == 0 and "Items pushed: 1" in again.stdout
    assert len(session.exec(select(EvidenceVersion).where(EvidenceVersion.evidence_id == local.id)).all()) == 1
    engine.dispose()


def test_withdrawn_eligibility_is_refused_and_shown_on_the_device(world, session):
    world.centre.stop()
    record_offline(world)
    for row in session.exec(select(AssessorQualification).where(
            AssessorQualification.user_id == world.assessor.id)):
        session.delete(row)
    session.commit()
    world.centre.start()
    result = sync(world)
    assert result.returncode == 1 and "observer_not_eligible" not in result.stderr
    assert "Refused by the centre" in result.stdout
    app = device_app(world.device)
    client = app.test_client()
    token = form_token(text(client.get("/auth/login")))
    client.post("/auth/login", data={"email": world.assessor.email, "password": PASSWORD, "csrf_token": token})
    page = text(client.get("/sync/"))
    assert "observer_not_eligible" in page and "Check the observer's eligibility" in page
    with Session(app.extensions["engine"]) as s:
        evidence_id = s.exec(select(Evidence.id)).one()
    assert session.get(Evidence, evidence_id) is None
    assert "Review with Mrs B, recorded offline" in text(client.get(f"/evidence/{evidence_id}"))
    app.extensions["engine"].dispose()
