"""Test 13: several devices run a random schedule (capture, revise, attach, sync through a faulty network, sign in
again, a clock months wrong, a second device of the same person, the centre restored from an earlier snapshot);
after healing, resolving the conflicts a person must settle and syncing all, every device equals the centre,
nothing is lost or doubled, and every conflict is recorded once."""
import hashlib
import io
import json
import shutil
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from PIL import Image
from sqlmodel import Session, func, select

from device_support import PASSWORD, Faulty, FlaskTransport, enrol_over
from support.factories import TODAY
from sync.centre import tokens
from sync.device import conflicts, outbox
from sync.device.client import Client
from sync.device.field import centre_days, database_engine, enrol, load_token
from tracker import media
from tracker.audit import Actor
from tracker.db import transaction, upgrade
from tracker.models import (
    Attachment,
    Evidence,
    EvidenceVersion,
    OutboxItem,
    SyncConflict,
    SyncReceipt,
    SyncState,
    User,
    new_id,
)
from tracker.services import evidence as service
from tracker.storage import LocalStorage

# Two hundred schedules on the field devices' own engine; the centre's PostgreSQL path is exercised by the
# process-kill, end-to-end and API tests, and a second 200-schedule run there would double the suite's time.
# The centre's restore is a copy of its SQLite file taken earlier in the schedule.
BACKENDS = ("sqlite",)
SERVER = "http://centre.test"

FAULTS = ["drop", "504", "html200", "bare200", "cut", "timeout", None, None]
CONTENT_ONLY = ("candidate_id", "unit", "method", "submit", "signatures")
SKEWS = (-183, -92, 0, 92)  # days the device's clock is wrong by: six months behind, three ahead, or right
DEVICES = 3  # person a's first device, person a's second device, person b's device

device_op = st.one_of(
    st.tuples(st.just("capture"), st.booleans()),  # with a photo or not
    st.tuples(st.just("revise"), st.integers(0, 5)),
    st.tuples(st.just("sync"), st.lists(st.sampled_from(FAULTS), max_size=3)),
    st.tuples(st.just("resolve"), st.sampled_from(conflicts.CHOICES[:2])),  # a person settles open conflicts
    st.tuples(st.just("reenrol"), st.booleans()),  # signs in again: the sign-in ran out, or after a withdrawal
    st.tuples(st.just("skew"), st.sampled_from(SKEWS)),
)
action = st.one_of(
    st.tuples(st.integers(0, DEVICES - 1), device_op),
    st.tuples(st.just("centre"), st.sampled_from(("snapshot", "restore"))),
)
schedules = st.lists(action, max_size=14)


@pytest.fixture
def device_template(tmp_path_factory):
    """A migrated, empty device database to copy for each device."""
    path = tmp_path_factory.mktemp("device-template") / "tracker.db"
    engine = database_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture
def centre_app(database_url, tmp_path):
    from tracker import create_app

    app = create_app({"TESTING": True, "SECRET_KEY": "t", "DATABASE_URL": database_url,
                      "RATELIMIT_ENABLED": False}, instance=tmp_path / "centre")
    yield app
    app.extensions["engine"].dispose()


def photo(seed: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 6), (seed % 256, seed * 7 % 256, seed * 13 % 256)).save(out, "PNG")
    return out.getvalue()


class Answers:
    """The centre's transport, noting the last answer the centre gave each pushed item, even one lost on the way."""

    def __init__(self, inner):  # noqa: ANN001
        self.inner, self.last = inner, {}

    def __call__(self, method: str, path: str, **kw):  # noqa: ANN003, ANN204
        answer = self.inner(method, path, **kw)
        if path == "/api/v1/push" and answer.status == 200:
            for verdict in json.loads(answer.body)["verdicts"]:
                self.last[verdict["item_id"]] = (verdict["verdict"], verdict["code"])
        return answer

    def conflicts(self) -> set[uuid.UUID]:
        """Return the items the centre last answered as a change to a version it had replaced."""
        return {uuid.UUID(i) for i, answer in self.last.items() if answer == ("conflict", "out_of_date")}


class CentreTime:
    """Runs the centre's side of a request on the true clock while the device's own clock is wrong."""

    def __init__(self, inner, device):  # noqa: ANN001
        self.inner, self.device = inner, device

    def __call__(self, method: str, path: str, **kw):  # noqa: ANN003, ANN204
        if not self.device.skew:
            return self.inner(method, path, **kw)
        with time_machine.travel(datetime.now(UTC) - self.device.skew, tick=True):
            return self.inner(method, path, **kw)


