"""A field device's own tables: the outbox of changes for the centre, and its sync state (empty on the centre).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 03:05:00.000000
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('outboxitem',
    sa.Column('item_id', sa.Uuid(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('evidence_id', sa.Uuid(), nullable=True),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=60), nullable=True),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('attempted_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('sent_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('item_id'),
    sa.UniqueConstraint('seq')
    )
    with op.batch_alter_table('outboxitem', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outboxitem_evidence_id'), ['evidence_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_outboxitem_state'), ['state'], unique=False)

    op.create_table('syncstate',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=True),
    sa.Column('server_url', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('cursor', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('last_success_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('last_attempt_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('needs', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )


def downgrade() -> None:
    op.drop_table('syncstate')
    with op.batch_alter_table('outboxitem', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outboxitem_state'))
        batch_op.drop_index(batch_op.f('ix_outboxitem_evidence_id'))
    op.drop_table('outboxitem')
