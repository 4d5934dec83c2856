"""The device's sync client: strict acknowledgements (G5), parking, stop answers, FIFO, pulls applied whole."""
import hashlib
import json
import uuid

import pytest
from sqlmodel import Session, func, select

from device_support import Faulty, json_answer, nothing_to_do, rows_of
from support.factories import TODAY
from sync.centre import pull
from sync.device.client import apply_page
from tracker.audit import Actor
from tracker.models import (
    AssessorQualification,
    AuditEntry,
    Candidate,
    Evidence,
    EvidenceVersion,
    OutboxItem,
    SyncReceipt,
    SyncState,
    User,
)
from tracker.services import deletions
from tracker.services import evidence as service


def capture(tablet, field, factory, method="observation", **overrides) -> uuid.UUID:
    """Record evidence (an observation by default) on the device, committed; return its id."""
    with Session(tablet.engine, expire_on_commit=False) as s:
        me = Actor(s.get(User, field.assessor.id), today=TODAY)
        item = service.capture(s, me, factory.evidence_data(field.candidate, method, **overrides))
        s.commit()
        return item.id


def revise(tablet, field, factory, evidence_id, title: str) -> None:  # noqa: ANN001
    """Save a second version of the device's evidence on the device, committed (queued, not yet sent)."""
    with Session(tablet.engine, expire_on_commit=False) as s:
        me = Actor(s.get(User, field.assessor.id), today=TODAY)
        content = {k: v for k, v in factory.evidence_data(field.candidate, "observation", title=title).items()
                   if k not in ("candidate_id", "unit", "method", "submit", "signatures")}
        service.revise(s, me, evidence_id, content, base_version=1)
        s.commit()


def items(tablet) -> list[OutboxItem]:
    with Session(tablet.engine) as s:
        return list(s.exec(select(OutboxItem).order_by(OutboxItem.seq)))


def on_centre(session, evidence_id) -> int:
    return session.exec(select(func.count()).select_from(Evidence).where(Evidence.id == evidence_id)).one()


def state(tablet) -> SyncState:
    with Session(tablet.engine) as s:
        return s.get(SyncState, 1)


@pytest.mark.parametrize("fault", ["drop", "504", "html200", "bare200", "cut", "timeout"])
def test_no_explicit_acknowledgement_leaves_the_item_unsent(tablet, field, factory, session, fault):
    """Test 4: the centre may have committed, but without a verdict the item stays unsent; the retry is a duplicate."""
    evidence_id = capture(tablet, field, factory)
    report = tablet.client(Faulty(tablet.centre, [fault])).sync()
    assert report.error and "could not be reached" in report.error
    [item] = items(tablet)
    assert item.state == "attempted" and item.attempts == 1
    assert state(tablet).last_error == report.error
    assert tablet.client().sync().ok
    [item] = items(tablet)
    assert item.state == "sent"
    assert item.code is None or fault == "timeout" or item.message == "Already received; nothing was changed."
    assert on_centre(session, evidence_id) == 1
    assert session.exec(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.entity_id == str(evidence_id), AuditEntry.action == "evidence.captured")).one() == 1


def test_a_refused_item_is_parked_with_its_reason_and_the_queue_moves_on(tablet, field, factory, session):
    """G18, G20: an observer whose eligibility was withdrawn meanwhile is refused; later items still sync."""
    bad = capture(tablet, field, factory)
    for row in session.exec(select(AssessorQualification).where(
            AssessorQualification.user_id == field.assessor.id)):
        session.delete(row)
    session.commit()
    later = capture(tablet, field, factory, method="professional_discussion", setting=None)
    report = tablet.client().sync()
    assert not report.ok and report.error is None
    first, second = items(tablet)
    assert (first.state, first.code) == ("parked", "observer_not_eligible")
    assert first.message and len(report.parked) == 1
    assert second.state in ("sent", "parked")
    assert on_centre(session, bad) == 0
    with Session(tablet.engine) as s:  # what the assessor wrote is still on the device
        assert s.get(Evidence, bad) is not None
    del later


@pytest.mark.parametrize(("status", "code", "needs"), [(401, "token_revoked", "sign_in"),
                                                       (426, "upgrade_required", "update")])
def test_sign_in_again_or_update_keeps_the_queue(tablet, field, factory, status, code, needs):
    capture(tablet, field, factory)
    report = tablet.client(lambda *a, **k: json_answer(status, {"error": code, "message": "no"})).sync()
    assert report.error and not report.ok
    assert state(tablet).needs == needs
    [item] = items(tablet)
    assert item.state == "attempted"
    assert tablet.client().sync().ok
    assert state(tablet).needs is None and state(tablet).last_success_at is not None