class Centre:
    """The centre's SQLite file: a snapshot taken during the schedule, and a restore to it (as from a backup)."""

    def __init__(self, session: Session, url: str, folder):  # noqa: ANN001
        self.session, self.path, self.snapshot = session, url.removeprefix("sqlite:///"), folder / "snapshot.db"
        self.taken = False

    def run(self, what: str) -> None:
        """Take a snapshot, or go back to the one taken (nothing happens before one is taken)."""
        if what == "restore" and not self.taken:
            return
        self.session.commit()
        source, target = (self.path, self.snapshot) if what == "snapshot" else (self.snapshot, self.path)
        src, dst = sqlite3.connect(source), sqlite3.connect(target)
        try:
            src.backup(dst)  # SQLite's online backup: one consistent moment, as `tracker backup` takes
        finally:
            src.close()
            dst.close()
        self.session.expire_all()
        self.taken = True


class FieldDevice:
    """One device: its database file, storage, client, clock, and the assessor using it."""

    def __init__(self, template, folder, transport, user, factory, candidate, centre_session):  # noqa: ANN001
        folder.mkdir(parents=True)
        shutil.copy(template, folder / "tracker.db")
        self.folder, self.centre_session = folder, centre_session
        self.engine = database_engine(f"sqlite:///{folder / 'tracker.db'}")
        self.storage = LocalStorage(folder / "media")
        self.user, self.factory, self.candidate = user, factory, candidate
        self.skew = timedelta(0)
        self.device_id = new_id()
        token = enrol_over(transport, user, self.device_id)
        with transaction(self.engine) as s:
            s.add(SyncState(device_id=self.device_id, user_id=user.id, server_url=SERVER))
        self.faulty = Faulty(CentreTime(transport, self), only="/api/v1/")
        self.client = Client(self.engine, self.storage, self.faulty, token, batch=3)
        self.client.pull()

    def clock(self):  # noqa: ANN201
        """Return the device's own clock: the true one, or one months wrong."""
        return time_machine.travel(datetime.now(UTC) + self.skew, tick=True)

    def actor(self, s: Session) -> Actor:
        """Return the assessor acting on this device, on the centre's day as the device last learned it (G24)."""
        today, latest = centre_days(self.engine)
        return Actor(s.get(User, self.user.id), device_id=self.device_id, today=today, latest_activity=latest)

    def run(self, step, n: int) -> None:  # noqa: ANN001
        """Run one step of the schedule on this device."""
        kind, arg = step
        if kind == "skew":
            self.skew = timedelta(days=arg)
            return
        if kind == "reenrol":
            self.sign_in_again(withdrawn=arg)
            return
        with self.clock(), Session(self.engine, expire_on_commit=False) as s:
            if kind == "capture":
                self.capture(s, n, arg)
            elif kind == "revise":
                self.revise(s, n, arg)
            elif kind == "resolve":
                self.resolve(s, arg)
            else:
                self.faulty.faults = list(arg)
                self.client.sync()
                self.faulty.faults = []

    def capture(self, s: Session, n: int, with_photo: bool) -> None:
        """Record a visit made yesterday by the centre's day, with a photo or not."""
        attachments = []
        if with_photo:
            stored = media.ingest(s, self.storage, io.BytesIO(photo(n)), f"photo{n}.png", "image/png")
            s.commit()
            attachments = [{"sha256": stored.sha256, "filename": stored.filename}]
        data = self.factory.evidence_data(self.candidate, "observation", id=new_id(), title=f"Visit {n}",
                                          activity_date=TODAY - timedelta(days=1), attachments=attachments)
        service.capture(s, self.actor(s), data)
        s.commit()

    def revise(self, s: Session, n: int, pick: int) -> None:
        """Save a new version of one of this person's pieces of evidence (the other device's too)."""
        mine = s.exec(select(Evidence).where(Evidence.created_by_id == self.user.id).order_by(Evidence.id)).all()
        if not mine or conflicts.open_conflicts(s):
            return  # a device with a conflict to settle shows it first; the assessor settles it before editing
        target = mine[pick % len(mine)]
        data = self.factory.evidence_data(self.candidate, "observation", title=f"Revised {n}")
        content = {k: v for k, v in data.items() if k not in CONTENT_ONLY}
        service.revise(s, self.actor(s), target.id, content, base_version=target.current_version)
        s.commit()

    def resolve(self, s: Session, choice: str) -> int:
        """Settle every conflict whose centre copy has arrived, by a person's choice; return how many."""
        settled = 0
        for conflict in conflicts.open_conflicts(s):
            if s.get(conflicts.ConflictCopy, conflict.evidence.id) is not None:
                conflicts.resolve(s, self.actor(s), conflict.evidence.id, choice)
                s.commit()
                settled += 1
        return settled

    def sign_in_again(self, withdrawn: bool) -> None:
        """Sign the same person in again with whatever is queued: a new token, the same device (G23)."""
        if withdrawn:  # the tablet was reported lost, then found and allowed back
            tokens.revoke(self.centre_session, Actor(self.user), self.device_id, "Left on a bus")
            self.centre_session.commit()
            with self.clock():
                assert self.client.sync().error is not None  # refused: sign in again; the queue stays
            tokens.allow_back(self.centre_session, self.factory.as_admin, self.device_id)
            self.centre_session.commit()
        with self.clock():
            enrol(self.engine, self.folder, SERVER, self.user.email, PASSWORD, transport=self.faulty,
                  storage=self.storage)
        with Session(self.engine) as s:
            assert s.get(SyncState, 1).device_id == self.device_id
        self.client = Client(self.engine, self.storage, self.faulty, load_token(self.folder), batch=3)

    def sync(self) -> bool:
        """Sync on the device's clock, signing in again when asked (a restored centre no longer knows a sign-in
        issued after its backup); say whether everything is accepted."""
        with self.clock():
            report = self.client.sync()
        with Session(self.engine) as s:
            if s.get(SyncState, 1).needs == "sign_in":
                self.sign_in_again(withdrawn=False)
        return report.ok

    def settle(self, choice: str) -> int:
        """Resolve what this device holds in conflict, as its assessor would."""
        with self.clock(), Session(self.engine, expire_on_commit=False) as s:
            return self.resolve(s, choice)

    def evidence(self) -> dict[uuid.UUID, tuple[int, str, str]]:
        with Session(self.engine) as s:
            return _evidence(s, self.candidate.id)


