"""Ordered SQL migrations, applied at start-up and recorded in ``schema_migration``.

Files are ``NNNN_name.sql`` in ``fleetgate/db/migrations/``. Each runs in its own
transaction together with the row that records it, so a failing migration leaves the
database exactly as it was before that file and stops start-up with a message naming
the file and PostgreSQL's error. Several service instances may start at once: a
session advisory lock makes them take turns, and the later ones find nothing to do.
An applied migration whose file has changed since is an error, never silently skipped.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from fleetgate.db.pool import holds_session_state
from fleetgate.domain.errors import FleetgateError

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Arbitrary constant key for pg_advisory_lock; "fleetgat" in ASCII.
_LOCK_KEY = 0x666C656574676174


class MigrationError(FleetgateError):
    """A migration could not be planned or applied; start-up must stop."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Read the migration files, ordered by version; bad names and duplicates are errors."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"migration file {path.name!r} is not named NNNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"two migrations share version {version:04d}")
        found[version] = Migration(version, match.group(2), path.read_text("utf-8"))
    return [found[v] for v in sorted(found)]


def pending(available: list[Migration], applied: dict[int, str]) -> list[Migration]:
    """The migrations still to apply, given ``applied`` (version → checksum).

    Refuses a database that knows a version this code does not have (it was migrated by
    a newer fleetgate) and an applied migration whose file has changed since.
    """
    known = {m.version: m for m in available}
    unknown = sorted(set(applied) - set(known))
    if unknown:
        raise MigrationError(
            f"the database has migration {unknown[-1]:04d}, which this version of fleetgate "
            "does not know: it was migrated by a newer version"
        )
    for version, checksum in applied.items():
        if known[version].checksum != checksum:
            raise MigrationError(
                f"migration {known[version].label} was changed after it was applied"
            )
    return [m for m in available if m.version not in applied]


async def migrate(conn: asyncpg.Connection, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply every pending migration; returns the labels applied."""
    available = load_migrations(directory)
    holds_session_state(conn)
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migration (
                version    integer PRIMARY KEY,
                name       text NOT NULL,
                checksum   text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        rows = await conn.fetch("SELECT version, checksum FROM schema_migration")
        todo = pending(available, {r["version"]: r["checksum"] for r in rows})
        for migration in todo:
            try:
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO schema_migration (version, name, checksum)"
                        " VALUES ($1, $2, $3)",
                        migration.version,
                        migration.name,
                        migration.checksum,
                    )
            except asyncpg.PostgresError as exc:
                raise MigrationError(
                    f"migration {migration.label} failed and was rolled back: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            log.info("applied migration %s", migration.label)
        return [m.label for m in todo]
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
