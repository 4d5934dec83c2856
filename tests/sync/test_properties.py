"""Test 13: several devices run random scripts (capture, revise, attach) with random partial syncs through a
faulty network; after healing and syncing all, every device equals the centre and nothing is lost or doubled."""
import hashlib
import io
import shutil
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from sqlmodel import Session, func, select

from device_support import Faulty, FlaskTransport, enrol_over
from support.factories import TODAY
from sync.device.client import Client
from sync.device.field import database_engine
from tracker import media
from tracker.audit import Actor
from tracker.db import transaction, upgrade
from tracker.models import Attachment, Evidence, EvidenceVersion, OutboxItem, SyncReceipt, SyncState, User, new_id
from tracker.services import evidence as service
from tracker.storage import LocalStorage

# Two hundred schedules on the field devices' own engine; the centre's PostgreSQL path is exercised by the
# process-kill, end-to-end and API tests, and a second 200-schedule run there would double the suite's time.
BACKENDS = ("sqlite",)

FAULTS = ["drop", "504", "html200", "bare200", "cut", "timeout", None, None]
CONTENT_ONLY = ("candidate_id", "unit", "method", "submit", "signatures")

op = st.one_of(
    st.tuples(st.just("capture"), st.booleans()),  # with a photo or not
    st.tuples(st.just("revise"), st.integers(0, 5)),
    st.tuples(st.just("sync"), st.lists(st.sampled_from(FAULTS), max_size=3)),
)
scripts = st.lists(st.lists(op, max_size=6), min_size=2, max_size=2)


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


class FieldDevice:
    """One device: its database file, storage, client, and the assessor using it."""

    def __init__(self, template, folder, transport, user, factory, candidate):
        folder.mkdir(parents=True)
        shutil.copy(template, folder / "tracker.db")
        self.engine = database_engine(f"sqlite:///{folder / 'tracker.db'}")
        self.storage = LocalStorage(folder / "media")
        self.user, self.factory, self.candidate = user, factory, candidate
        device_id = new_id()
        self.token = enrol_over(transport, user, device_id)
        with transaction(self.engine) as s:
            s.add(SyncState(device_id=device_id, user_id=user.id, server_url="http://centre.test"))
        self.faulty = Faulty(transport, only="/api/v1/")
        self.client = Client(self.engine, self.storage, self.faulty, self.token, batch=3)
        self.client.pull()

    def run(self, step, n: int) -> None:
        """Run one step of a script."""
        kind, arg = step
        with Session(self.engine, expire_on_commit=False) as s:
            me = Actor(s.get(User, self.user.id), today=TODAY)
            if kind == "capture":
                attachments = []
                if arg:
                    stored = media.ingest(s, self.storage, io.BytesIO(photo(n)), f"photo{n}.png", "image/png")
                    s.commit()
                    attachments = [{"sha256": stored.sha256, "filename": stored.filename}]
                data = self.factory.evidence_data(self.candidate, "observation", id=new_id(),
                                                  title=f"Visit {n}", attachments=attachments)
                service.capture(s, me, data)
                s.commit()
            elif kind == "revise":
                mine = s.exec(select(Evidence).where(Evidence.created_by_id == self.user.id)
                              .order_by(Evidence.id)).all()
                if mine:
                    target = mine[arg % len(mine)]
                    data = self.factory.evidence_data(self.candidate, "observation", title=f"Revised {n}")
                    content = {k: v for k, v in data.items() if k not in CONTENT_ONLY}
                    service.revise(s, me, target.id, content, base_version=target.current_version)
                    s.commit()
            else:
                self.faulty.faults = list(arg)
                self.client.sync()
                self.faulty.faults = []

    def heal(self) -> None:
        for _ in range(5):
            if self.client.sync().ok:
                return
        raise AssertionError(self.client.report)

    def evidence(self) -> dict[uuid.UUID, tuple[int, str]]:
        with Session(self.engine) as s:
            return _evidence(s, self.candidate.id)


def _evidence(session, candidate_id) -> dict[uuid.UUID, tuple[int, str, str]]:
    rows = session.exec(select(Evidence.id, Evidence.current_version, EvidenceVersion.content_hash, Evidence.status)
                        .join(EvidenceVersion, (EvidenceVersion.evidence_id == Evidence.id)
                              & (EvidenceVersion.number == Evidence.current_version))
                        .where(Evidence.candidate_id == candidate_id)).all()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


@settings(max_examples=int(__import__("os").environ.get("PROPERTY_EXAMPLES", 200)), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(scripts=scripts)
def test_devices_converge_on_the_centre(centre_app, session, factory, device_template, tmp_path, scripts):
    transport = FlaskTransport(centre_app)
    a, b = factory.assessor(), factory.assessor()
    candidate = factory.candidate(assessors=(a, b))
    session.commit()
    run = uuid.uuid4().hex
    devices = [FieldDevice(device_template, tmp_path / run / str(i), transport, user, factory, candidate)
               for i, user in enumerate((a, b))]
    n = 0
    for round_ in zip(*[s + [None] * (6 - len(s)) for s in scripts], strict=True):
        for device, step in zip(devices, round_, strict=True):
            if step is not None:
                n += 1
                device.run(step, n)
    for device in devices:
        device.heal()
    for device in devices:  # a last round so each device receives what the others sent
        assert device.client.sync().ok
    session.expire_all()
    centre = _evidence(session, candidate.id)
    captured = set()
    for device in devices:
        assert device.evidence() == centre
        with Session(device.engine) as s:
            assert s.exec(select(func.count()).select_from(OutboxItem).where(
                OutboxItem.state.in_(("pending", "attempted", "held", "parked")))).one() == 0
            captured |= set(s.exec(select(OutboxItem.evidence_id).where(OutboxItem.kind == "evidence.capture")))
            item_ids = set(s.exec(select(OutboxItem.item_id)))
        receipts = session.exec(select(SyncReceipt.item_id).where(SyncReceipt.item_id.in_(item_ids))).all()
        assert len(receipts) == len(set(receipts)) == len(item_ids)  # every item answered and kept once
    assert captured == set(centre)  # nothing lost, nothing extra
    storage = centre_app.extensions["storage"]
    for sha in session.exec(select(Attachment.sha256).join(EvidenceVersion).join(Evidence).where(
            Evidence.candidate_id == candidate.id)):
        with storage.open(sha) as stored:
            assert hashlib.sha256(stored.read()).hexdigest() == sha
    for device in devices:
        device.engine.dispose()
