"""Malformed items and failures inside one item: a verdict for that item, never an exception out of the batch."""
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, create_engine

import sync.centre.push
from sync_support import capture, count, evidence_id, item, push, snapshot, verdicts
from tracker.models import AuditEntry, Device, Evidence, SyncReceipt, User, new_id

UUID = "01a20af3-04f1-747e-97f7-846e505994e9"
CAPTURE = "evidence.capture"


@pytest.mark.parametrize("raw", [
    pytest.param("evidence please", id="not-a-record"),
    pytest.param(None, id="null"),
    pytest.param({"seq": 1, "kind": CAPTURE, "payload": {}}, id="no-item-id"),
    pytest.param({"item_id": "item-1", "seq": 1, "kind": CAPTURE, "payload": {}}, id="item-id-not-uuid"),
    pytest.param({"item_id": UUID, "seq": "1", "kind": CAPTURE, "payload": {}}, id="seq-as-text"),
    pytest.param({"item_id": UUID, "seq": True, "kind": CAPTURE, "payload": {}}, id="seq-as-boolean"),
    pytest.param({"item_id": UUID, "seq": 0, "kind": CAPTURE, "payload": {}}, id="seq-zero"),
    pytest.param({"item_id": UUID, "seq": 1, "payload": {}}, id="no-kind"),
])
def test_item_with_a_broken_envelope_is_refused_unkept_and_the_rest_applied(field, session, factory, raw):
    """An item the centre cannot even identify is refused, not kept, and the valid item after it is applied."""
    answers = push(session, field.device, field.assessor, [raw, capture(factory, field.candidate, 1)])
    assert [(a.verdict, a.code) for a in answers] == [("refused", "invalid_input"), ("applied", None)]
    assert answers[0].message
    assert count(session, SyncReceipt) == 1


def _unknown_criterion(f, c):
    return item(1, CAPTURE, f.evidence_data(c, "observation", id=new_id(), criteria=[{"code": "9.9"}]))


@pytest.mark.parametrize(("make", "phrase"), [
    pytest.param(lambda f, c: item(1, "evidence.delete", {"evidence_id": UUID}), "does not know how to apply",
                 id="unknown-kind"),
    pytest.param(lambda f, c: item(1, CAPTURE, ["not", "fields"]), "set of named fields", id="payload-not-a-record"),
    pytest.param(lambda f, c: item(1, CAPTURE, f.evidence_data(c, "observation")), "id the device gave it",
                 id="capture-without-evidence-id"),
    pytest.param(lambda f, c: item(1, CAPTURE, f.evidence_data(c, "observation", id=new_id(), mood="happy")),
                 "Mood", id="capture-with-unknown-field"),
    pytest.param(_unknown_criterion, "no criterion 9.9", id="unknown-criterion"),
    pytest.param(lambda f, c: item(1, "evidence.revise", {"evidence_id": UUID, "content": {}}), "Base version",
                 id="revise-without-base-version"),
    pytest.param(lambda f, c: item(1, "evidence.sign", {"evidence_id": UUID, "version": 1, "content_hash": "x"}),
                 "Content hash", id="sign-with-malformed-hash"),
])
def test_item_with_bad_content_is_refused_kept_and_the_rest_applied(field, session, factory, make, phrase):
    """A well-addressed item with bad content is refused with a message, kept (its seq is used) and the next applied."""
    answers = push(session, field.device, field.assessor, [make(factory, field.candidate),
                                                           capture(factory, field.candidate, 2)])
    assert [(a.verdict, a.code) for a in answers] == [("refused", "invalid_input"), ("applied", None)]
    assert phrase in answers[0].message
    assert count(session, SyncReceipt) == 2


def test_non_list_push_is_refused_plainly(field, session):
    """A push that is not a list of items is refused as a whole, in words."""
    from tracker.errors import InvalidInput

    with pytest.raises(InvalidInput, match="list of items"):
        push(session, field.device, field.assessor, {"item_id": UUID})


def _failing_together(monkeypatch, error: Exception) -> None:
    """Make every write of a run of captures fail after writing everything, as a dropped connection would."""
    real = sync.centre.push.evidence.write_captures

    def write_then_fail(session, actor, captures):  # noqa: ANN001
        real(session, actor, captures)
        raise error

    monkeypatch.setattr(sync.centre.push.evidence, "write_captures", write_then_fail)


