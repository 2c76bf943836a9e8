"""Tests that need PostgreSQL's concurrency: row locks held across concurrent transactions under
READ COMMITTED. SQLite serialises every writer on one database lock, so there is nothing to race;
unless TEST_DATABASE_URL names a PostgreSQL server these modules are not collected at all (no skips)."""

from __future__ import annotations

import os

if not os.environ.get("TEST_DATABASE_URL", "").strip().startswith("postgresql"):
    collect_ignore_glob = ["test_*.py"]
