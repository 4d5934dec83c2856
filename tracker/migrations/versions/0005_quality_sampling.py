"""Quality sampling: IQA strategies, seeded samples and their items, IQA actions, the lead IQA flag.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 03:00:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

S = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        'samplingstrategy',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('iqa_id', sa.Uuid(), nullable=False),
        sa.Column('name', S(length=200), nullable=False),
        sa.Column('kind', S(length=20), nullable=False),
        sa.Column('cohort', sa.Text(), nullable=False),
        sa.Column('cycle_start', sa.Date(), nullable=False),
        sa.Column('cycle_end', sa.Date(), nullable=False),
        sa.Column('base_rate', sa.Integer(), nullable=False),
        sa.Column('new_assessor_rate', sa.Integer(), nullable=False),
        sa.Column('new_assessor_decisions', sa.Integer(), nullable=False),
        sa.Column('new_assessor_months', sa.Integer(), nullable=False),
        sa.Column('disagreement_rate', sa.Integer(), nullable=False),
        sa.Column('new_site_rate', sa.Integer(), nullable=False),
        sa.Column('new_sites', S(length=500), nullable=False),
        sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['iqa_id'], ['user_account.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(op.f('ix_samplingstrategy_iqa_id'), 'samplingstrategy', ['iqa_id'], unique=False)
    op.create_table(
        'sample',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('strategy_id', sa.Uuid(), nullable=False),
        sa.Column('seed', sa.Integer(), nullable=False),
        sa.Column('drawn_by_id', sa.Uuid(), nullable=False),
        sa.Column('drawn_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['drawn_by_id'], ['user_account.id']),
        sa.ForeignKeyConstraint(['strategy_id'], ['samplingstrategy.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(op.f('ix_sample_strategy_id'), 'sample', ['strategy_id'], unique=False)
    with op.batch_alter_table('iqareview') as batch:
        batch.add_column(sa.Column('practice_feedback', sa.Text(), nullable=False, server_default=''))
    with op.batch_alter_table('iqareview') as batch:
        batch.alter_column('practice_feedback', existing_type=sa.Text(), server_default=None)
    op.create_table(
        'sampleitem',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('sample_id', sa.Uuid(), nullable=False),
        sa.Column('decision_id', sa.Uuid(), nullable=True),
        sa.Column('signoff_id', sa.Uuid(), nullable=True),
        sa.Column('candidate_id', sa.Uuid(), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('manual', sa.Boolean(), nullable=False),
        sa.Column('review_id', sa.Uuid(), nullable=True),
        sa.Column('added_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['candidate_id'], ['candidate.id']),
        sa.ForeignKeyConstraint(['decision_id'], ['criteriondecision.id']),
        sa.ForeignKeyConstraint(['review_id'], ['iqareview.id']),
        sa.ForeignKeyConstraint(['sample_id'], ['sample.id']),
        sa.ForeignKeyConstraint(['signoff_id'], ['unitsignoff.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(op.f('ix_sampleitem_sample_id'), 'sampleitem', ['sample_id'], unique=False)
    op.create_index(op.f('ix_sampleitem_decision_id'), 'sampleitem', ['decision_id'], unique=False)
    op.create_table(
        'iqaaction',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('iqa_id', sa.Uuid(), nullable=False),
        sa.Column('assessor_id', sa.Uuid(), nullable=False),
        sa.Column('candidate_id', sa.Uuid(), nullable=False),
        sa.Column('item_id', sa.Uuid(), nullable=True),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('due_on', sa.Date(), nullable=False),
        sa.Column('status', S(length=20), nullable=False),
        sa.Column('response', sa.Text(), nullable=True),
        sa.Column('answered_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column('closed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['assessor_id'], ['user_account.id']),
        sa.ForeignKeyConstraint(['candidate_id'], ['candidate.id']),
        sa.ForeignKeyConstraint(['iqa_id'], ['user_account.id']),
        sa.ForeignKeyConstraint(['item_id'], ['sampleitem.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(op.f('ix_iqaaction_assessor_id'), 'iqaaction', ['assessor_id'], unique=False)
    op.create_index(op.f('ix_iqaaction_iqa_id'), 'iqaaction', ['iqa_id'], unique=False)
    with op.batch_alter_table('rolegrant') as batch:
        batch.add_column(sa.Column('lead', sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table('rolegrant') as batch:
        batch.alter_column('lead', existing_type=sa.Boolean(), server_default=None)


def downgrade() -> None:
    with op.batch_alter_table('rolegrant') as batch:
        batch.drop_column('lead')
    op.drop_index(op.f('ix_iqaaction_iqa_id'), table_name='iqaaction')
    op.drop_index(op.f('ix_iqaaction_assessor_id'), table_name='iqaaction')
    op.drop_table('iqaaction')
    op.drop_index(op.f('ix_sampleitem_decision_id'), table_name='sampleitem')
    op.drop_index(op.f('ix_sampleitem_sample_id'), table_name='sampleitem')
    op.drop_table('sampleitem')
    with op.batch_alter_table('iqareview') as batch:
        batch.drop_column('practice_feedback')
    op.drop_index(op.f('ix_sample_strategy_id'), table_name='sample')
    op.drop_table('sample')
    op.drop_index(op.f('ix_samplingstrategy_iqa_id'), table_name='samplingstrategy')
    op.drop_table('samplingstrategy')
