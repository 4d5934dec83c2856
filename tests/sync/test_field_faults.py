"""Field sync faults with real processes (sync-guarantees.md, tests 15 to 20): the centre served by `tracker serve`,
devices enrolled and synced by `tracker field enrol` and `tracker sync`, each with its own SQLite file."""
import io
import time
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from PIL import Image
from sqlmodel import Session, func, select

from field_support import (  # noqa: F401 (world is a fixture)
    capture_on_device,
    centre_page,
    device_app,
    device_engine,
    enrol,
    revise_on_device,
    run,
    signed_in,
    sync,
    text,
    tracker,
    world,
)
from support.factories import TODAY
from support.web import form_token
from sync.centre import tokens
from tracker.audit import Actor
from tracker.models import (
    AssessorQualification,
    AuditEntry,
    Candidate,
    Device,
    Evidence,
    EvidenceVersion,
    OutboxItem,
    SyncConflict,
    SyncReceipt,
    SyncState,
    User,
)
from tracker.services import evidence as service
from tracker.services import people


def fresh(session: Session) -> Session:
    """End the test's own transaction so it reads what the centre process has committed since."""
    session.commit()
    session.expire_all()
    return session


def device_items(world, instance=None) -> list[OutboxItem]:
    engine = device_engine(world, instance)
    try:
        with Session(engine) as s:
            return list(s.exec(select(OutboxItem).order_by(OutboxItem.seq)))
    finally:
        engine.dispose()


def device_state(world, instance=None) -> SyncState:
    engine = device_engine(world, instance)
    try:
        with Session(engine) as s:
            return s.get(SyncState, 1)
    finally:
        engine.dispose()


def on_device(world, evidence_id, instance=None) -> Evidence | None:
    engine = device_engine(world, instance)
    try:
        with Session(engine) as s:
            return s.get(Evidence, evidence_id)
    finally:
        engine.dispose()


def stored(session: Session, evidence_id) -> int:
    """Return how many rows of this evidence the centre holds (exactly one once it has arrived)."""
    return session.exec(select(func.count()).select_from(Evidence).where(Evidence.id == evidence_id)).one()


def titles(session: Session, evidence_id) -> list[str]:
    """Return the centre's versions of a piece of evidence, oldest first, by title."""
    return [v.title for v in session.exec(select(EvidenceVersion).where(EvidenceVersion.evidence_id == evidence_id)
                                          .order_by(EvidenceVersion.number))]


def photo() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), "teal").save(out, "JPEG")
    return out.getvalue()


def record_on_pages(client, world, title: str, activity_date: date, with_photo: bool = False):
    """Record an observation on the device's own pages; return the answer."""
    url = f"/candidates/{world.candidate.id}/evidence/new/observation"
    token = form_token(text(client.get(url)))
    data = {"csrf_token": token, "title": title, "activity_date": activity_date.isoformat(),
            "setting": "long_term_care", "narrative": "Cara supported Mrs B to lead her review.",
            "criteria": ["2.1"], "note-2.1": "Good days and bad days", "countersignature_name": "Cara Candidate",
            "action": "submit"}
    if with_photo:
        data["files"] = [(io.BytesIO(photo()), "one.jpg")]
    return client.post(url, content_type="multipart/form-data", data=data)


def sync_now(client) -> str:
    """Press "Sync now" on the device's Sync page; return the page it leads to."""
    token = form_token(text(client.get("/sync/")))
    return text(client.post("/sync/now", data={"csrf_token": token}, follow_redirects=True))


# --- 15. Signing in again with items queued ------------------------------------------------------------------