def test_out_of_order_arrival_ends_as_in_order(tablet, field, factory, session):
    """Test 8: a create and two updates, the create arriving last, end as if sent in order."""
    evidence_id = capture(tablet, field, factory, submit=False)
    with Session(tablet.engine, expire_on_commit=False) as s:
        me = Actor(s.get(User, field.assessor.id), today=TODAY)
        for n, title in ((1, "Second"), (2, "Third")):
            content = {k: v for k, v in factory.evidence_data(field.candidate, "observation", title=title).items()
                       if k not in ("candidate_id", "unit", "method", "submit", "signatures")}
            service.revise(s, me, evidence_id, content, base_version=n)
            s.commit()

    def reorder(method, path, *, body=None, **kw):
        if path == "/api/v1/push" and not reorder.done:
            import json
            data = json.loads(body)
            data["items"] = list(reversed(data["items"]))[:2]  # the updates arrive, the create does not
            reorder.done = True
            return tablet.centre(method, path, body=json.dumps(data).encode(), **kw)
        return tablet.centre(method, path, body=body, **kw)

    reorder.done = False
    tablet.client(reorder).sync()
    assert [i.state for i in items(tablet)] == ["attempted", "held", "held"]
    assert tablet.client().sync().ok
    item = session.get(Evidence, evidence_id, populate_existing=True)
    assert item.current_version == 3
    titles = session.exec(select(EvidenceVersion.title).where(EvidenceVersion.evidence_id == evidence_id)
                          .order_by(EvidenceVersion.number)).all()
    assert titles[1:] == ["Second", "Third"]
    assert session.exec(select(func.count()).select_from(SyncReceipt)).one() == 3


def test_a_sync_with_nothing_to_do_is_one_pull(tablet):
    tablet.client().sync()
    tablet.centre.requests.clear()
    report = tablet.client().sync()
    assert report.ok and tablet.centre.requests == [("GET", "/api/v1/pull")]


class SmallCentre:
    """A centre that takes at most ``limit`` items per push, as an older centre does, and counts what it is sent."""

    def __init__(self, inner, limit: int):  # noqa: ANN001
        self.inner, self.limit, self.sizes = inner, limit, []

    def __call__(self, method: str, path: str, **kw):  # noqa: ANN204
        """Refuse a push of more than the limit as the centre's API does; pass anything else on."""
        if path == "/api/v1/push":
            self.sizes.append(len(json.loads(kw["body"])["items"]))
            if self.sizes[-1] > self.limit:
                return json_answer(413, {"error": "batch_too_large", "message": "Send at most 2 items at a time.",
                                         "limit": self.limit})
        return self.inner(method, path, **kw)


def test_a_centre_taking_smaller_batches_gets_every_item_in_its_size(tablet, field, factory, session):
    ids = [capture(tablet, field, factory) for _ in range(5)]
    centre = SmallCentre(tablet.centre, 2)
    assert tablet.client(centre).sync().ok
    assert centre.sizes == [5, 2, 2, 1]
    assert [i.state for i in items(tablet)] == ["sent"] * 5
    assert all(on_centre(session, evidence_id) == 1 for evidence_id in ids)


# --- Pull ----------------------------------------------------------------------------------------------------


def page_of(session, cursor, **tables):
    """Return a page carrying these centre tables' rows."""
    return nothing_to_do(cursor) | {"tables": {t: rows_of(session, t) for t in tables}}


def test_a_page_and_its_cursor_are_applied_together(tablet, field, factory, session):
    """Test 9: interrupted between receiving and applying a page, nothing is applied and the cursor stays."""
    made = factory.capture(field.assessor, field.candidate, "observation", title="Made at the centre")
    session.commit()
    page = page_of(session, "7", evidence=1, evidenceversion=1, evidencecriterion=1)
    tablet.centre.pages.append(page)

    def cut(_page):
        raise ConnectionResetError("power cut")

    with pytest.raises(ConnectionResetError):
        tablet.client().pull(before_apply=cut)
    with Session(tablet.engine) as s:
        assert s.get(Evidence, made.id) is None and s.get(SyncState, 1).cursor == "1"
    tablet.centre.pages.append(page)
    tablet.client().pull()
    with Session(tablet.engine) as s:
        assert s.get(Evidence, made.id) is not None and s.get(SyncState, 1).cursor == "7"


