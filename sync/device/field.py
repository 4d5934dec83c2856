"""A field device: its token in the instance folder, enrolment with the centre, and background sync (no Flask)."""
import json
import logging
import os
import random
import threading
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from tracker import clock
from tracker.db import make_engine, transaction, upgrade
from tracker.models import OutboxItem, SyncState, User, new_id

from . import outbox
from .client import Client, HttpTransport, Report, Stopped, Transport, Unreachable, headers

log = logging.getLogger(__name__)
TOKEN_FILE = "device_token"
FIELD_CONFIG = "field.json"


def save_token(instance: Path, token: str) -> None:
    """Keep the device's token in the instance folder, readable by its owner only."""
    path = Path(instance) / TOKEN_FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(token)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    path.chmod(0o600)


def load_token(instance: Path) -> str | None:
    """Return the device's token, if it has enrolled."""
    path = Path(instance) / TOKEN_FILE
    return path.read_text(encoding="utf-8").strip() if path.exists() else None


def write_field_config(instance: Path, server: str) -> None:
    """Mark the instance as a field device: its config turns field mode on and names the centre."""
    config = Path(instance) / "config.py"
    text = config.read_text(encoding="utf-8") if config.exists() else ""
    if "FIELD_MODE" not in text:
        text += f"FIELD_MODE = True\nCENTRE_URL = {server!r}\n"
        config.write_text(text, encoding="utf-8")
        config.chmod(0o600)


def database_engine(url: str) -> Engine:
    """Return the device's engine: SQLite with WAL and synchronous=FULL, its changes queued (G19)."""
    engine = make_engine(url, durable=True)
    outbox.install(engine)
    return engine


class EnrolFailed(Exception):
    """The centre refused to enrol this device, with its reason."""

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.code = code


def enrol(engine: Engine, instance: Path, server: str, email: str, password: str, name: str = "Field device",
          transport: Transport | None = None, storage: Any = None) -> Report:
    """Register the device with the centre, set up its database, pull the caseload and its files, keep the sign-in.

    Signing in again (the sign-in ran out, a new password, access allowed back after a withdrawal) continues the same
    device: its id, its queue and its place in the centre's changes (G23). Only a device with nothing unsent may
    be handed to another person, who then starts it afresh.
    """
    from tracker.services.people import hash_password

    transport = transport or HttpTransport(server)
    upgrade(engine)
    with Session(engine) as session:
        state = session.get(SyncState, 1)
        unsent = outbox.status(session)["pending"]
    try:
        found = _register(transport, server, email, password, state.device_id if state else new_id(), name)
    except EnrolFailed as failed:
        if failed.code != "device_of_another_person":
            raise
        if unsent:
            raise EnrolFailed(f"This device holds {unsent} item(s) another person recorded and has not sent yet. "
                              "They must sign in on it and sync before it is handed over.") from None
        found = _register(transport, server, email, password, new_id(), name)  # handed over: a new device
    user_id = uuid.UUID(found["user"]["id"])
    with transaction(engine) as session:
        state = session.get(SyncState, 1) or SyncState(device_id=uuid.UUID(found["device_id"]), server_url=server)
        if str(state.device_id) != found["device_id"] or state.server_url != server or state.user_id != user_id:
            state.cursor = None  # another centre, person or identity: fetch everything
        state.device_id, state.server_url, state.user_id = uuid.UUID(found["device_id"]), server, user_id
        state.needs = None
        session.add(state)
    save_token(instance, found["token"])
    write_field_config(instance, server)
    client = Client(engine, storage, transport, found["token"])
    client.pull()
    with transaction(engine) as session:  # the same password signs in on the device; only its hash is kept
        user = session.get(User, uuid.UUID(found["user"]["id"]))
        if user is not None:
            user.password_hash = hash_password(password)
            session.add(user)
    client.download_media()  # last: the device can be signed in to while the caseload's files arrive
    return client.report


