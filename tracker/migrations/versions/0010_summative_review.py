"""Summative IQA review: an IQA review concerns either one decision or one unit sign-off, never both or neither.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24 06:30:00
"""
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

ONE_SUBJECT = ("(decision_id IS NOT NULL AND signoff_id IS NULL) OR (decision_id IS NULL AND signoff_id IS NOT NULL)")


@contextmanager
def _sample_items_set_aside() -> Iterator[None]:
    """On SQLite, unlink sampled items from their reviews while the review table is copied, then link them again.

    SQLite alters a table by copying it and dropping the old one; with foreign keys on (they cannot be switched off
    inside the migration's transaction) dropping a table that sampled items still point at would fail.
    """
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        yield
        return
    links = bind.execute(sa.text("SELECT id, review_id FROM sampleitem WHERE review_id IS NOT NULL")).all()
    bind.execute(sa.text("UPDATE sampleitem SET review_id = NULL WHERE review_id IS NOT NULL"))
    yield
    for item_id, review_id in links:
        bind.execute(sa.text("UPDATE sampleitem SET review_id = :r WHERE id = :i AND EXISTS "
                             "(SELECT 1 FROM iqareview WHERE id = :r)"), {"r": review_id, "i": item_id})


def upgrade() -> None:
    with _sample_items_set_aside(), op.batch_alter_table('iqareview') as batch:
        batch.alter_column('decision_id', existing_type=sa.Uuid(), nullable=True)
        batch.add_column(sa.Column('signoff_id', sa.Uuid(), nullable=True))
        batch.create_foreign_key('iqareview_signoff_id_fkey', 'unitsignoff', ['signoff_id'], ['id'])
        batch.create_index(batch.f('ix_iqareview_signoff_id'), ['signoff_id'], unique=False)
        batch.create_check_constraint('ck_iqareview_one_subject', ONE_SUBJECT)


def downgrade() -> None:
    # Version 0009 cannot hold a review of a sign-off: those reviews (and their items' links to them) go.
    op.execute("UPDATE sampleitem SET review_id = NULL WHERE review_id IN "
               "(SELECT id FROM iqareview WHERE signoff_id IS NOT NULL)")
    op.execute("DELETE FROM iqareview WHERE signoff_id IS NOT NULL")
    with _sample_items_set_aside(), op.batch_alter_table('iqareview') as batch:
        batch.drop_constraint('ck_iqareview_one_subject', type_='check')
        batch.drop_index(batch.f('ix_iqareview_signoff_id'))
        batch.drop_constraint('iqareview_signoff_id_fkey', type_='foreignkey')
        batch.drop_column('signoff_id')
        batch.alter_column('decision_id', existing_type=sa.Uuid(), nullable=False)