def test_signing_in_again_keeps_the_queue_and_delivers_it_once(world, session, factory):
    device_id = device_state(world).device_id
    first = capture_on_device(world, factory, title="Before the withdrawal")
    revise_on_device(world, factory, first, "Before the withdrawal, corrected")
    tokens.revoke(session, factory.as_admin, device_id, "Reported lost")
    session.commit()
    withdrawn = sync(world)
    assert withdrawn.returncode == 1 and "token_revoked" in withdrawn.stderr and "sign in again" in withdrawn.stderr
    second = capture_on_device(world, factory, title="While withdrawn")
    assert enrol(world.centre, world.assessor.email, world.device).returncode == 1  # still withdrawn
    tokens.allow_back(session, factory.as_admin, device_id)
    session.commit()
    assert sync(world).returncode == 1  # the old sign-in stays unusable
    assert enrol(world.centre, world.assessor.email, world.device).returncode == 0
    back = sync(world)
    assert back.returncode == 0, back.stdout + back.stderr
    assert "Items pushed: 3" in back.stdout and "Everything is accepted" in back.stdout

    third = capture_on_device(world, factory, title="After the sign-in ran out")
    device = fresh(session).get(Device, device_id)
    device.expires_at = datetime.now(UTC) - timedelta(minutes=1)
    session.add(device)
    session.commit()
    expired = sync(world)
    assert expired.returncode == 1 and "token_expired" in expired.stderr
    assert enrol(world.centre, world.assessor.email, world.device).returncode == 0
    assert sync(world).returncode == 0

    fourth = capture_on_device(world, factory, title="After a new password")
    people.set_password(session, factory.as_admin, fresh(session).get(User, world.assessor.id),
                        "a brand new password")
    session.commit()
    assert enrol(world.centre, world.assessor.email, world.device).returncode == 1  # the old password is refused
    assert enrol(world.centre, world.assessor.email, world.device, password="a brand new password").returncode == 0
    done = sync(world)
    assert done.returncode == 0 and "Everything is accepted" in done.stdout

    fresh(session)
    assert [stored(session, e) for e in (first, second, third, fourth)] == [1, 1, 1, 1]
    assert titles(session, first) == ["Before the withdrawal", "Before the withdrawal, corrected"]
    items = device_items(world)
    assert [i.state for i in items] == ["sent"] * 5
    assert device_state(world).device_id == device_id  # the same device throughout
    assert session.exec(select(Device.id).where(Device.user_id == world.assessor.id)).all() == [device_id]
    receipts = session.exec(select(SyncReceipt.item_id).where(SyncReceipt.device_id == device_id)).all()
    assert sorted(receipts) == sorted(i.item_id for i in items)  # each item answered once


# --- 16. A centre restored from a backup --------------------------------------------------------------------


def centre_work(session, world) -> uuid.UUID:
    """Record evidence for the world's candidate at the centre itself; return its id."""
    fresh(session)
    assessor, candidate = session.get(User, world.assessor.id), session.get(Candidate, world.candidate.id)
    item = service.capture(session, Actor(assessor, today=TODAY), {
        "candidate_id": candidate.id, "unit": "002", "method": "observation",
        "title": "Recorded at the centre after the restore", "activity_date": TODAY - timedelta(days=1),
        "setting": "long_term_care", "narrative": "Observed at the centre.",
        "criteria": [{"code": "2.2", "note": "Used her words"}], "submit": True})
    session.commit()
    return item.id


@pytest.mark.parametrize("centre_first", [False, True], ids=["device-syncs-first", "centre-takes-work-first"])
def test_a_restored_centre_gets_back_everything_the_device_sent(world, session, factory, engine, tmp_path,
                                                                centre_first):
    kept = capture_on_device(world, factory, title="Before the backup")
    assert sync(world).returncode == 0
    backup = run(tracker("backup", "--out", str(tmp_path / "backup"), instance=world.centre.instance,
                         database_url=world.database_url))
    assert backup.returncode == 0, backup.stdout + backup.stderr
    lost = capture_on_device(world, factory, title="After the backup")
    revise_on_device(world, factory, kept, "Before the backup, corrected after it")
    assert sync(world).returncode == 0  # pushed and pulled: the device's cursor is past the backup

    world.centre.stop()
    session.close()
    engine.dispose()  # the test's connections go too, so they read the restored database
    restored = run(tracker("restore", str(tmp_path / "backup"), "--yes", instance=world.centre.instance,
                           database_url=world.database_url))
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert stored(session, lost) == 0 and titles(session, kept) == ["Before the backup"]  # really lost
    world.centre.start()

    new = centre_work(session, world) if centre_first else None
    result = sync(world)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Sent again: 2 item(s) the centre no longer had" in result.stdout
    assert "Everything is accepted" in result.stdout
    if not centre_first:
        new = centre_work(session, world)
        later = sync(world)
        assert later.returncode == 0 and "Sent again" not in later.stdout

    fresh(session)
    assert stored(session, kept) == stored(session, lost) == 1
    assert titles(session, kept) == ["Before the backup", "Before the backup, corrected after it"]
    assert titles(session, lost) == ["After the backup"]
    assert on_device(world, new) is not None  # the centre's new work reached the device
    assert {i.state for i in device_items(world)} == {"sent"}
    app = device_app(world.device)
    page = text(signed_in(app, world.assessor.email).get("/sync/"))
    app.extensions["engine"].dispose()
    assert "The centre no longer had 2 item(s) it had accepted from this device" in page


# --- 17. A device clock months wrong ---------------------------------------------------------------------


