"""Who has sent each stored file's bytes: proof of possession before a file already attached elsewhere is reused.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24 06:00:00.000000
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('blobholder',
    sa.Column('sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('proven_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['sha256'], ['blob.sha256'], ),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], ),
    sa.PrimaryKeyConstraint('sha256', 'user_id')
    )


def downgrade() -> None:
    op.drop_table('blobholder')
