"""Hardening: one decision per evidence version, sessions ended in the database, sign-in attempts counted in the
database, and unfinished uploads kept per device.

- ``evidencereview.version_id`` becomes unique. Simultaneous decisions recorded before this revision leave more
  than one review on a version: the first one stands, the later ones go (the audit log keeps every one of them),
  and a current version's evidence takes the standing review's outcome.
- ``user_account.session_epoch`` counts the times every session of a person was ended.
- ``signinattempt`` holds recent sign-in attempts, by client address and by the hash of the email address typed.
- ``upload`` is keyed by device and file. Unfinished uploads are discarded: their spool files move to a folder
  per device, so each device starts its unfinished files again from the first byte (as after `uploads prune`).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 15:00:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

# The reviews after the first on each version (by time, then id): the ones simultaneous requests left behind.
LATER_REVIEWS = """
    SELECT r.id FROM evidencereview r WHERE EXISTS (
        SELECT 1 FROM evidencereview earlier WHERE earlier.version_id = r.version_id
        AND (earlier.created_at < r.created_at OR (earlier.created_at = r.created_at AND earlier.id < r.id)))
"""
# A current version's evidence shows the outcome of the review that stands.
STANDING_OUTCOME = """
    UPDATE evidence SET status = (
        SELECT r.outcome FROM evidencereview r JOIN evidenceversion v ON v.id = r.version_id
        WHERE r.evidence_id = evidence.id AND v.number = evidence.current_version)
    WHERE status IN ('accepted', 'referred') AND EXISTS (
        SELECT 1 FROM evidencereview r JOIN evidenceversion v ON v.id = r.version_id
        WHERE r.evidence_id = evidence.id AND v.number = evidence.current_version)
"""


def _upload_table(*, per_device: bool) -> None:
    op.create_table('upload',
    sa.Column('device_id', sa.Uuid(), nullable=not per_device),
    sa.Column('sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('received', sa.Integer(), nullable=False),
    sa.Column('started_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['device.id'], ),
    sa.PrimaryKeyConstraint(*(('device_id', 'sha256') if per_device else ('sha256',)))
    )


def upgrade() -> None:
    op.execute(f"DELETE FROM evidencereview WHERE id IN ({LATER_REVIEWS})")
    op.execute(STANDING_OUTCOME)
    with op.batch_alter_table('evidencereview') as batch:
        batch.create_index('uq_evidencereview_version_id', ['version_id'], unique=True)
    with op.batch_alter_table('user_account') as batch:
        batch.add_column(sa.Column('session_epoch', sa.Integer(), nullable=False, server_default='0'))
    op.create_table('signinattempt',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('address', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('account', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('failed', sa.Boolean(), nullable=False),
    sa.Column('at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('signinattempt') as batch:
        batch.create_index(batch.f('ix_signinattempt_address'), ['address'], unique=False)
        batch.create_index(batch.f('ix_signinattempt_account'), ['account'], unique=False)
        batch.create_index(batch.f('ix_signinattempt_at'), ['at'], unique=False)
    op.drop_table('upload')
    _upload_table(per_device=True)


def downgrade() -> None:
    op.drop_table('upload')
    _upload_table(per_device=False)
    with op.batch_alter_table('signinattempt') as batch:
        batch.drop_index(batch.f('ix_signinattempt_at'))
        batch.drop_index(batch.f('ix_signinattempt_account'))
        batch.drop_index(batch.f('ix_signinattempt_address'))
    op.drop_table('signinattempt')
    # Not in batch mode: SQLite would copy the table, and it cannot drop the table every record points at.
    op.drop_column('user_account', 'session_epoch')
    with op.batch_alter_table('evidencereview') as batch:
        batch.drop_index('uq_evidencereview_version_id')
