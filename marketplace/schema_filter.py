"""Which database objects the models describe, for Alembic autogenerate and the schema test.

Full-text search objects (SQLite's FTS5 virtual table with its shadow tables and triggers, and
PostgreSQL's GIN expression index) are dialect-specific, so the migrations create them by hand
and the comparison leaves them out.
"""

from __future__ import annotations

from typing import Any

FULLTEXT_PREFIXES = ("catalogue_fts", "ix_catalogue_fts", "inventory_fts", "ix_inventory_fts")


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    return not (name and name.startswith(FULLTEXT_PREFIXES))


def compare_type(context: Any, inspected_column: Any, metadata_column: Any, inspected_type: Any, metadata_type: Any):
    """advanced-alchemy's GUID reflects as NUMERIC/BLOB on SQLite and UUID on PostgreSQL: never a real change."""
    if type(metadata_type).__name__ == "GUID":
        return False
    return None
