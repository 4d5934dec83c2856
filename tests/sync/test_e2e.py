"""End to end with real processes: the centre served over HTTP by `tracker serve`, a device enrolled and synced by
`tracker field enrol` and `tracker sync`, and the observation recorded offline on the device's own pages."""
import hashlib
import html
import io
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from PIL import Image
from sqlmodel import Session, select

from support.factories import TODAY
from support.processes import child_env
from support.web import form_token
from tracker.models import AssessorQualification, Attachment, Evidence, EvidenceCriterion, EvidenceVersion, OutboxItem

PASSWORD = "correct horse battery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tracker(*args: str, instance: Path, database_url: str | None = None) -> list[str]:
    command = [str(Path(sys.executable).parent / "tracker"), "--instance", str(instance)]
    return command + (["--database-url", database_url] if database_url else []) + list(args)


def env() -> dict:
    return child_env(Path(__file__).parent.parent.parent, drop=("DATABASE_URL", "TRACKER_INSTANCE"))


class CentreProcess:
    """`tracker serve` for the centre, which can be stopped (the network cut) and started again."""

    def __init__(self, instance: Path, database_url: str):
        self.instance, self.database_url, self.port = instance, database_url, free_port()
        self.url, self.process = f"http://127.0.0.1:{self.port}", None

    def start(self) -> None:
        self.process = subprocess.Popen(tracker("serve", "--port", str(self.port), instance=self.instance,
                                                database_url=self.database_url), env=env(),
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(200):
            try:
                requests.get(self.url + "/auth/login", timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.1)
        self.process.kill()
        raise AssertionError(self.process.communicate()[1].decode())

    def stop(self) -> None:
        self.process.terminate()
        self.process.communicate(timeout=20)


@pytest.fixture
def world(backend, session, factory, database_url, tmp_path):
    """A centre with an eligible assessor and a candidate, served in its own process; a device enrolled."""
    assessor = factory.assessor(name="Ann Assessor", )
    candidate = factory.candidate(name="Cara Candidate", assessors=(assessor,))
    session.commit()
    centre = CentreProcess(tmp_path / "centre", database_url)
    centre.start()
    device = tmp_path / "device"
    enrolled = subprocess.run(tracker("field", "enrol", "--server", centre.url, "--email", assessor.email,
                                      "--password", PASSWORD, instance=device), env=env(), capture_output=True,
                              text=True, timeout=120)
    assert enrolled.returncode == 0, enrolled.stderr + enrolled.stdout
    assert (device / "device_token").stat().st_mode & 0o777 == 0o600
    yield type("World", (), {"centre": centre, "device": device, "assessor": assessor, "candidate": candidate})
    centre.stop()


def device_app(instance: Path):
    from tracker import create_app

    return create_app({"TESTING": True, "SYNC_IN_BACKGROUND": False}, instance=instance)


def photo(colour: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(out, "JPEG")
    return out.getvalue()


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


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


def sync(world) -> subprocess.CompletedProcess:
    return subprocess.run(tracker("sync", instance=world.device), env=env(), capture_output=True, text=True,
                          timeout=120)


def device_engine(world):
    from sync.device.field import database_engine

    return database_engine(f"sqlite:///{world.device / 'tracker.db'}")


def centre_grid(world) -> str:
    """Sign in to the centre's pages over HTTP and return the candidate's tracking grid."""
    http = requests.Session()
    token = form_token(http.get(world.centre.url + "/auth/login", timeout=10).text)
    http.post(world.centre.url + "/auth/login", data={"email": world.assessor.email, "password": PASSWORD,
                                                      "csrf_token": token}, timeout=10)
    return html.unescape(http.get(f"{world.centre.url}/candidates/{world.candidate.id}", timeout=10).text)


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
