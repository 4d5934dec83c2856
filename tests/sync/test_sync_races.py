"""Two pushes of the same item at the same instant (sync-guarantees test 2), on a file or server database."""
import json
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import text
from sqlmodel import Session

from support.processes import child_env
from sync_support import capture, count, evidence_id, push, register
from tracker.models import AuditEntry, Device, Evidence, SyncReceipt, User


def _push_in_thread(engine, device_id, user_id, batch, results, errors, start=None):  # noqa: ANN001
    """Push in a session of the thread's own, as a second web worker would, and commit."""
    try:
        with Session(engine, expire_on_commit=False) as session:
            device, user = session.get(Device, device_id), session.get(User, user_id)
            if start is not None:
                start.wait(timeout=10)
            answer = push(session, device, user, batch)
            session.commit()
            results.append(answer[0])
    except Exception as exc:  # noqa: BLE001 - the test reports any exception as a failure
        errors.append(exc)


def _one_copy(engine, batch) -> None:
    """Assert the item is stored once: one evidence, one receipt, one capture in the audit log."""
    with Session(engine) as session:
        key = evidence_id(batch[0])
        assert count(session, Evidence, Evidence.id == key) == 1
        assert count(session, SyncReceipt) == 1
        assert count(session, AuditEntry, AuditEntry.action == "evidence.captured",
                     AuditEntry.entity_id == str(key)) == 1


def test_two_threads_push_the_same_item_at_once(field, session, factory, engine):
    """The same item from two workers at the same instant: one row, one "applied", one "duplicate"."""
    batch = [capture(factory, field.candidate, 1)]
    session.commit()
    start, results, errors = threading.Barrier(2), [], []
    threads = [threading.Thread(target=_push_in_thread, args=(engine, field.device.id, field.assessor.id, batch,
                                                              results, errors, start)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sorted(a.verdict for a in results) == ["applied", "duplicate"]
    assert results[0].result == results[1].result
    _one_copy(engine, batch)


def _wait_until_blocked(engine, backend) -> None:
    """Wait until the second push is waiting on the first one's uncommitted write."""
    if backend == "sqlite":
        time.sleep(0.5)  # SQLite: the second push waits for the write lock (busy timeout), nothing to observe
        return
    with engine.connect() as conn:
        for _ in range(1200):  # up to a minute: a loaded machine is slow to start the thread and connect
            waiting = conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                        "AND datname = current_database()")).scalar_one()
            if waiting:
                return
            conn.rollback()  # PostgreSQL shows pg_stat_activity as it was when a transaction first read it
            time.sleep(0.05)
    raise AssertionError("the second push never waited for the first")


def test_race_on_the_unique_key_becomes_duplicate(backend, field, session, factory, engine, caplog):
    """Two devices of one person send one item while the first is uncommitted: the loser answers "duplicate"."""
    other = register(session, field.assessor, "Phone")
    batch = [capture(factory, field.candidate, 1)]
    session.commit()
    first = push(session, field.device, field.assessor, batch)
    results, errors = [], []
    second = threading.Thread(target=_push_in_thread, args=(engine, other.id, field.assessor.id, batch, results,
                                                            errors))
    with caplog.at_level(logging.INFO, logger="sync.centre.push"):
        second.start()
        _wait_until_blocked(engine, backend)
        session.commit()
        second.join(timeout=60)
    assert errors == []
    assert (first[0].verdict, results[0].verdict, results[0].result) == ("applied", "duplicate", first[0].result)
    if backend == "postgresql":
        # The second push really hit the unique key (writing its run) and answered from the winner's receipt.
        assert "could not be written together" in caplog.text and "UniqueViolation" in caplog.text
    _one_copy(engine, batch)


PUSHER = """
import json, pathlib, sys, time, uuid
from sqlmodel import Session
from sync.centre.push import apply_batch
from tracker.db import make_engine
from tracker.models import Device, User
from support.factories import TODAY

url, device_id, user_id, batch, go = sys.argv[1:]
engine = make_engine(url)
with Session(engine) as session:
    device, user = session.get(Device, uuid.UUID(device_id)), session.get(User, uuid.UUID(user_id))
    while not pathlib.Path(go).exists():
        time.sleep(0.005)
    answer = apply_batch(session, device, user, json.loads(batch), TODAY)
    session.commit()
print(json.dumps(answer[0].as_dict()))
engine.dispose()
"""


def test_two_processes_push_the_same_item_at_once(field, session, factory, engine, database_url, tmp_path):
    """The same item from two server processes at once: one row, one "applied", one "duplicate"."""
    batch = [capture(factory, field.candidate, 1)]
    session.commit()
    go = tmp_path / "go"
    args = [sys.executable, "-c", PUSHER, database_url, str(field.device.id), str(field.assessor.id),
            json.dumps(batch), str(go)]
    env = child_env(Path(__file__).parent.parent, Path(__file__).parent)  # for support and sync_support
    workers = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
               for _ in range(2)]
    time.sleep(1.5)  # both interpreters are up and waiting for the signal
    go.touch()
    outputs = [worker.communicate(timeout=60) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], [err for _, err in outputs]
    answers = [json.loads(out) for out, _ in outputs]
    assert sorted(a["verdict"] for a in answers) == ["applied", "duplicate"]
    assert answers[0]["result"] == answers[1]["result"]
    _one_copy(engine, batch)
