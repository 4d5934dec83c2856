"""Migrations: an upgraded empty database has exactly the models' schema, the audit log is append-only, and
changes to tables with rows keep what they hold."""
from datetime import timedelta

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import Session, select

from tracker import models
from tracker.audit import SYSTEM, record
from tracker.db import alembic_config, make_engine, transaction, upgrade
from tracker.models import AuditEntry, IqaReview, Role, SampleItem
from tracker.services import assessment, quality


@pytest.fixture
def empty_url(backend, tmp_path, request):
    """An empty database on the backend under test."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    admin = request.getfixturevalue("postgres_template")
    with admin.connect() as conn:
        conn.execute(text("DROP DATABASE IF EXISTS tracker_empty WITH (FORCE)"))
        conn.execute(text("CREATE DATABASE tracker_empty"))
    return admin.url.set(database="tracker_empty").render_as_string(hide_password=False)


def test_upgrade_gives_exactly_the_models_schema(empty_url):
    """Alembic finds no difference between the migrated database and the models."""
    engine = make_engine(empty_url)
    upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), models.metadata)
    engine.dispose()
    assert diff == []


def test_one_head_and_version_recorded(empty_url):
    """The migrations form one line, and the database records the newest."""
    engine = make_engine(empty_url)
    upgrade(engine)
    head = ScriptDirectory.from_config(alembic_config(engine)).get_heads()
    with engine.connect() as conn:
        current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    engine.dispose()
    assert head == [current]


def test_upgrade_twice_changes_nothing(empty_url):
    """Running the upgrade again is harmless."""
    engine = make_engine(empty_url)
    upgrade(engine)
    upgrade(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
    engine.dispose()


@pytest.mark.parametrize("statement", ["UPDATE auditentry SET action = 'forged'", "DELETE FROM auditentry"])
def test_audit_log_refuses_changes_in_the_database(engine, statement):
    """The database itself refuses to update or delete an audit entry."""
    with transaction(engine) as session:
        entry = record(session, SYSTEM, "test.entry", AuditEntry(id=0, action="", entity_type="", entity_id="0"))
    with pytest.raises(DBAPIError, match="append-only"):
        with engine.begin() as conn:
            conn.execute(text(statement))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT action FROM auditentry WHERE id = :id"), {"id": entry.id}).scalar_one() == \
            "test.entry"


def test_sqlite_connections_use_wal_and_foreign_keys(tmp_path):
    """SQLite runs in WAL mode with foreign keys enforced and full durability: what is acknowledged is on disk."""
    engine = make_engine(f"sqlite:///{tmp_path / 'd.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
        assert conn.execute(text("PRAGMA synchronous")).scalar_one() == 2  # FULL
    engine.dispose()


def test_the_centre_app_writes_durably(app):
    """The centre's own engine syncs every commit, so an acknowledged push survives a power cut."""
    if not app.config["DATABASE_URL"].startswith("sqlite"):
        pytest.skip("PostgreSQL is durable by default")
    with app.extensions["engine"].connect() as conn:
        assert conn.execute(text("PRAGMA synchronous")).scalar_one() == 2


def test_summative_review_migration_keeps_sampled_items_linked(engine, session, factory):
    """Going back to 0009 drops sign-off reviews and keeps decision reviews linked to their items; coming forward
    again keeps the links; a review must concern exactly one decision or one sign-off."""
    iqa, assessor = factory.user(Role.IQA, name="Ida Iqa"), factory.assessor(name="Ann Assessor")
    candidate = factory.candidate(assessors=(assessor,), iqas=(iqa,))
    factory.all_met(assessor, candidate)
    signoff = assessment.sign_off(session, factory.actor(assessor), candidate.id, "002", True)
    for kind in ("interim", "summative"):
        strategy = quality.create_strategy(session, factory.actor(iqa), {
            "name": kind, "kind": kind, "cycle_start": factory.today - timedelta(days=9),
            "cycle_end": factory.today + timedelta(days=9), "base_rate": 100})
        sample = quality.draw(session, factory.actor(iqa), strategy.id, 1)
        item = session.exec(select(SampleItem).where(SampleItem.sample_id == sample.id)
                            .order_by(SampleItem.decision_id)).first()
        quality.review(session, factory.actor(iqa), item.id, "agree", "")
    session.commit()
    links = lambda s: {(i.decision_id, i.signoff_id, i.review_id is not None)  # noqa: E731
                       for i in s.exec(select(SampleItem)) if i.review_id or i.signoff_id}
    kept = links(session) - {(None, signoff.id, True)}
    session.close()
    command.downgrade(alembic_config(engine), "0009")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM iqareview")).scalar_one() == 1
        assert conn.execute(text("SELECT count(*) FROM sampleitem WHERE review_id IS NOT NULL")).scalar_one() == 1
    upgrade(engine)
    with Session(engine) as fresh:
        assert links(fresh) == kept | {(None, signoff.id, False)}
        for subject in ({}, {"decision_id": next(iter(kept))[0], "signoff_id": signoff.id}):
            fresh.add(IqaReview(iqa_id=iqa.id, verdict="agree", **subject))
            with pytest.raises(IntegrityError):
                fresh.flush()
            fresh.rollback()
