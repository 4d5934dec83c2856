"""Real processes for field sync tests: the centre served by `tracker serve`, devices enrolled and synced by
`tracker field enrol` and `tracker sync`, each device with its own instance folder and SQLite file."""
import html
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from sqlmodel import Session

from support.factories import TODAY
from support.processes import child_env
from support.web import form_token
from tracker.audit import Actor
from tracker.models import User
from tracker.services import evidence as service

PASSWORD = "correct horse battery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tracker(*args: str, instance: Path, database_url: str | None = None) -> list[str]:
    command = [str(Path(sys.executable).parent / "tracker"), "--instance", str(instance)]
    return command + (["--database-url", database_url] if database_url else []) + list(args)


def env(**extra: str) -> dict:
    """Return a child's environment on the tests' clock; `TRACKER_TEST_CLOCK` in `extra` moves its clock."""
    return child_env(Path(__file__).parent.parent.parent, drop=("DATABASE_URL", "TRACKER_INSTANCE"), **extra)


def run(command: list[str], **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=env(**extra), capture_output=True, text=True, timeout=120)


class CentreProcess:
    """`tracker serve` for the centre, which can be stopped (the network cut) and started again."""

    def __init__(self, instance: Path, database_url: str):
        self.instance, self.database_url, self.port = instance, database_url, free_port()
        self.url, self.process = f"http://127.0.0.1:{self.port}", None

    def start(self) -> None:
        # Its log goes to a file: a pipe nobody reads fills up, and then the centre stops answering.
        self.log = self.instance.parent / f"centre-{self.port}.log"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(tracker("serve", "--port", str(self.port), instance=self.instance,
                                                    database_url=self.database_url), env=env(),
                                            stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + 120  # a loaded machine can take long to import and start a server
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                requests.get(self.url + "/auth/login", timeout=5)
                return
            except requests.RequestException:
                time.sleep(0.2)
        self.process.kill()
        self.process.wait(timeout=20)
        raise AssertionError(self.log.read_text(errors="replace"))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


def enrol(centre: CentreProcess, email: str, instance: Path, password: str = PASSWORD,
          **extra: str) -> subprocess.CompletedProcess:
    """Enrol (or sign in again on) a device with `tracker field enrol`."""
    return run(tracker("field", "enrol", "--server", centre.url, "--email", email, "--password", password,
                       instance=instance), **extra)


@pytest.fixture
def world(backend, session, factory, database_url, tmp_path):
    """A centre with an eligible assessor and a candidate, served in its own process; a device enrolled."""
    assessor = factory.assessor(name="Ann Assessor")
    candidate = factory.candidate(name="Cara Candidate", assessors=(assessor,))
    session.commit()
    centre = CentreProcess(tmp_path / "centre", database_url)
    centre.start()
    device = tmp_path / "device"
    enrolled = enrol(centre, assessor.email, device)
    assert enrolled.returncode == 0, enrolled.stderr + enrolled.stdout
    assert (device / "device_token").stat().st_mode & 0o777 == 0o600
    yield SimpleNamespace(centre=centre, device=device, assessor=assessor, candidate=candidate,
                          database_url=database_url)
    if centre.running():
        centre.stop()


def device_app(instance: Path):
    from tracker import create_app

    return create_app({"TESTING": True, "SYNC_IN_BACKGROUND": False}, instance=instance)


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def signed_in(app, email: str, password: str = PASSWORD):
    """Return a test client of a device's app, signed in through its form."""
    client = app.test_client()
    token = form_token(text(client.get("/auth/login")))
    answer = client.post("/auth/login", data={"email": email, "password": password, "csrf_token": token})
    assert answer.status_code == 302, text(answer)
    return client


def sync(world, instance: Path | None = None, **extra: str) -> subprocess.CompletedProcess:
    """Run `tracker sync` on a device (the world's own by default)."""
    return run(tracker("sync", instance=instance or world.device), **extra)


def device_engine(world, instance: Path | None = None):
    from sync.device.field import database_engine

    return database_engine(f"sqlite:///{(instance or world.device) / 'tracker.db'}")


def capture_on_device(world, factory, instance: Path | None = None, **overrides) -> uuid.UUID:
    """Record an observation with the device's own services, committed and queued; return its id."""
    engine = device_engine(world, instance)
    try:
        with Session(engine, expire_on_commit=False) as s:
            me = Actor(s.get(User, world.assessor.id), today=TODAY)
            item = service.capture(s, me, factory.evidence_data(world.candidate, "observation", **overrides))
            s.commit()
            return item.id
    finally:
        engine.dispose()


def revise_on_device(world, factory, evidence_id: uuid.UUID, title: str, instance: Path | None = None) -> None:
    """Save a new version of evidence on a device, on top of the device's newest, committed and queued."""
    engine = device_engine(world, instance)
    try:
        with Session(engine, expire_on_commit=False) as s:
            me = Actor(s.get(User, world.assessor.id), today=TODAY)
            content = {k: v for k, v in factory.evidence_data(world.candidate, "observation", title=title).items()
                       if k not in ("candidate_id", "unit", "method", "submit", "signatures")}
            current = service.get(s, evidence_id)
            service.revise(s, me, evidence_id, content, base_version=current.current_version)
            s.commit()
    finally:
        engine.dispose()


def centre_page(world, path: str, email: str | None = None) -> str:
    """Sign in to the centre's pages over HTTP (as the world's assessor by default) and return a page's text."""
    http = requests.Session()
    token = form_token(http.get(world.centre.url + "/auth/login", timeout=10).text)
    http.post(world.centre.url + "/auth/login", data={"email": email or world.assessor.email, "password": PASSWORD,
                                                      "csrf_token": token}, timeout=10)
    return html.unescape(http.get(world.centre.url + path, timeout=10).text)
