"""The audit chain: entries numbered in commit order and hash-linked; any change or removal is found."""
import threading

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlmodel import Session, select

from tracker.audit import GENESIS, SYSTEM, check_chain, record, verify
from tracker.cli import main
from tracker.db import make_engine, transaction, upgrade
from tracker.models import AuditEntry, AuditHead, Candidate


def _entries(session):
    return list(session.exec(select(AuditEntry).order_by(AuditEntry.seq)))


def _unguarded(engine, statement, **params):
    """Run a statement with the database's append-only guard lifted, as someone editing the file would."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE auditentry DISABLE TRIGGER auditentry_append_only"))
            conn.execute(text(statement), params)
            conn.execute(text("ALTER TABLE auditentry ENABLE TRIGGER auditentry_append_only"))
        else:
            conn.execute(text("DROP TRIGGER auditentry_no_update"))
            conn.execute(text("DROP TRIGGER auditentry_no_delete"))
            conn.execute(text(statement), params)


def test_entries_are_numbered_and_linked(session, factory):
    """Every change appends an entry whose seq follows the last and whose prev_hash is the last one's hash."""
    candidate = factory.candidate()
    session.commit()
    entries = _entries(session)
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    assert entries[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in zip(entries, entries[1:], strict=False))
    head = session.get(AuditHead, 1)
    assert (head.seq, head.hash) == (entries[-1].seq, entries[-1].hash)
    assert verify(session).intact and verify(session).entries == len(entries)
    registered = [e for e in entries if e.action == "candidate.registered"]
    assert registered[0].candidate_id == candidate.id


def test_changed_entry_is_named(engine, session, factory):
    """Changing one entry's details is reported at that entry."""
    factory.candidate()
    session.commit()
    victim = _entries(session)[2].seq
    _unguarded(engine, "UPDATE auditentry SET action = 'forged' WHERE seq = :seq", seq=victim)
    session.expire_all()
    result = verify(session)
    assert not result.intact and result.broken_at == victim
    assert f"entry {victim}" in result.reason and "changed" in result.reason


def test_removed_entry_is_named(engine, session, factory):
    """Removing an entry from the middle, or the newest one, is reported."""
    factory.candidate()
    session.commit()
    seqs = [e.seq for e in _entries(session)]
    _unguarded(engine, "DELETE FROM auditentry WHERE seq = :seq", seq=seqs[1])
    session.expire_all()
    assert verify(session).broken_at == seqs[1] and "missing" in verify(session).reason
    remaining = _entries(session)
    assert check_chain(remaining[:1], session.get(AuditHead, 1)).broken_at == 2


def test_rolled_back_change_leaves_no_gap(engine):
    """A transaction that rolls back takes its number back with it."""
    with pytest.raises(RuntimeError), transaction(engine) as session:
        record(session, SYSTEM, "test.discarded", Candidate(id=None))
        raise RuntimeError
    with transaction(engine) as session:
        record(session, SYSTEM, "test.kept", Candidate(id=None))
    with Session(engine) as session:
        assert verify(session).intact


def test_concurrent_writers_get_consecutive_numbers(engine):
    """Writers in parallel threads are serialised by the chain head: no seq twice, no gap, chain intact."""
    errors = []

    def write(n):
        try:
            for i in range(5):
                with transaction(engine) as session:
                    record(session, SYSTEM, f"test.thread{n}.{i}", Candidate(id=None))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Session(engine) as session:
        assert verify(session).intact
        assert len([e for e in _entries(session) if e.action.startswith("test.thread")]) == 20


def test_entries_written_before_the_chain_are_linked_by_the_upgrade(tmp_path):
    """Upgrading a centre whose log predates the chain numbers and links its entries oldest first."""
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(engine, "0003")
    with engine.begin() as conn:
        for n in range(3):
            conn.execute(text("INSERT INTO auditentry (at, action, entity_type, entity_id, details) "
                              "VALUES (:at, :action, 'candidate', :id, :details)"),
                         {"at": f"2026-11-0{n + 1} 10:00:00.000000", "action": f"old.{n}", "id": str(n),
                          "details": '{"candidate": "8f8f7b8e-3c2e-4f6a-9d84-0d6c9a6b1e01"}'})
    upgrade(engine)
    with Session(engine) as session:
        entries = _entries(session)
        assert [e.action for e in entries] == ["old.0", "old.1", "old.2"]
        assert verify(session).intact
        record(session, SYSTEM, "new.entry", Candidate(id=None))
        session.commit()
        assert verify(session).intact and _entries(session)[-1].seq == 4
        assert str(entries[0].candidate_id) == "8f8f7b8e-3c2e-4f6a-9d84-0d6c9a6b1e01"
    with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
        conn.execute(text("UPDATE auditentry SET action = 'x'"))
    engine.dispose()


def test_cli_reports_intact_and_tampered(tmp_path, monkeypatch):
    """`tracker audit verify` says the log is intact, then names the first broken entry with exit status 1."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    runner = CliRunner()
    instance = ["--instance", str(tmp_path / "instance")]
    assert runner.invoke(main, [*instance, "demo"]).exit_code == 0
    ok = runner.invoke(main, [*instance, "audit", "verify"])
    assert ok.exit_code == 0 and "Audit log intact" in ok.output
    engine = make_engine(f"sqlite:///{tmp_path / 'instance' / 'tracker.db'}")
    _unguarded(engine, "UPDATE auditentry SET details = '{}' WHERE seq = 7")
    engine.dispose()
    bad = runner.invoke(main, [*instance, "audit", "verify"])
    assert bad.exit_code == 1 and "entry 7" in bad.output and "tampered" in bad.output