def test_killed_between_data_and_cursor_applies_neither(tablet, field, factory, session, monkeypatch):
    """Test 9: the rows and the cursor are one transaction, so a failure after the rows leaves neither."""
    made = factory.capture(field.assessor, field.candidate, "observation")
    session.commit()
    page = page_of(session, "9", evidence=1, evidenceversion=1)
    real_get = Session.get

    def dies(self, model, key, **kw):
        if model is SyncState:
            raise SystemExit("killed")
        return real_get(self, model, key, **kw)

    monkeypatch.setattr(Session, "get", dies)
    with pytest.raises(SystemExit):
        apply_page(tablet.engine, page)
    monkeypatch.setattr(Session, "get", real_get)
    with Session(tablet.engine) as s:
        assert s.get(Evidence, made.id) is None and s.get(SyncState, 1).cursor == "1"
    apply_page(tablet.engine, page)
    apply_page(tablet.engine, page)  # applied again: still one row each
    with Session(tablet.engine) as s:
        assert s.exec(select(func.count()).select_from(EvidenceVersion).where(
            EvidenceVersion.evidence_id == made.id)).one() == 1


def test_a_pull_never_overwrites_unsent_local_changes(tablet, field, factory, session):
    """G11: the centre's older copy of evidence with an unsent revision does not replace the device's."""
    evidence_id = capture(tablet, field, factory, submit=False, title="Mine")
    assert tablet.client().sync().ok
    page = page_of(session, "5", evidence=1, evidenceversion=1)
    revise(tablet, field, factory, evidence_id, "Newer")
    apply_page(tablet.engine, page)
    with Session(tablet.engine) as s:
        assert s.get(Evidence, evidence_id).current_version == 2


def test_removed_candidates_leave_the_device_but_the_queue_stays(tablet, field, factory, session):
    """G16: a candidate out of scope is deleted from the device; unsent items stay for the centre to answer."""
    evidence_id = capture(tablet, field, factory)
    apply_page(tablet.engine, nothing_to_do("3") | {"removed": {"candidate": [str(field.candidate.id)]}})
    with Session(tablet.engine) as s:
        assert s.get(Candidate, field.candidate.id) is None and s.get(Evidence, evidence_id) is None
    assert [i.state for i in items(tablet)] == ["pending"]


def test_evidence_deleted_at_the_centre_leaves_the_device_unless_it_has_unsent_changes(tablet, field, factory,
                                                                                        session):
    """G15/G16: a draft the administrator deleted at the centre goes from the device at its next sync; one with
    an unsent change stays readable, and the centre's "deleted" answer shows for the assessor to settle."""
    gone = capture(tablet, field, factory, submit=False, title="Recorded against the wrong candidate")
    kept = capture(tablet, field, factory, submit=False, title="Still being written")
    assert tablet.client().sync().ok
    revise(tablet, field, factory, kept, "Rewritten")
    cursor = pull.pull(session, field.assessor, None).cursor  # where the centre's changes stand now
    for evidence_id in (gone, kept):
        deletions.delete_draft(session, factory.as_admin, evidence_id, "Wrong candidate")
    session.commit()
    page = pull.pull(session, field.assessor, cursor)  # the centre's real answer to the device's next pull
    assert page.removed["evidence"] == sorted(str(e) for e in (gone, kept))
    tablet.centre.pages.append(json.loads(json.dumps(page.as_dict(), default=str)))
    tablet.client().sync()
    with Session(tablet.engine) as s:
        assert s.get(Evidence, gone) is None
        assert s.exec(select(func.count()).select_from(EvidenceVersion).where(
            EvidenceVersion.evidence_id == gone)).one() == 0
        assert s.get(Evidence, kept) is not None
        assert s.exec(select(EvidenceVersion.title).where(EvidenceVersion.evidence_id == kept).order_by(
            EvidenceVersion.number)).all() == ["Still being written", "Rewritten"]
    parked = [i for i in items(tablet) if i.evidence_id == kept and i.state != "sent"]
    assert parked and parked[-1].code == "deleted" and "deleted at the centre" in parked[-1].message


