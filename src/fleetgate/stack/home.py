"""fleetgate's home directory for ``up``: generated secrets, the lock, ``stack.json``."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fleetgate.domain.errors import ConfigurationError
from fleetgate.domain.passwords import generate_secret

SECRETS_FILE = "secrets.json"
STACK_FILE = "stack.json"
LOCK_FILE = "up.lock"


@dataclass(frozen=True, slots=True)
class HomeSecrets:
    """Made once per home, at the first ``up``; never fixed in code."""

    tenant: str
    admin_password: str
    management_admin_password: str
    bootstrap_password: str
    service_password: str
    database_password: str
    #: Key of the signed file URLs in operations (added after the first release: a home
    #: made before gets one at its next start).
    url_secret: str

    @classmethod
    def generate(cls) -> HomeSecrets:
        return cls(
            tenant=f"t{secrets.randbelow(10**8):08d}",
            admin_password=generate_secret(),
            management_admin_password=generate_secret(),
            bootstrap_password=generate_secret(),
            service_password=generate_secret(32),
            database_password=generate_secret(),
            url_secret=generate_secret(32),
        )

    @classmethod
    def load_or_create(cls, home: Path) -> HomeSecrets:
        path = home / SECRETS_FILE
        if path.exists():
            try:
                stored = json.loads(path.read_text("utf-8"))
                if isinstance(stored, dict) and "url_secret" not in stored:
                    stored["url_secret"] = generate_secret(32)
                    write_private_json(path, stored)
                return cls(**stored)
            except (ValueError, TypeError) as exc:
                raise ConfigurationError(
                    f"{path} is damaged ({exc}); restore or remove it"
                ) from None
        created = cls.generate()
        write_private_json(path, asdict(created))
        return created


def write_private_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` atomically, readable by its owner only."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
    tmp.replace(path)


@contextlib.contextmanager
def exclusive(home: Path) -> Iterator[int | None]:
    """Hold the home's lock: one ``up`` per home. The kernel drops it if we die.

    The lock file holds the pid of its holder, emptied when it lets go; so it yields the
    pid of an earlier holder that died holding it (None after a clean stop): its servers
    and ``stack.json`` may still be there.
    """
    handle = (home / LOCK_FILE).open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigurationError(
                f"another `fleetgate up` is already running on {home}"
            ) from None
        handle.seek(0)
        previous = handle.read().strip()
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield int(previous) if previous.isdecimal() else None
        finally:
            handle.truncate(0)
            handle.flush()
    finally:
        handle.close()
