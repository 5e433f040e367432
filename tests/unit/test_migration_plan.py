from __future__ import annotations

from pathlib import Path

import pytest

from fleetgate.db.migrations import Migration, MigrationError, load_migrations, pending

A = Migration(1, "first", "CREATE TABLE a ();")
B = Migration(2, "second", "CREATE TABLE b ();")


def test_only_unapplied_migrations_are_pending_in_order() -> None:
    assert pending([A, B], {}) == [A, B]
    assert pending([A, B], {1: A.checksum}) == [B]
    assert pending([A, B], {1: A.checksum, 2: B.checksum}) == []


def test_a_changed_migration_is_an_error() -> None:
    with pytest.raises(MigrationError, match="0001_first was changed"):
        pending([A, B], {1: "0" * 64})


def test_a_database_from_a_newer_version_is_refused() -> None:
    with pytest.raises(MigrationError, match="migrated by a newer version"):
        pending([A], {1: A.checksum, 2: B.checksum})


def test_files_load_in_version_order(tmp_path: Path) -> None:
    (tmp_path / "0002_b.sql").write_text("SELECT 2;")
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    assert [m.label for m in load_migrations(tmp_path)] == ["0001_a", "0002_b"]


@pytest.mark.parametrize("names", [["1_a.sql"], ["0001_A.sql"], ["0001_a.sql", "0001_b.sql"]])
def test_bad_file_names_and_duplicate_versions_are_errors(tmp_path: Path, names: list[str]) -> None:
    for name in names:
        (tmp_path / name).write_text("SELECT 1;")
    with pytest.raises(MigrationError):
        load_migrations(tmp_path)


def test_the_shipped_migrations_load() -> None:
    """In ascending order from 0001. Numbers are handed out to parallel branches ahead of
    time (decision 0014's branch got 0020 while 0018 and 0019 were elsewhere), so a gap is
    allowed: the runner applies whatever is unapplied, in version order."""
    loaded = load_migrations()
    versions = [m.version for m in loaded]
    assert versions[0] == 1
    assert versions == sorted(set(versions))