@pytest.mark.parametrize("days", [-182, 91], ids=["six-months-behind", "three-months-ahead"])
def test_a_wrong_device_clock_neither_refuses_real_work_nor_orders_anything(world, session, time_machine, days):
    centre_now = datetime.now(UTC)
    device_now = centre_now + timedelta(days=days)
    wrong = {"TRACKER_TEST_CLOCK": device_now.isoformat()}
    started = time.monotonic()
    assert sync(world, **wrong).returncode == 0  # the device learns the centre's clock
    # The device's own pages run on its own clock, which ran on through the sync (not back to where it began).
    time_machine.move_to(device_now + timedelta(seconds=time.monotonic() - started + 1), tick=True)
    app = device_app(world.device)
    client = signed_in(app, world.assessor.email)
    yesterday = TODAY - timedelta(days=1)
    assert record_on_pages(client, world, "Visit made yesterday", yesterday).status_code == 303
    ahead = record_on_pages(client, world, "Visit not made yet", TODAY + timedelta(days=5))
    assert ahead.status_code == 422 and "is in the future" in text(ahead)  # judged by the centre's day
    time_machine.move_to(device_now - timedelta(hours=30), tick=True)  # its clock jumps back a day
    client = signed_in(app, world.assessor.email)  # a sign-in from its "future" does not last
    assert record_on_pages(client, world, "Visit made the day before", TODAY - timedelta(days=2)).status_code == 303
    # With its clock gone back, what it learned no longer tells the centre's day: "future" is left to the centre.
    assert record_on_pages(client, world, "Dated ahead", TODAY + timedelta(days=30)).status_code == 303
    with Session(app.extensions["engine"], expire_on_commit=False) as s:
        local = {v.title: v.evidence_id for v in s.exec(select(EvidenceVersion))}
    future = local["Dated ahead"]
    app.extensions["engine"].dispose()
    time_machine.move_to(centre_now, tick=True)

    result = sync(world, **wrong)
    assert result.returncode == 1 and "Refused by the centre" in result.stdout and "1 refused" in result.stdout
    refused = next(i for i in device_items(world) if i.evidence_id == future)
    assert refused.state == "parked" and refused.code == "future_activity_date"
    fresh(session)
    assert stored(session, future) == 0
    first, second = (session.exec(select(EvidenceVersion).where(EvidenceVersion.title == t)).one()
                     for t in ("Visit made yesterday", "Visit made the day before"))
    assert first.evidence_id == local["Visit made yesterday"] and first.activity_date == yesterday
    # The device's clock is kept as metadata only; the centre's own clock stamps and orders what arrives.
    assert abs(first.captured_at - device_now) < timedelta(hours=1)
    assert abs(first.created_at - centre_now) < timedelta(hours=1)
    assert second.captured_at < first.captured_at
    seq = {e.entity_id: e.seq for e in session.exec(select(AuditEntry).where(AuditEntry.action == "evidence.captured"))}
    assert seq[str(first.evidence_id)] < seq[str(second.evidence_id)]  # in the order recorded, not by device time


# --- 18. Two devices of one assessor ---------------------------------------------------------------------


def test_two_devices_revising_the_same_evidence_keep_both_until_a_person_decides(world, session, factory,
                                                                                  tmp_path):
    second = tmp_path / "second"
    assert enrol(world.centre, world.assessor.email, second).returncode == 0
    shared = capture_on_device(world, factory, title="Shared observation")
    assert sync(world).returncode == 0
    assert sync(world, second).returncode == 0 and on_device(world, shared, second) is not None
    revise_on_device(world, factory, shared, "Revised on the first tablet")
    revise_on_device(world, factory, shared, "Revised on the second tablet", instance=second)
    assert sync(world).returncode == 0
    late = sync(world, second)
    assert late.returncode == 1 and "1 in conflict" in late.stdout
    assert "Conflict to resolve" in late.stdout and "now at version 2" in late.stdout

    app = device_app(second)
    client = signed_in(app, world.assessor.email)
    page = text(client.get(f"/sync/conflicts/{shared}"))
    assert "version 2" in page and "Revised on the first tablet" in page and "Revised on the second tablet" in page
    revise_on_device(world, factory, shared, "Revised again on the second tablet", instance=second)
    again = sync(world, second)
    assert again.returncode == 1 and "1 in conflict" in again.stdout and "1 waiting" in again.stdout
    fresh(session)
    assert titles(session, shared) == ["Shared observation", "Revised on the first tablet"]  # nothing overwritten
    conflict = session.exec(select(SyncConflict).where(SyncConflict.evidence_id == shared)).one()
    assert conflict.centre_version == 2 and conflict.resolved_at is None
    assert conflict.proposed["content"]["title"] == "Revised on the second tablet"
    listed = centre_page(world, "/conflicts/")
    assert "Shared observation" in listed or "Revised on the first tablet" in listed
    assert "Revised on the second tablet" in listed

    token = form_token(text(client.get(f"/sync/conflicts/{shared}")))
    assert client.post(f"/sync/conflicts/{shared}", data={"csrf_token": token, "choice": "device"}).status_code == 303
    app.extensions["engine"].dispose()
    settled = sync(world, second)
    assert settled.returncode == 0 and "Everything is accepted" in settled.stdout, settled.stdout
    fresh(session)
    assert titles(session, shared) == ["Shared observation", "Revised on the first tablet",
                                       "Revised again on the second tablet"]
    assert session.get(SyncConflict, conflict.item_id).resolution == "device"
    assert "No conflicts are waiting" in centre_page(world, "/conflicts/")


