"""Audit chain: entries numbered in commit order, hash-linked, each naming the candidate it concerns.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 09:10:00
"""
import uuid

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

GENESIS = "0" * 64


def upgrade() -> None:
    with op.batch_alter_table('auditentry') as batch:
        batch.add_column(sa.Column('seq', sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column('candidate_id', sa.Uuid(), nullable=True))
        batch.add_column(sa.Column('prev_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch.add_column(sa.Column('hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
    head = _chain_existing()
    with op.batch_alter_table('auditentry') as batch:
        batch.alter_column('seq', existing_type=sa.BigInteger(), nullable=False)
        batch.alter_column('prev_hash', existing_type=sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False)
        batch.alter_column('hash', existing_type=sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False)
        batch.create_unique_constraint('uq_auditentry_seq', ['seq'])
        batch.create_unique_constraint('uq_auditentry_hash', ['hash'])
        batch.create_index('ix_auditentry_candidate_seq', ['candidate_id', 'seq'], unique=False)
    table = op.create_table('audithead',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.bulk_insert(table, [{"id": 1, "seq": head[0], "hash": head[1]}])
    _append_only()


def downgrade() -> None:
    op.drop_table('audithead')
    _guard_off()
    with op.batch_alter_table('auditentry') as batch:
        batch.drop_index('ix_auditentry_candidate_seq')
        batch.drop_constraint('uq_auditentry_hash', type_='unique')
        batch.drop_constraint('uq_auditentry_seq', type_='unique')
        batch.drop_column('hash')
        batch.drop_column('prev_hash')
        batch.drop_column('candidate_id')
        batch.drop_column('seq')
    _append_only()


def _chain_existing() -> tuple[int, str]:
    """Number and link the entries written before the chain existed, oldest first; return the head."""
    from types import SimpleNamespace

    from tracker.audit import _candidate_of, entry_hash

    bind = op.get_bind()
    rows = bind.execute(sa.text(
        "SELECT id, at, actor_id, device_id, action, entity_type, entity_id, details FROM auditentry ORDER BY id"
    )).mappings().all()
    _guard_off()
    seq, prev = 0, GENESIS
    update = sa.text("UPDATE auditentry SET seq = :seq, candidate_id = :candidate, prev_hash = :prev, hash = :hash "
                     "WHERE id = :id").bindparams(sa.bindparam("candidate", type_=sa.Uuid()))
    for row in rows:
        seq += 1
        values = _typed(row)
        entry = SimpleNamespace(**values, seq=seq, prev_hash=prev, candidate_id=_candidate_of(None, values["details"]))
        prev = entry_hash(entry)
        bind.execute(update, {"seq": seq, "candidate": entry.candidate_id, "prev": entry.prev_hash, "hash": prev,
                              "id": row["id"]})
    return seq, prev


def _typed(row) -> dict:  # noqa: ANN001
    """Return a raw audit row with its JSON, uuid and time columns as Python values."""
    import json
    from datetime import datetime

    values = dict(row)
    if isinstance(values["details"], str):
        values["details"] = json.loads(values["details"])
    for key in ("actor_id", "device_id"):
        if values[key] is not None and not isinstance(values[key], uuid.UUID):
            values[key] = uuid.UUID(str(values[key]))
    if isinstance(values["at"], str):
        values["at"] = datetime.fromisoformat(values["at"])
    return values


def _guard_off() -> None:
    """Lift the append-only guard while this migration links the existing entries."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS auditentry_append_only ON auditentry")
        op.execute("DROP FUNCTION IF EXISTS auditentry_append_only()")
        return
    for event in ("update", "delete"):
        op.execute(f"DROP TRIGGER IF EXISTS auditentry_no_{event}")


def _append_only() -> None:
    """Put the append-only guard back (batch operations on SQLite rebuild the table without it)."""
    message = "the audit log is append-only"
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE FUNCTION auditentry_append_only() RETURNS trigger LANGUAGE plpgsql AS "
                   f"$$ BEGIN RAISE EXCEPTION '{message}'; END $$")
        op.execute("CREATE TRIGGER auditentry_append_only BEFORE UPDATE OR DELETE ON auditentry "
                   "FOR EACH ROW EXECUTE FUNCTION auditentry_append_only()")
        return
    for event in ("UPDATE", "DELETE"):
        op.execute(f"CREATE TRIGGER auditentry_no_{event.lower()} BEFORE {event} ON auditentry "
                   f"BEGIN SELECT RAISE(ABORT, '{message}'); END")