def test_resync_required_rebuilds_and_sends_again_what_the_centre_lost(tablet, field, factory, session):
    """G10, G21: a centre restored from backup lost evidence the device had sent; the device fetches everything
    again and queues the very item it had sent (its own id), without dropping its copy."""
    evidence_id = capture(tablet, field, factory)
    assert tablet.client().sync().ok
    (sent,) = items(tablet)
    calls = []

    def restored(method, path, *, query=None, body=None, **kw):
        calls.append((path, dict(query or {})))
        if path == "/api/v1/pull" and "after" in (query or {}):
            return json_answer(409, {"error": "resync_required", "message": "Start again."})
        if path == "/api/v1/pull":  # the restored centre's full snapshot: the candidate, without the evidence
            return json_answer(200, nothing_to_do("2") | {"reset": True, "tables": {
                "candidate": [r for r in rows_of(session, "candidate") if r["id"] == str(field.candidate.id)]},
                "acknowledged": {"count": 0, "digest": hashlib.sha256(b"").hexdigest()}})
        if path == "/api/v1/receipts":  # it keeps no receipt of anything
            return json_answer(200, {"missing": json.loads(body)["item_ids"]})
        return tablet.centre(method, path, query=query, body=body, **kw)

    client = tablet.client(restored)
    client.pull()
    assert client.reconcile() == 1
    assert [p for p, q in calls if p == "/api/v1/pull"][-1:] and "after" not in calls[-2][1]
    (again,) = items(tablet)
    assert (again.item_id, again.state, again.acknowledged, again.code) == (sent.item_id, "pending", False,
                                                                             "sent_again")
    assert state(tablet).cursor == "2"
    with Session(tablet.engine) as s:
        assert s.get(Evidence, evidence_id) is not None  # the device's copy stays


# --- Background sync --------------------------------------------------------------------------------------------


def test_backoff_grows_with_failures_with_jitter_and_resets_on_success():
    from sync.device.client import Report
    from sync.device.field import Syncer

    answers = [Report(error="unreachable")] * 4 + [Report()]
    syncer = Syncer(lambda: type("C", (), {"sync": lambda self: answers.pop(0)})(), interval=60, max_backoff=900)
    delays = []
    for _ in range(4):
        syncer.now()
        delays.append(syncer.delay())
    assert syncer.failures == 4
    assert 7.5 <= delays[0] <= 15 and 30 <= delays[2] <= 60 and all(d <= 900 for d in delays)
    assert len({round(syncer.delay(), 6) for _ in range(5)}) > 1  # jittered
    syncer.now()
    assert syncer.failures == 0 and syncer.delay() == 60


def test_the_background_thread_syncs_without_new_local_writes(tablet, field, factory, session):
    """G18: queued work goes out on the timer once the centre is reachable, with nothing new recorded."""
    import time

    from sync.device.field import Syncer

    evidence_id = capture(tablet, field, factory)
    network = Faulty(tablet.centre)
    network.blocked = True
    syncer = Syncer(lambda: tablet.client(network), interval=0.2, max_backoff=0.4)
    syncer.start()
    try:
        for _ in range(150):  # the thread's first round, however long a loaded machine takes to run it
            if syncer.failures:
                break
            time.sleep(0.1)
        assert syncer.failures >= 1 and items(tablet)[0].state != "sent"
        network.blocked = False
        for _ in range(100):
            if items(tablet)[0].state == "sent":
                break
            time.sleep(0.1)
    finally:
        syncer.stop()
        syncer.thread.join(5)
    assert items(tablet)[0].state == "sent" and on_centre(session, evidence_id) == 1


# --- The real transport against a misbehaving network ------------------------------------------------------------


@pytest.fixture
def bad_proxy():
    """An HTTP server on 127.0.0.1 that answers like a captive portal, a gateway, or a cut connection."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        mode = "html"

        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if Handler.mode == "html":
                body = b"<html><form>Accept the Wi-Fi terms</form></html>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
            elif Handler.mode == "504":
                body = b"Gateway Timeout"
                self.send_response(504)
                self.send_header("Content-Type", "text/plain")
            else:  # a body cut short of what its length promised
                body = b'{"verdicts": [{"item_'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "500")
            if Handler.mode != "cut":
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Handler, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("mode", ["html", "504", "cut"])
def test_the_http_transport_counts_no_bad_answer_as_success(tablet, field, factory, bad_proxy, mode):
    from sync.device.client import HttpTransport

    handler, url = bad_proxy
    handler.mode = mode
    capture(tablet, field, factory)
    report = tablet.client(HttpTransport(url, timeout=5)).sync()
    assert report.error and "could not be reached" in report.error
    assert [i.state for i in items(tablet)] == ["attempted"]
