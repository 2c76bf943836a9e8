"""recommendation lists: each enterprise's best offers, kept between visits

Ranking a profile over the national stock visits every catalogue row a common keyword finds, and
p95 stayed about twice the 200 ms target however the query was shaped (docs/benchmarks.md). The
best 60 rows are now stored per enterprise (``marketplace.matching.list_rules``) and a visit scores
only the catalogue rows changed since, found through a new index on ``catalogue_entries.updated_at``
(a plain index: no table rebuild, so the FTS5 triggers of 0002 stay). Lists are filled on first use,
at sign-up and after profile edits; ``visited_at`` lets the worker keep recently visited ones current.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 14:57:03.670913
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
import advanced_alchemy.types
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('recommendation_lists',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('organisation_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('entries', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'cockroachdb').with_variant(advanced_alchemy.types.json.ORA_JSONB(), 'oracle').with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('boundary', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'cockroachdb').with_variant(advanced_alchemy.types.json.ORA_JSONB(), 'oracle').with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=True),
    sa.Column('fresh_through', advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
    sa.Column('excluded_patent_ids', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'cockroachdb').with_variant(advanced_alchemy.types.json.ORA_JSONB(), 'oracle').with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('visited_at', advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=True),
    sa.Column('created_at', advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
    sa.Column('updated_at', advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_recommendation_lists_organisation_id_organisations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recommendation_lists')),
    sa.UniqueConstraint('organisation_id', name=op.f('uq_recommendation_lists_organisation_id'))
    )
    op.create_index('ix_catalogue_updated', 'catalogue_entries', ['updated_at'], unique=False)



def downgrade() -> None:
    op.drop_index('ix_catalogue_updated', table_name='catalogue_entries')

    op.drop_table('recommendation_lists')