# --- 19. An item the centre cannot store ----------------------------------------------------------------


def _queue_nul(world, evidence_id: uuid.UUID) -> None:
    """Put a NUL into a queued capture's narrative, as a device queued it before its own forms refused one."""
    engine = device_engine(world)
    try:
        with Session(engine) as s:
            queued = s.exec(select(OutboxItem).where(OutboxItem.evidence_id == evidence_id)).one()
            queued.payload = queued.payload | {"narrative": "Mrs B said \x00 and smiled."}
            s.commit()
    finally:
        engine.dispose()


def test_an_item_the_centre_cannot_store_is_refused_and_the_rest_applied(world, session, factory):
    """Test 19: a NUL in pushed text is refused as unstorable on either database; the items behind it apply."""
    poison = capture_on_device(world, factory, title="Holds a NUL", narrative="Mrs B said yes and smiled.")
    _queue_nul(world, poison)
    behind = [capture_on_device(world, factory, title=f"Behind it {n}") for n in range(2)]
    result = sync(world)
    fresh(session)
    assert [stored(session, e) for e in behind] == [1, 1]
    items = {i.evidence_id: i for i in device_items(world)}
    assert result.returncode == 1 and "1 refused" in result.stdout
    assert items[poison].state == "parked" and items[poison].code == "unstorable"
    assert stored(session, poison) == 0
    assert all(items[e].state == "sent" for e in behind)


# --- 20. "Everything accepted" only when true --------------------------------------------------------------


def _held(world, session, factory) -> None:
    """An observation whose photo is gone from the device: the centre holds it until the file arrives."""
    app = device_app(world.device)
    assert record_on_pages(signed_in(app, world.assessor.email), world, "Photo lost", TODAY,
                           with_photo=True).status_code == 303
    app.extensions["engine"].dispose()
    for path in (world.device / "media").rglob("*"):
        if path.is_file():
            path.unlink()


def _refused(world, session, factory) -> None:
    capture_on_device(world, factory, title="Observer no longer eligible")
    for row in fresh(session).exec(select(AssessorQualification).where(
            AssessorQualification.user_id == world.assessor.id)):
        session.delete(row)
    session.commit()


def _conflict(world, session, factory) -> None:
    evidence_id = capture_on_device(world, factory, title="Changed in two places")
    assert sync(world).returncode == 0
    fresh(session)
    service.revise(session, Actor(session.get(User, world.assessor.id), today=TODAY), evidence_id,
                   {k: v for k, v in factory.evidence_data(world.candidate, "observation", title="At the centre")
                    .items() if k not in ("candidate_id", "unit", "method", "submit", "signatures")},
                   base_version=1)
    session.commit()
    revise_on_device(world, factory, evidence_id, "On the device")


def _unsent(world, session, factory) -> None:
    capture_on_device(world, factory, title="Recorded with no network")
    world.centre.stop()


NOT_DONE = {  # state: (make it, the line's words, the summary's words, the Sync page's words)
    "held": (_held, "Waiting: ", "1 waiting", "Waiting"),
    "refused": (_refused, "Refused by the centre: ", "1 refused", "Refused: needs your attention"),
    "conflict": (_conflict, "Conflict to resolve: ", "1 in conflict", "Conflict:"),
    "unsent": (_unsent, "Not sent yet: ", "1 not sent yet", "Sent, no answer"),
}


@pytest.mark.parametrize("state", NOT_DONE)
def test_sync_says_everything_is_accepted_only_when_it_is(world, session, factory, state):
    make, line, summary, shown = NOT_DONE[state]
    make(world, session, factory)
    result = sync(world)
    assert result.returncode == 1, result.stdout + result.stderr
    assert line in result.stdout and f"Not everything is accepted: {summary}." in result.stdout
    assert "Everything is accepted" not in result.stdout
    app = device_app(world.device)
    page = sync_now(signed_in(app, world.assessor.email))
    app.extensions["engine"].dispose()
    assert "Everything is accepted" not in page and "Nothing is waiting" not in page
    assert shown in page and "1 item waiting" in page
    if state != "unsent":
        assert f"Not everything is accepted: {summary}." in page
    else:
        assert "could not be reached" in page