def _failing_once(monkeypatch, error: Exception) -> None:
    """Make the first capture applied on its own write everything and then fail, as a dropped connection or a bug
    would (the run written together fails too, so each capture is applied on its own)."""
    _failing_together(monkeypatch, error)
    real, calls = sync.centre.push.KINDS[CAPTURE], []

    def capture_then_fail(session, actor, payload):  # noqa: ANN001
        result = real(session, actor, payload)
        calls.append(result)
        if len(calls) == 1:
            raise error
        return result

    monkeypatch.setitem(sync.centre.push.KINDS, CAPTURE, capture_then_fail)


@pytest.mark.parametrize("error", [
    pytest.param(OperationalError("INSERT INTO evidence", {}, Exception("disk I/O error")), id="database-error"),
    pytest.param(RuntimeError("a bug"), id="bug"),
])
def test_failure_inside_an_item_undoes_only_that_item(field, session, factory, monkeypatch, caplog, error):
    """The failed item is rolled back whole and answered "server_error"; the items behind it do not wait for it
    (G12, G25); the retry applies it, once."""
    batch = [capture(factory, field.candidate, 1), capture(factory, field.candidate, 2)]
    before = snapshot(session)
    _failing_once(monkeypatch, error)
    answers = push(session, field.device, field.assessor, batch)
    assert [(a.verdict, a.code) for a in answers] == [("refused", "server_error"), ("applied", None)]
    assert "nothing has been lost" in answers[0].message
    assert count(session, Evidence, Evidence.id == evidence_id(batch[0])) == 0
    assert count(session, Evidence, Evidence.id == evidence_id(batch[1])) == 1
    assert "failed" in caplog.text
    assert verdicts(push(session, field.device, field.assessor, batch)) == ["applied", "duplicate"]
    assert count(session, Evidence, Evidence.id == evidence_id(batch[0])) == 1
    assert snapshot(session)["Evidence"] == before["Evidence"] + 2


def test_a_run_that_cannot_be_written_together_is_applied_item_by_item(field, session, factory, monkeypatch,
                                                                        caplog):
    """A failed write of a run of captures leaves nothing of it; each item is then applied on its own, once."""
    batch = [capture(factory, field.candidate, n) for n in (1, 2, 3)]
    entries = count(session, AuditEntry)
    _failing_together(monkeypatch, OperationalError("INSERT INTO evidence", {}, Exception("disk I/O error")))
    answers = push(session, field.device, field.assessor, batch)
    assert verdicts(answers) == ["applied", "applied", "applied"]
    assert "could not be written together" in caplog.text
    assert [count(session, Evidence, Evidence.id == evidence_id(i)) for i in batch] == [1, 1, 1]
    assert count(session, SyncReceipt) == 3
    assert count(session, AuditEntry) == entries + 3


def _hold_device_row(conn, backend: str, device_id) -> None:  # noqa: ANN001
    """Take, on another connection, the lock a push from the device needs."""
    if backend == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.execute(text("SELECT id FROM device WHERE id = :id FOR UPDATE"), {"id": device_id})


def _impatient_engine(url: str, backend: str):  # noqa: ANN202
    """An engine whose connections give up on a lock after a tenth of a second."""
    if backend == "sqlite":
        return create_engine(url, connect_args={"timeout": 0.1})
    return create_engine(url, connect_args={"options": "-c lock_timeout=100"})


def test_a_busy_database_is_answered_retryable_for_every_item(backend, field, session, factory, engine,
                                                               database_url):
    """When the device's lock cannot be had in time, every item is answered "server_busy", nothing kept."""
    batch = [capture(factory, field.candidate, 1)]
    session.commit()
    impatient = _impatient_engine(database_url, backend)
    try:
        with engine.connect() as holder, Session(impatient) as pusher:
            _hold_device_row(holder, backend, field.device.id)
            device, user = pusher.get(Device, field.device.id), pusher.get(User, field.assessor.id)
            answers = push(pusher, device, user, batch)
            assert [(a.verdict, a.code) for a in answers] == [("refused", "server_busy")]
            holder.rollback()
    finally:
        impatient.dispose()
    assert verdicts(push(session, field.device, field.assessor, batch)) == ["applied"]


def test_audit_is_untouched_by_refusals(field, session, factory):
    """A refused item leaves no audit entry, only its receipt."""
    before = count(session, AuditEntry)
    push(session, field.device, field.assessor, [capture(factory, field.candidate, 1, simulated=True)])
    assert count(session, AuditEntry) == before