def _evidence(session, candidate_id) -> dict[uuid.UUID, tuple[int, str, str]]:  # noqa: ANN001
    rows = session.exec(select(Evidence.id, Evidence.current_version, EvidenceVersion.content_hash, Evidence.status)
                        .join(EvidenceVersion, (EvidenceVersion.evidence_id == Evidence.id)
                              & (EvidenceVersion.number == Evidence.current_version))
                        .where(Evidence.candidate_id == candidate_id)).all()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def heal(devices: list[FieldDevice], choice: str) -> None:
    """Sync every device until all is accepted, each assessor settling the conflicts shown to them."""
    for _ in range(8):
        done = [device.sync() for device in devices]
        settled = sum(device.settle(choice) for device in devices)
        if all(done) and not settled:
            return
    raise AssertionError([device.client.report for device in devices])


@settings(max_examples=int(__import__("os").environ.get("PROPERTY_EXAMPLES", 200)), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(schedule=schedules, choice=st.sampled_from(conflicts.CHOICES[:2]))
def test_devices_converge_on_the_centre(centre_app, session, factory, device_template, database_url, tmp_path,
                                        schedule, choice):
    note(f"schedule={schedule!r}, choice={choice!r}")
    a, b = factory.assessor(), factory.assessor()
    candidate = factory.candidate(assessors=(a, b))
    factory.admin  # noqa: B018 - made now, so a restored centre still has the administrator
    session.commit()
    run = tmp_path / uuid.uuid4().hex
    run.mkdir()
    answers = Answers(FlaskTransport(centre_app))
    devices = [FieldDevice(device_template, run / str(i), answers, user, factory, candidate, session)
               for i, user in enumerate((a, a, b))]  # a's first device, a's second, b's
    centre = Centre(session, database_url, run)
    for n, (who, step) in enumerate(schedule, start=1):
        if who == "centre":
            centre.run(step)
        else:
            devices[who].run(step, n)
    heal(devices, choice)
    for device in devices:  # a last round so each device receives what the others sent
        assert device.sync(), device.client.report
    session.expire_all()
    centre_evidence = _evidence(session, candidate.id)
    captured = set()
    for device in devices:
        assert device.evidence() == centre_evidence
        with Session(device.engine) as s:
            assert s.exec(select(func.count()).select_from(OutboxItem).where(
                OutboxItem.state.in_(outbox.UNSENT))).one() == 0
            captured |= set(s.exec(select(OutboxItem.evidence_id).where(OutboxItem.kind == "evidence.capture")))
            item_ids = set(s.exec(select(OutboxItem.item_id)))
            live = set(s.exec(select(OutboxItem.item_id).where(OutboxItem.state != outbox.DISCARDED)))
        receipts = session.exec(select(SyncReceipt.item_id).where(SyncReceipt.item_id.in_(item_ids))).all()
        assert len(receipts) == len(set(receipts)) and live <= set(receipts)  # every item answered and kept once
    assert captured == set(centre_evidence)  # nothing lost, nothing extra
    recorded = session.exec(select(SyncConflict).where(SyncConflict.candidate_id == candidate.id)).all()
    assert sorted(c.item_id for c in recorded) == sorted(answers.conflicts())  # every conflict recorded once
    assert all(c.resolved_at is not None for c in recorded)  # and settled by a person
    storage = centre_app.extensions["storage"]
    for sha in session.exec(select(Attachment.sha256).join(EvidenceVersion).join(Evidence).where(
            Evidence.candidate_id == candidate.id)):
        with storage.open(sha) as stored:
            assert hashlib.sha256(stored.read()).hexdigest() == sha
    for device in devices:
        device.engine.dispose()
