"""catalogue full-text search

SQLite: an FTS5 table over ``catalogue_entries`` kept in step by triggers. ``unicode61`` treats
CJK characters as token characters and splits only on spaces and punctuation, so each
space-separated jieba token of ``search_tokens`` is indexed whole.

SQLite cannot combine two B-tree indexes, so a keyword plus two facets would otherwise read
every row the keyword matches (100 000+ for a common word at national scale). The equality
facets are therefore also indexed, as tokens in a second column ``facet_tokens``, and FTS5
intersects keyword and facets itself. The external content is the view
``catalogue_fts_source``, which derives those tokens from the row; keywords are matched in
``search_tokens`` only, so a typed word never matches a facet token. Tokens (kept in step with ``marketplace.catalogue.rules.fts5_facet_terms``):
``t<patent type>``, ``m<payment mode>``, ``a0``/``a1`` (pay after use), ``p<province code>``,
``s<IPC section>``, ``c<IPC class>``, ``l<licensor id>`` and ``r1``…``r<TRL>`` (TRL at least k);
underscores are dropped because unicode61 splits on them.

PostgreSQL: a GIN expression index on ``to_tsvector('simple', search_tokens)``; queries must use
exactly that expression for the planner to pick it, and it combines the index with the facets'
B-tree indexes (BitmapAnd) by itself.

Neither object is described by the models (see marketplace/schema_filter.py). The B-tree indexes
for sorting (newest, expiry) and the IPC-section facet are ordinary model indexes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 09:00:00
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _facet_tokens(row: str) -> str:
    return f"""(
        't' || replace({row}.patent_type, '_', '')
        || ' m' || replace({row}.payment_mode, '_', '')
        || ' a' || {row}.pay_after_use
        || coalesce(' p' || {row}.province_code, '')
        || coalesce(' s' || {row}.ipc_section, '')
        || coalesce(' c' || {row}.ipc_class, '')
        || ' l' || {row}.licensor_organisation_id
        || coalesce(' ' || substr('r1 r2 r3 r4 r5 r6 r7 r8 r9', 1, 3 * {row}.trl - 1), '')
    )"""


def _fts_insert(row: str) -> str:
    return (
        "INSERT INTO catalogue_fts(rowid, search_tokens, facet_tokens) "
        f"VALUES ({row}.id, {row}.search_tokens, {_facet_tokens(row)});"
    )


def _fts_delete(row: str) -> str:
    return (
        "INSERT INTO catalogue_fts(catalogue_fts, rowid, search_tokens, facet_tokens) "
        f"VALUES ('delete', {row}.id, {row}.search_tokens, {_facet_tokens(row)});"
    )


SQLITE_UPGRADE = (
    f"""
    CREATE VIEW catalogue_fts_source AS
    SELECT id, search_tokens, {_facet_tokens('catalogue_entries')} AS facet_tokens FROM catalogue_entries
    """,
    """
    CREATE VIRTUAL TABLE catalogue_fts USING fts5(
        search_tokens, facet_tokens, content='catalogue_fts_source', content_rowid='id', tokenize='unicode61'
    )
    """,
    f"CREATE TRIGGER catalogue_fts_ai AFTER INSERT ON catalogue_entries BEGIN {_fts_insert('new')} END",
    f"CREATE TRIGGER catalogue_fts_ad AFTER DELETE ON catalogue_entries BEGIN {_fts_delete('old')} END",
    # Only columns that feed the index re-index the row; dates and prices leave it alone.
    f"""
    CREATE TRIGGER catalogue_fts_au AFTER UPDATE OF
        id, search_tokens, patent_type, payment_mode, pay_after_use, province_code, ipc_section, ipc_class,
        licensor_organisation_id, trl
    ON catalogue_entries BEGIN {_fts_delete('old')} {_fts_insert('new')} END
    """,
    "INSERT INTO catalogue_fts(catalogue_fts) VALUES ('rebuild')",
)

SQLITE_DOWNGRADE = (
    "DROP TRIGGER IF EXISTS catalogue_fts_au",
    "DROP TRIGGER IF EXISTS catalogue_fts_ad",
    "DROP TRIGGER IF EXISTS catalogue_fts_ai",
    "DROP TABLE IF EXISTS catalogue_fts",
    "DROP VIEW IF EXISTS catalogue_fts_source",
)

POSTGRESQL_UPGRADE = (
    "CREATE INDEX ix_catalogue_fts ON catalogue_entries USING gin (to_tsvector('simple', search_tokens))",
)

POSTGRESQL_DOWNGRADE = ("DROP INDEX IF EXISTS ix_catalogue_fts",)


def _run(statements_by_dialect: dict[str, tuple[str, ...]]) -> None:
    dialect = op.get_bind().dialect.name
    if dialect not in statements_by_dialect:
        raise RuntimeError(f"catalogue full-text search has no migration for {dialect}")
    for statement in statements_by_dialect[dialect]:
        op.execute(statement)


def upgrade() -> None:
    with op.batch_alter_table('catalogue_entries', schema=None) as batch_op:
        batch_op.create_index('ix_catalogue_published', ['published_at'], unique=False)
        batch_op.create_index('ix_catalogue_expiry', ['expiry_date'], unique=False)
        batch_op.create_index('ix_catalogue_ipc_section', ['ipc_section'], unique=False)
    _run({"sqlite": SQLITE_UPGRADE, "postgresql": POSTGRESQL_UPGRADE})


def downgrade() -> None:
    _run({"sqlite": SQLITE_DOWNGRADE, "postgresql": POSTGRESQL_DOWNGRADE})
    with op.batch_alter_table('catalogue_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_catalogue_ipc_section')
        batch_op.drop_index('ix_catalogue_expiry')
        batch_op.drop_index('ix_catalogue_published')
