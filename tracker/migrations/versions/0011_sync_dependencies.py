"""Field sync that cannot lose work: acknowledged items a device checks, the centre's clock, conflicts kept.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 15:00:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outboxitem', schema=None) as batch_op:
        batch_op.add_column(sa.Column('acknowledged', sa.Boolean(), nullable=False, server_default=sa.false()))
    # Items already answered for good are acknowledged: the centre keeps a receipt of each.
    op.execute("UPDATE outboxitem SET acknowledged = true WHERE state IN ('sent', 'parked')")
    with op.batch_alter_table('outboxitem', schema=None) as batch_op:
        batch_op.alter_column('acknowledged', existing_type=sa.Boolean(), server_default=None)
    with op.batch_alter_table('syncstate', schema=None) as batch_op:
        batch_op.add_column(sa.Column('clock_offset', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('notice', sa.Text(), nullable=True))
    op.create_table('syncconflict',
    sa.Column('item_id', sa.Uuid(), nullable=False),
    sa.Column('device_id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('evidence_id', sa.Uuid(), nullable=False),
    sa.Column('candidate_id', sa.Uuid(), nullable=True),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('base_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('centre_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('centre_version', sa.Integer(), nullable=False),
    sa.Column('proposed', sa.JSON(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('resolved_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('resolved_by_id', sa.Uuid(), nullable=True),
    sa.Column('resolution', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
    sa.ForeignKeyConstraint(['device_id'], ['device.id'], ),
    sa.ForeignKeyConstraint(['resolved_by_id'], ['user_account.id'], ),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], ),
    sa.PrimaryKeyConstraint('item_id')
    )
    with op.batch_alter_table('syncconflict', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_syncconflict_candidate_id'), ['candidate_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_syncconflict_evidence_id'), ['evidence_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_syncconflict_user_id'), ['user_id'], unique=False)
    op.create_table('conflictcopy',
    sa.Column('evidence_id', sa.Uuid(), nullable=False),
    sa.Column('centre_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('centre_version', sa.Integer(), nullable=False),
    sa.Column('rows', sa.JSON(), nullable=False),
    sa.Column('pulled_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('evidence_id')
    )


def downgrade() -> None:
    op.drop_table('conflictcopy')
    with op.batch_alter_table('syncconflict', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_syncconflict_user_id'))
        batch_op.drop_index(batch_op.f('ix_syncconflict_evidence_id'))
        batch_op.drop_index(batch_op.f('ix_syncconflict_candidate_id'))
    op.drop_table('syncconflict')
    with op.batch_alter_table('syncstate', schema=None) as batch_op:
        batch_op.drop_column('notice')
        batch_op.drop_column('clock_offset')
    with op.batch_alter_table('outboxitem', schema=None) as batch_op:
        batch_op.drop_column('acknowledged')
