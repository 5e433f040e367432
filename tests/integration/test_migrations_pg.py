from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from fleetgate.db.migrations import MigrationError, load_migrations, migrate

pytestmark = pytest.mark.integration


async def test_migrations_apply_once_and_are_recorded(empty_database_url: str) -> None:
    conn = await asyncpg.connect(empty_database_url)
    try:
        applied = await migrate(conn)
        assert applied == [m.label for m in load_migrations()]
        assert await migrate(conn) == []
        recorded = await conn.fetch("SELECT version FROM schema_migration ORDER BY version")
        assert [r["version"] for r in recorded] == [m.version for m in load_migrations()]
    finally:
        await conn.close()


async def test_a_failing_migration_rolls_back_and_names_itself(
    empty_database_url: str, tmp_path: Path
) -> None:
    (tmp_path / "0001_good.sql").write_text("CREATE TABLE good (id int);")
    (tmp_path / "0002_bad.sql").write_text(
        "CREATE TABLE half_made (id int);\nINSERT INTO missing_table VALUES (1);"
    )
    conn = await asyncpg.connect(empty_database_url)
    try:
        with pytest.raises(
            MigrationError, match=r"0002_bad failed and was rolled back.*missing_table"
        ):
            await migrate(conn, tmp_path)
        tables = {
            r["tablename"]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        assert "good" in tables
        assert "half_made" not in tables
        versions = await conn.fetch("SELECT version FROM schema_migration")
        assert [r["version"] for r in versions] == [1]
    finally:
        await conn.close()


async def test_a_migration_changed_after_it_was_applied_stops_start_up(
    empty_database_url: str, tmp_path: Path
) -> None:
    (tmp_path / "0001_a.sql").write_text("CREATE TABLE a (id int);")
    conn = await asyncpg.connect(empty_database_url)
    try:
        await migrate(conn, tmp_path)
        (tmp_path / "0001_a.sql").write_text("CREATE TABLE a (id bigint);")
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await migrate(conn, tmp_path)
    finally:
        await conn.close()