def _register(transport: Transport, server: str, email: str, password: str, device_id: uuid.UUID,
              name: str) -> dict[str, Any]:
    """Sign the person in with the centre as this device; return the centre's answer (token, device, person)."""
    body = json.dumps({"email": email, "password": password, "device_id": str(device_id), "name": name})
    try:
        answer = transport("POST", "/api/v1/devices", body=body.encode("utf-8"), headers=headers())
    except Unreachable as exc:
        raise EnrolFailed(f"The centre at {server} could not be reached: {exc}.") from None
    found = answer.json()
    if answer.status != 201 or not isinstance(found, dict) or "token" not in found:
        reason = found.get("message") or found.get("error") if isinstance(found, dict) else None
        raise EnrolFailed(reason or f"The centre refused to enrol this device (HTTP {answer.status}).",
                          found.get("error") if isinstance(found, dict) else None)
    return found


def centre_days(engine: Engine) -> tuple[date, date]:
    """Return the centre's day by its clock as last learned, and the last day this device accepts an activity on.

    A device's own clock can be months wrong, so it never decides "in the future" alone: it judges by the centre's
    clock with a day's leeway, or, before it has learned it, not at all; the centre has the last word (G24).
    """
    with Session(engine) as session:
        state = session.get(SyncState, 1)
    if state is None or state.clock_offset is None:
        return clock.today(), date.max
    learned = clock.aware(state.last_attempt_at) if state.last_attempt_at else None
    if learned is not None and clock.now() < learned:
        # The clock has gone back since the offset was learned, so the offset no longer holds: the centre's day is
        # at least the one it was then, and only the centre can say what is in the future.
        return clock.day_of(learned + timedelta(seconds=state.clock_offset)), date.max
    today = clock.day_of(clock.now() + timedelta(seconds=state.clock_offset))
    return today, today + timedelta(days=1)


def pending_count(engine: Engine) -> int:
    """Return how many items the centre has not yet accepted."""
    with Session(engine) as session:
        return outbox.status(session)["pending"]


class Syncer:
    """Syncs in a daemon thread: on a timer, with exponential backoff and jitter after failures."""

    def __init__(self, make_client: Any, interval: float = 60.0, max_backoff: float = 900.0):
        self.make_client, self.interval, self.max_backoff = make_client, interval, max_backoff
        self.failures = 0
        self.lock = threading.Lock()  # one sync at a time: the thread and "Sync now" take turns
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the background thread (once)."""
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="tracker-sync", daemon=True)
            self.thread.start()

    def stop(self) -> None:
        """Ask the thread to stop after its current round."""
        self.stopping.set()
        self.wake.set()

    def now(self) -> Report | None:
        """Sync at once (for "Sync now"); None when a sync is already running."""
        if not self.lock.acquire(timeout=0.5):
            return None
        try:
            return self._round()
        finally:
            self.lock.release()

    def delay(self) -> float:
        """Return the wait before the next round: the interval, or backoff with jitter after failures."""
        if not self.failures:
            return self.interval
        return random.uniform(0.5, 1.0) * min(self.max_backoff, self.interval * 2 ** min(self.failures, 10) / 8)

    def _round(self) -> Report:
        try:
            report = self.make_client().sync()
        except Exception as exc:  # the thread must never die; the error is shown on every page
            log.exception("background sync failed")
            report = Report(error=f"Sync failed unexpectedly: {exc}")
        self.failures = 0 if report.error is None else self.failures + 1
        return report

    def _run(self) -> None:
        while not self.stopping.is_set():
            if self.lock.acquire(blocking=False):
                try:
                    self._round()
                finally:
                    self.lock.release()
            self.wake.wait(self.delay())
            self.wake.clear()


def unsent(engine: Engine) -> list[OutboxItem]:
    """Return every item the centre has not yet accepted, oldest first."""
    with Session(engine, expire_on_commit=False) as session:
        return list(session.exec(select(OutboxItem).where(col(OutboxItem.state).in_(outbox.UNSENT))
                                 .order_by(OutboxItem.seq)))


__all__ = ["EnrolFailed", "Stopped", "Syncer", "enrol", "load_token", "save_token"]
