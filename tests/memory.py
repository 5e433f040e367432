"""In-memory adapters of the service ports (``fleetgate.services.ports``), for unit tests
of the use cases.

One :class:`MemoryDatabase` holds the tables — managed objects, external ids, child
references, users, new device requests, binaries' files, operations, released device
ids — and each adapter is a view on it, as each ``Pg*`` adapter is a view on one pool:
what one port writes, the others read. Every method keeps the contract of its ``Pg*``
twin (``fleetgate.db``): what it finds and in which order, what it refuses and with which
error, what a deletion takes with it (the schema's ``ON DELETE CASCADE`` and ``SET NULL``,
the trigger that releases a deleted device id). A method does not await between its reads
and its writes, so it is atomic as its twin's transaction is; one that writes several
tables runs in :meth:`MemoryDatabase.transaction`, so a failure leaves nothing behind.
Every call first yields to the event loop, as a query's round trip does, so use cases
that run at once interleave between calls as they do on PostgreSQL (:func:`queries`).
Binaries' content locks are asyncio locks.

Failures to inject are plain attributes (``MemoryDeviceRegistry.failures`` …), as in
:mod:`fakes`, whose recording fakes (broker, publisher) go with these.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import hashlib
import inspect
import json
import re
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterator,
    Sequence,
)
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path
from typing import Any, TypeVar

from fleetgate.domain import commands
from fleetgate.domain import operations as ops
from fleetgate.domain.binaries import BinaryFile, NewContent, StagedFile, StoredFile, file_fragments
from fleetgate.domain.bootstrap import NewDeviceRequest, RequestStatus
from fleetgate.domain.devices import (
    DEFAULT_DEVICE_TYPE,
    DEVICE_ID_TYPE,
    NO_PASSWORD,
    ManagedObject,
    Registration,
    device_id_taken,
    device_username,
)
from fleetgate.domain.errors import Conflict, NotFound, TooLarge
from fleetgate.domain.inventory import PARENT_KINDS, Deleted, ExternalId, ObjectFilter, Reference
from fleetgate.domain.operations import (
    Decision,
    DeviceTarget,
    Move,
    Operation,
    OperationFilter,
    OperationState,
    Outcome,
    Report,
    Status,
)
from fleetgate.domain.users import Role, Tenant, User

from fakes import InMemoryUsers

#: The roles of a device's own user (``device_<id>``).
DEVICE_USER_ROLES = frozenset({Role.DEVICE, Role.USER_MANAGEMENT_OWN_READ})
_SHA256 = re.compile(r"[0-9a-f]{64}", re.ASCII)
T = TypeVar("T")


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to: PostgreSQL's ``now()`` for tests in which
    time passes (time-outs)."""

    def __init__(self, start: datetime = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def _jsonb(value: dict[str, Any]) -> dict[str, Any]:
    """What a ``jsonb`` column keeps and gives back: a copy, as JSON has it."""
    copied: dict[str, Any] = json.loads(json.dumps(value, allow_nan=False))
    return copied


def _page(items: Sequence[T], offset: int, limit: int) -> list[T]:
    return list(items[offset : offset + limit])


def queries(cls: type[T]) -> type[T]:
    """Make every public coroutine method of an adapter yield to the event loop once
    before it runs (then it runs without a pause: atomic, as its twin's transaction)."""
    for name in dir(cls):
        method = getattr(cls, name)
        if not name.startswith("_") and inspect.iscoroutinefunction(method):
            setattr(cls, name, _after_a_round_trip(method))
    return cls


def _after_a_round_trip(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(method)
    async def call(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0)
        return await method(*args, **kwargs)

    return call


class ForeignKeyViolation(Exception):
    """What PostgreSQL refuses and the adapters do not translate: a row naming a tenant or
    managed object that does not exist (a test that forgot to make it)."""


# --- the tables -----------------------------------------------------------------------


@dataclass
class _Object:
    id: int
    tenant_id: str
    name: str | None
    type: str | None
    owner: str | None
    fragments: dict[str, Any]
    creation_time: datetime
    last_updated: datetime
    #: The broker connection the device is on, when CONNECTED.
    connection_id: str | None = None

    def shown(self) -> ManagedObject:
        return ManagedObject(
            self.id,
            self.tenant_id,
            self.name,
            self.type,
            self.owner,
            self.creation_time,
            self.last_updated,
            _jsonb(self.fragments),
        )


@dataclass(frozen=True)
class _File:
    sha256: str
    length: int
    content_type: str


@dataclass
class _Request:
    status: RequestStatus
    created_at: datetime


@dataclass
class _OperationRow:
    #: As stored (``device_name`` is the device's name when read, not this).
    op: Operation
    dispatched_at: datetime | None = None
    snapshot_id: int | None = None


_TABLES = (
    "objects",
    "external_ids",
    "references",
    "requests",
    "binary_files",
    "operations",
    "released",
)


@queries
class MemoryUsers(InMemoryUsers):
    """The users table: a :class:`~fleetgate.services.ports.UserStore` (the fake of
    :mod:`fakes`) that is also a :class:`~fleetgate.services.ports.DeviceUsers` (``PgUsers``)."""

    async def list_users(
        self, tenant_id: str, *, only_devices: bool, offset: int, limit: int
    ) -> list[User]:
        return _page(self._of(tenant_id, only_devices), offset, limit)

    async def count_users(self, tenant_id: str, *, only_devices: bool) -> int:
        return len(self._of(tenant_id, only_devices))

    async def set_enabled(self, tenant_id: str, username: str, enabled: bool) -> User | None:
        if (tenant_id, username) not in self.users:
            return None
        self.update(tenant_id, username, enabled=enabled)
        return self.users[(tenant_id, username)]

    async def delete_user(self, tenant_id: str, username: str) -> bool:
        return self.users.pop((tenant_id, username), None) is not None

    def _of(self, tenant_id: str, only_devices: bool) -> list[User]:
        """The tenant's device users (or the others), by user name."""
        return sorted(
            (
                u
                for (t, _), u in self.users.items()
                if t == tenant_id and (Role.DEVICE in u.roles) == only_devices
            ),
            key=lambda u: u.username,
        )


class MemoryDatabase:
    """The tables every in-memory adapter shares, and what ``fleetgate.db`` does on them
    in more than one adapter (claiming device ids, making devices and their users)."""

    def __init__(self, clock: Callable[[], datetime] = _utc_now) -> None:
        #: PostgreSQL's ``now()``.
        self.clock = clock
        self.users = MemoryUsers()
        self.objects: dict[int, _Object] = {}
        #: (tenant, type, value) → managed object id.
        self.external_ids: dict[tuple[str, str, str], int] = {}
        #: (parent, kind, child).
        self.references: set[tuple[int, str, int]] = set()
        self.requests: dict[tuple[str, str], _Request] = {}
        #: managed object id → its file.
        self.binary_files: dict[int, _File] = {}
        self.operations: dict[int, _OperationRow] = {}
        #: Device ids whose broker sessions are still to discard → when released.
        self.released: dict[str, datetime] = {}
        self._object_ids = count(1)
        self._operation_ids = count(1)

    def add_tenant(self, tenant_id: str, *, is_management: bool = False) -> None:
        self.users.tenants.setdefault(tenant_id, Tenant(tenant_id, is_management))

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """All or nothing: a failure inside puts every table back (ids stay used, as a
        sequence's do)."""
        saved = {name: copy.deepcopy(getattr(self, name)) for name in _TABLES}
        users, tenants = dict(self.users.users), dict(self.users.tenants)
        try:
            yield
        except BaseException:
            for name, table in saved.items():
                setattr(self, name, table)
            self.users.users, self.users.tenants = users, tenants
            raise

    # -- managed objects -----------------------------------------------------------------

    def insert_object(
        self,
        tenant_id: str,
        *,
        name: str | None,
        type: str | None,
        owner: str | None,
        fragments: dict[str, Any],
        at: datetime | None = None,
    ) -> _Object:
        """``db.inventory.insert_object``: fragments kept as given (nulls too)."""
        self.require_tenant(tenant_id)
        when = at or self.clock()
        row = _Object(
            next(self._object_ids), tenant_id, name, type, owner, _jsonb(fragments), when, when
        )
        self.objects[row.id] = row
        return row

    def object_in(self, tenant_id: str, object_id: int) -> _Object | None:
        found = self.objects.get(object_id)
        return found if found is not None and found.tenant_id == tenant_id else None

    def delete_objects(self, ids: Sequence[int]) -> None:
        """Delete managed objects with what the schema deletes with them: their external
        ids (a device id is released), references, files and operations; a snapshot that
        goes is forgotten by its operation."""
        gone = set(ids)
        for key, object_id in list(self.external_ids.items()):
            if object_id in gone:
                self.delete_external_id(key)
        self.references = {r for r in self.references if r[0] not in gone and r[2] not in gone}
        for object_id in gone:
            self.binary_files.pop(object_id, None)
            self.objects.pop(object_id, None)
        for op_id, row in list(self.operations.items()):
            if row.op.device_id in gone:
                del self.operations[op_id]
            elif row.snapshot_id in gone:
                row.snapshot_id = None

    # -- external ids and device ids -----------------------------------------------------

    def delete_external_id(self, key: tuple[str, str, str]) -> bool:
        """Remove it; a device id is left to have its broker session discarded."""
        if self.external_ids.pop(key, None) is None:
            return False
        if key[1] == DEVICE_ID_TYPE:
            self.released[key[2]] = self.clock()
        return True

    def serial_of(self, object_id: int) -> str | None:
        """The device id (``c8y_Serial``) of a managed object."""
        return next(
            (
                v
                for (_, t, v), o in self.external_ids.items()
                if t == DEVICE_ID_TYPE and o == object_id
            ),
            None,
        )

    def claim_device_id(self, tenant_id: str, device_id: str) -> None:
        """``db.device_ids.claim_device_id``: ``device_id_taken`` when a device or a new
        device request of another tenant holds the id."""
        held = any(
            t != tenant_id and kind == DEVICE_ID_TYPE and value == device_id
            for t, kind, value in self.external_ids
        ) or any(t != tenant_id and i == device_id for t, i in self.requests)
        if held:
            raise device_id_taken(device_id)

    def ensure_device(
        self,
        tenant_id: str,
        device_id: str,
        at: datetime,
        *,
        fragments: dict[str, Any] | None = None,
    ) -> tuple[int, bool]:
        """``db.devices.ensure_device``: (the device's object id, whether it was made)."""
        self.claim_device_id(tenant_id, device_id)
        object_id = self.external_ids.get((tenant_id, DEVICE_ID_TYPE, device_id))
        if object_id is not None:
            return object_id, False
        row = self.insert_object(
            tenant_id,
            name=device_id,
            type=DEFAULT_DEVICE_TYPE,
            owner=device_username(device_id),
            fragments=fragments if fragments is not None else {"c8y_IsDevice": {}},
            at=at,
        )
        self.external_ids[(tenant_id, DEVICE_ID_TYPE, device_id)] = row.id
        return row.id, True

    # -- device users --------------------------------------------------------------------

    def ensure_device_user(self, tenant_id: str, device_id: str) -> tuple[bool, bool]:
        """Make ``device_<id>`` (no password) unless it exists: (created, enabled)."""
        key = (tenant_id, device_username(device_id))
        created = key not in self.users.users
        if created:
            self.require_tenant(tenant_id)
            self.users.users[key] = User(
                tenant_id, key[1], NO_PASSWORD, True, DEVICE_USER_ROLES, self.clock()
            )
        return created, self.users.users[key].enabled

    def set_device_password(self, tenant_id: str, device_id: str, password_hash: str) -> None:
        """``db.devices.set_device_password``: make or update the device user, enabled."""
        key = (tenant_id, device_username(device_id))
        found = self.users.users.get(key)
        if found is None:
            self.require_tenant(tenant_id)
            found = User(tenant_id, key[1], password_hash, True, DEVICE_USER_ROLES, self.clock())
        self.users.users[key] = replace(
            found, password_hash=password_hash, enabled=True, last_password_change=self.clock()
        )

    # -- operations ----------------------------------------------------------------------

    def new_operation_id(self) -> int:
        return next(self._operation_ids)

    def bound(self, op: Operation) -> bool:
        """Its device still holds the device id it was made for (``db.operations._BOUND``)."""
        return self.external_ids.get((op.tenant_id, DEVICE_ID_TYPE, op.serial)) == op.device_id

    def shown(self, row: _OperationRow) -> Operation:
        return replace(
            row.op,
            device_name=self.objects[row.op.device_id].name,
            fragments=_jsonb(row.op.fragments),
        )

    def require_tenant(self, tenant_id: str) -> None:
        if tenant_id not in self.users.tenants:
            raise ForeignKeyViolation(f"tenant {tenant_id} does not exist")


# --- inventory, identity, devices -----------------------------------------------------


def _without_nulls(fragments: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fragments.items() if v is not None}


def _merged(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``(current || changes) - <the keys changes sets to null>``, as jsonb has it."""
    removed = {k for k, v in changes.items() if v is None}
    merged = {**current, **_jsonb(_without_nulls(changes))}
    return {k: v for k, v in merged.items() if k not in removed}


def _matches(row: _Object, tenant_id: str, flt: ObjectFilter) -> bool:
    return (
        row.tenant_id == tenant_id
        and (flt.type is None or row.type == flt.type)
        and (flt.owner is None or row.owner == flt.owner)
        and (flt.fragment_type is None or flt.fragment_type in row.fragments)
        and (flt.ids is None or row.id in flt.ids)
    )


@queries
class MemoryInventory:
    """An :class:`~fleetgate.services.ports.Inventory` (``PgInventory``)."""

    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db

    async def create(
        self,
        tenant_id: str,
        *,
        name: str | None,
        type: str | None,
        owner: str | None,
        fragments: dict[str, Any],
    ) -> ManagedObject:
        row = self._db.insert_object(
            tenant_id, name=name, type=type, owner=owner, fragments=_without_nulls(fragments)
        )
        return row.shown()

    async def get(self, tenant_id: str, object_id: int) -> ManagedObject | None:
        found = self._db.object_in(tenant_id, object_id)
        return found.shown() if found else None

    async def find(
        self, tenant_id: str, flt: ObjectFilter, offset: int, limit: int
    ) -> list[ManagedObject]:
        return [o.shown() for o in _page(self._found(tenant_id, flt), offset, limit)]

    async def count(self, tenant_id: str, flt: ObjectFilter) -> int:
        return len(self._found(tenant_id, flt))

    def _found(self, tenant_id: str, flt: ObjectFilter) -> list[_Object]:
        return [o for _, o in sorted(self._db.objects.items()) if _matches(o, tenant_id, flt)]

    async def update(
        self, tenant_id: str, object_id: int, plain: dict[str, Any], fragments: dict[str, Any]
    ) -> ManagedObject | None:
        """Set name/type/owner given in ``plain``; merge ``fragments`` (a null removes one)."""
        row = self._db.object_in(tenant_id, object_id)
        if row is None:
            return None
        row.fragments = _merged(row.fragments, fragments)
        row.name = plain.get("name", row.name)
        row.type = plain.get("type", row.type)
        row.owner = plain.get("owner", row.owner)
        row.last_updated = self._db.clock()
        return row.shown()

    async def delete(
        self, tenant_id: str, object_id: int, *, cascade: bool = False
    ) -> Deleted | None:
        """Delete the object, with ``cascade`` every descendant (in the tenant) through any
        kind of child reference; None if it did not exist."""
        if self._db.object_in(tenant_id, object_id) is None:
            return None
        ids = [object_id]
        if cascade:
            for parent in ids:  # the list grows while it is walked: breadth first
                for p, _, child in sorted(self._db.references):
                    if p == parent and child not in ids and self._db.object_in(tenant_id, child):
                        ids.append(child)
        device_ids = sorted(
            v
            for (t, kind, v), o in self._db.external_ids.items()
            if t == tenant_id and kind == DEVICE_ID_TYPE and o in ids
        )
        files = sorted({f.sha256 for o, f in self._db.binary_files.items() if o in ids})
        with self._db.transaction():
            self._db.delete_objects(ids)
        return Deleted(device_ids, files)

    async def is_binary(self, tenant_id: str, object_id: int) -> bool:
        return self._db.object_in(tenant_id, object_id) is not None and (
            object_id in self._db.binary_files
        )

    async def references(self, tenant_id: str, object_id: int) -> list[Reference]:
        """Every reference from and to the object, as the object shows them (ordered by the
        reference's kind, then the other object's id)."""
        found: list[tuple[str, int, bool, Reference]] = []
        for parent, kind, child in self._db.references:
            if parent == object_id and (other := self._db.object_in(tenant_id, child)):
                found.append((kind, child, False, Reference(kind, child, other.name)))
            if child == object_id and (other := self._db.object_in(tenant_id, parent)):
                shown = Reference(PARENT_KINDS[kind], parent, other.name)
                found.append((kind, parent, True, shown))
        return [r for *_, r in sorted(found, key=lambda f: f[:3])]

    async def add_child(self, tenant_id: str, parent_id: int, kind: str, child_id: int) -> bool:
        """Reference ``child_id`` from ``parent_id``; False when either is not in the tenant.
        Adding a reference that exists changes nothing."""
        both = self._db.object_in(tenant_id, parent_id) and self._db.object_in(tenant_id, child_id)
        if parent_id == child_id or not both:
            return False  # the twin finds one row of the two it looks for
        _check_reference(parent_id, kind, child_id)
        self._db.references.add((parent_id, kind, child_id))
        return True

    async def children(
        self, tenant_id: str, parent_id: int, kind: str, offset: int, limit: int
    ) -> list[ManagedObject]:
        return [o.shown() for o in _page(self._children(tenant_id, parent_id, kind), offset, limit)]

    async def count_children(self, tenant_id: str, parent_id: int, kind: str) -> int:
        return len(self._children(tenant_id, parent_id, kind))

    async def child(
        self, tenant_id: str, parent_id: int, kind: str, child_id: int
    ) -> ManagedObject | None:
        if (parent_id, kind, child_id) not in self._db.references:
            return None
        found = self._db.object_in(tenant_id, child_id)
        return found.shown() if found else None

    def _children(self, tenant_id: str, parent_id: int, kind: str) -> list[_Object]:
        ids = sorted(c for p, k, c in self._db.references if p == parent_id and k == kind)
        return [o for o in (self._db.object_in(tenant_id, c) for c in ids) if o is not None]

    async def create_child(
        self,
        tenant_id: str,
        parent_id: int,
        kind: str,
        *,
        name: str | None,
        type: str | None,
        owner: str | None,
        fragments: dict[str, Any],
    ) -> ManagedObject | None:
        """A new object referenced from ``parent_id`` (one transaction); None: no parent."""
        if self._db.object_in(tenant_id, parent_id) is None:
            return None
        with self._db.transaction():
            row = self._db.insert_object(
                tenant_id, name=name, type=type, owner=owner, fragments=_without_nulls(fragments)
            )
            _check_reference(parent_id, kind, row.id)
            self._db.references.add((parent_id, kind, row.id))
        return row.shown()

    async def remove_child(self, tenant_id: str, parent_id: int, kind: str, child_id: int) -> bool:
        if self._db.object_in(tenant_id, parent_id) is None:
            return False
        before = len(self._db.references)
        self._db.references.discard((parent_id, kind, child_id))
        return len(self._db.references) < before

    async def set_connection(
        self,
        tenant_id: str,
        device_id: str,
        fragments: dict[str, Any],
        *,
        connection_id: str | None,
        only_if_connection: str | None = None,
        at: datetime,
    ) -> bool:
        """Merge connection fragments into the device with external id ``device_id``; with
        ``only_if_connection``, nothing unless the device is still on that connection."""
        object_id = self._db.external_ids.get((tenant_id, DEVICE_ID_TYPE, device_id))
        row = self._db.objects.get(object_id) if object_id is not None else None
        if row is None or (
            only_if_connection is not None and row.connection_id != only_if_connection
        ):
            return False
        row.fragments = {**row.fragments, **_jsonb(fragments)}
        row.connection_id = connection_id
        row.last_updated = at
        return True

    async def connected_devices(self) -> list[tuple[str, str]]:
        """(tenant, device id) of every device on a connection."""
        return sorted(
            (t, v)
            for (t, kind, v), o in self._db.external_ids.items()
            if kind == DEVICE_ID_TYPE and self._db.objects[o].connection_id is not None
        )


def _check_reference(parent_id: int, kind: str, child_id: int) -> None:
    """The table's CHECKs: a known kind, and no object its own child."""
    if kind not in PARENT_KINDS or parent_id == child_id:
        raise ValueError(f"check constraint: reference {parent_id} -{kind}-> {child_id}")


@queries
class MemoryIdentity:
    """An :class:`~fleetgate.services.ports.Identity` (``PgIdentity``): a ``c8y_Serial`` is
    a device id, global across tenants, and an object holds at most one."""

    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db

    async def add(self, tenant_id: str, object_id: int, type: str, value: str) -> ExternalId:
        if type == DEVICE_ID_TYPE:
            self._db.claim_device_id(tenant_id, value)
        if self._db.object_in(tenant_id, object_id) is None:
            raise NotFound(f"Managed object {object_id} not found", code="inventory/Not Found")
        if type == DEVICE_ID_TYPE:
            held = self._db.serial_of(object_id)
            if held is not None and held != value:
                raise Conflict(
                    f"Managed object {object_id} has the device id {held} already; delete"
                    f" that {DEVICE_ID_TYPE} first",
                    code="identity/Duplicate",
                )
        key = (tenant_id, type, value)
        if key in self._db.external_ids:
            raise Conflict(f"External id {type}/{value} already exists", code="identity/Duplicate")
        self._db.external_ids[key] = object_id
        return ExternalId(tenant_id, type, value, object_id)

    async def get(self, tenant_id: str, type: str, value: str) -> ExternalId | None:
        object_id = self._db.external_ids.get((tenant_id, type, value))
        return ExternalId(tenant_id, type, value, object_id) if object_id is not None else None

    async def device(self, device_id: str) -> ExternalId | None:
        """The device that holds ``device_id``, in whatever tenant."""
        return next(
            (
                ExternalId(t, kind, v, o)
                for (t, kind, v), o in self._db.external_ids.items()
                if kind == DEVICE_ID_TYPE and v == device_id
            ),
            None,
        )

    async def of_object(self, tenant_id: str, object_id: int) -> list[ExternalId]:
        return [
            ExternalId(t, kind, v, o)
            for (t, kind, v), o in sorted(self._db.external_ids.items())
            if t == tenant_id and o == object_id
        ]

    async def delete(self, tenant_id: str, type: str, value: str) -> bool:
        return self._db.delete_external_id((tenant_id, type, value))


@queries
class MemoryDeviceRegistry:
    """A :class:`~fleetgate.services.ports.DeviceRegistry` (``PgDevices``).

    ``failures`` (device id → error) makes registering that device fail as a database
    that cannot take it would; ``unavailable`` makes every registration fail as an absent
    database does (``fakes.unavailable`` tells it transient).
    """

    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db
        self.failures: dict[str, Exception] = {}
        self.unavailable = False

    async def register(
        self,
        tenant_id: str,
        device_id: str,
        *,
        fragments: dict[str, Any],
        connection: dict[str, Any],
        connection_id: str | None,
        at: datetime,
    ) -> Registration:
        """Find or make the device ``device_id`` and its user; mark it on ``connection_id``."""
        if self.unavailable:
            raise ConnectionRefusedError("the database is away")
        if device_id in self.failures:
            raise self.failures[device_id]
        with self._db.transaction():
            object_id, created = self._db.ensure_device(
                tenant_id, device_id, at, fragments=fragments
            )
            row = self._db.objects[object_id]
            row.fragments = {**row.fragments, **_jsonb(connection)}
            row.connection_id = connection_id
            row.last_updated = at
            user_created, user_enabled = self._db.ensure_device_user(tenant_id, device_id)
        return Registration(object_id, created, user_created, user_enabled)

    async def ensure_user(self, tenant_id: str, device_id: str) -> tuple[bool, bool]:
        return self._db.ensure_device_user(tenant_id, device_id)

    async def released(self, limit: int) -> list[str]:
        """Released device ids whose broker sessions are still to discard, oldest first."""
        by_time = sorted(self._db.released.items(), key=lambda item: item[1])
        return [device_id for device_id, _ in by_time[:limit]]

    async def discarded(self, device_ids: list[str]) -> None:
        for device_id in device_ids:
            self._db.released.pop(device_id, None)


# --- bootstrap ------------------------------------------------------------------------


def _request_not_found(request_id: str) -> NotFound:
    return NotFound(f"New device request {request_id} not found", code="devicecontrol/Not Found")


@queries
class MemoryRequests:
    """The :class:`~fleetgate.services.ports.NewDeviceRequests` (``PgRequests``)."""

    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db

    async def create(self, tenant_id: str, request_id: str) -> NewDeviceRequest:
        """A request for a device id that no other tenant holds (decision 0006)."""
        self._db.claim_device_id(tenant_id, request_id)
        self._db.require_tenant(tenant_id)
        if (tenant_id, request_id) in self._db.requests:
            raise Conflict(
                f"New device request {request_id} already exists", code="devicecontrol/Duplicate"
            )
        self._db.requests[(tenant_id, request_id)] = _Request(
            RequestStatus.WAITING_FOR_CONNECTION, self._db.clock()
        )
        return NewDeviceRequest(tenant_id, request_id, RequestStatus.WAITING_FOR_CONNECTION)

    async def get(self, tenant_id: str, request_id: str) -> NewDeviceRequest:
        found = self._db.requests.get((tenant_id, request_id))
        if found is None:
            raise _request_not_found(request_id)
        return NewDeviceRequest(tenant_id, request_id, found.status)

    async def find(self, tenant_id: str, offset: int, limit: int) -> list[NewDeviceRequest]:
        """The tenant's requests, oldest first (then by id)."""
        mine = sorted(
            (
                (r.created_at, i, r.status)
                for (t, i), r in self._db.requests.items()
                if t == tenant_id
            )
        )
        return [NewDeviceRequest(tenant_id, i, s) for _, i, s in _page(mine, offset, limit)]

    async def count(self, tenant_id: str) -> int:
        return sum(t == tenant_id for t, _ in self._db.requests)

    async def move(
        self,
        tenant_id: str,
        request_id: str,
        decide: Callable[[RequestStatus], RequestStatus],
    ) -> NewDeviceRequest:
        """Apply ``decide`` to the current status (what it raises, the caller gets)."""
        found = self._db.requests.get((tenant_id, request_id))
        if found is None:
            raise _request_not_found(request_id)
        found.status = decide(found.status)
        return NewDeviceRequest(tenant_id, request_id, found.status)

    async def delete(self, tenant_id: str, request_id: str) -> None:
        if self._db.requests.pop((tenant_id, request_id), None) is None:
            raise _request_not_found(request_id)

    async def status_of(self, tenant_id: str, request_id: str) -> RequestStatus | None:
        found = self._db.requests.get((tenant_id, request_id))
        return found.status if found else None

    async def mark_pending(self, tenant_id: str, request_id: str) -> None:
        """The device asked: WAITING_FOR_CONNECTION becomes PENDING_ACCEPTANCE."""
        found = self._db.requests.get((tenant_id, request_id))
        if found is not None and found.status is RequestStatus.WAITING_FOR_CONNECTION:
            found.status = RequestStatus.PENDING_ACCEPTANCE

    async def issue(self, tenant_id: str, request_id: str, password_hash: str) -> bool:
        """If the request is still ACCEPTED: make the device and its user with this password
        and delete the request, in one transaction (``Conflict`` when another tenant holds
        the id: nothing changes). False otherwise."""
        found = self._db.requests.get((tenant_id, request_id))
        if found is None or found.status is not RequestStatus.ACCEPTED:
            return False
        with self._db.transaction():
            del self._db.requests[(tenant_id, request_id)]
            self._db.ensure_device(tenant_id, request_id, self._db.clock())
            self._db.set_device_password(tenant_id, request_id, password_hash)
        return True


# --- binaries -------------------------------------------------------------------------


@queries
class MemoryLockedContent:
    """The :class:`~fleetgate.services.ports.LockedBinaries` (``db.binaries.LockedContent``)
    handed out while content locks are held."""

    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db

    async def in_use(self, sha256: str) -> bool:
        """Whether any binary (of any tenant) has this content."""
        return any(f.sha256 == sha256 for f in self._db.binary_files.values())

    async def create(
        self,
        tenant_id: str,
        *,
        name: str | None,
        type: str | None,
        owner: str | None,
        fragments: dict[str, Any],
        content: NewContent,
    ) -> ManagedObject:
        """The binary's managed object and its file row, in one transaction."""
        all_fragments = {
            **_without_nulls(fragments),
            **file_fragments(content.content_type, content.length),
        }
        with self._db.transaction():
            row = self._db.insert_object(
                tenant_id, name=name, type=type, owner=owner, fragments=all_fragments
            )
            self._db.binary_files[row.id] = _file(content)
        return row.shown()

    async def replace(
        self, tenant_id: str, binary_id: int, expected_sha256: str, content: NewContent
    ) -> ManagedObject | None:
        """New content, if it is still ``expected_sha256`` (None otherwise)."""
        row = self._db.object_in(tenant_id, binary_id)
        current = self._db.binary_files.get(binary_id)
        if row is None or current is None or current.sha256 != expected_sha256:
            return None
        self._db.binary_files[binary_id] = _file(content)
        row.fragments = {**row.fragments, **file_fragments(content.content_type, content.length)}
        row.last_updated = self._db.clock()
        return row.shown()

    async def delete(self, tenant_id: str, binary_id: int, expected_sha256: str) -> bool:
        """Delete the binary if its content is still ``expected_sha256``."""
        current = self._db.binary_files.get(binary_id)
        if (
            self._db.object_in(tenant_id, binary_id) is None
            or current is None
            or current.sha256 != expected_sha256
        ):
            return False
        with self._db.transaction():
            self._db.delete_objects([binary_id])
        return True


def _file(content: NewContent) -> _File:
    if not _SHA256.fullmatch(content.sha256) or content.length < 0:
        raise ValueError(f"check constraint: binary file {content}")
    return _File(content.sha256, content.length, content.content_type)


@queries
class MemoryBinaries:
    """A :class:`~fleetgate.services.ports.BinaryStore` (``PgBinaries``); a content lock
    is an asyncio lock per SHA-256 (``locked``: the contents locked now)."""

    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db
        self._locks: dict[str, asyncio.Lock] = {}
        self.locked: set[str] = set()

    async def file_of(self, tenant_id: str, binary_id: int) -> BinaryFile | None:
        row = self._db.object_in(tenant_id, binary_id)
        return self._binary(row) if row is not None else None

    async def file_by_id(self, binary_id: int) -> BinaryFile | None:
        """The binary with this id in any tenant (for a signed URL, which names no tenant)."""
        row = self._db.objects.get(binary_id)
        return self._binary(row) if row is not None else None

    async def all_contents(self) -> set[str]:
        return {f.sha256 for f in self._db.binary_files.values()}

    @contextlib.asynccontextmanager
    async def content(self, *sha256: str) -> AsyncIterator[MemoryLockedContent]:
        """Hold the lock of each SHA-256 (taken in one order) for the ``async with`` block."""
        async with contextlib.AsyncExitStack() as held:
            for key in sorted(set(sha256)):
                await held.enter_async_context(self._locks.setdefault(key, asyncio.Lock()))
                self.locked.add(key)
                held.callback(self.locked.discard, key)
            yield MemoryLockedContent(self._db)

    def _binary(self, row: _Object) -> BinaryFile | None:
        found = self._db.binary_files.get(row.id)
        if found is None:
            return None
        return BinaryFile(
            row.id, row.tenant_id, row.name, found.sha256, found.length, found.content_type
        )


@queries
class MemoryFiles:
    """A :class:`~fleetgate.services.ports.FileStorage` (``files.store.FileStore``): files
    in a dict (SHA-256 → bytes), uploads staged in another (path → bytes, when staged)
    until their block ends."""

    def __init__(
        self, root: Path = Path("/memory/files"), clock: Callable[[], float] = time.time
    ) -> None:
        self.files: dict[str, bytes] = {}
        self.uploads: dict[Path, tuple[bytes, float]] = {}
        self._root = root
        self._clock = clock
        self._names = count(1)

    def path(self, sha256: str) -> Path:
        if not _SHA256.fullmatch(sha256):
            raise ValueError(f"not a SHA-256 in lower-case hex: {sha256!r}")
        return self._root / sha256[:2] / sha256

    async def put(self, chunks: AsyncIterable[bytes], *, max_size: int | None = None) -> StoredFile:
        """Store the content of ``chunks`` with no database asked (``FileStore.put``)."""
        async with self.staged(chunks, max_size=max_size) as staged:
            return await self.keep(staged)

    @contextlib.asynccontextmanager
    async def staged(
        self, chunks: AsyncIterable[bytes], *, max_size: int | None = None
    ) -> AsyncIterator[StagedFile]:
        """The content of ``chunks`` staged, removed on exit unless kept;
        :class:`TooLarge` past ``max_size`` bytes."""
        path = self._root / "tmp" / f"up-{next(self._names)}"
        self.uploads[path] = (b"", self._clock())
        try:
            data = bytearray()
            async for chunk in chunks:
                data += chunk
                if max_size is not None and len(data) > max_size:
                    raise TooLarge(f"the file is larger than {max_size} bytes")
            self.uploads[path] = (bytes(data), self._clock())
            yield StagedFile(path, hashlib.sha256(data).hexdigest(), len(data))
        finally:
            self.uploads.pop(path, None)

    async def keep(self, staged: StagedFile) -> StoredFile:
        """Give a staged file its name in the store (nothing to do if that exists)."""
        if staged.sha256 not in self.files:
            upload = self.uploads.get(staged.path)
            if upload is None:
                raise FileNotFoundError(staged.path)
            self.files[staged.sha256] = upload[0]
        return StoredFile(staged.sha256, staged.size)

    async def discard(self, sha256: str) -> bool:
        return self.files.pop(sha256, None) is not None

    async def contents(self) -> list[str]:
        return sorted(self.files)

    async def remove_stale_uploads(self, older_than: float) -> int:
        """Forget uploads staged more than ``older_than`` seconds ago (a crash's)."""
        limit = self._clock() - older_than
        stale = [p for p, (_, at) in self.uploads.items() if at < limit]
        for path in stale:
            del self.uploads[path]
        return len(stale)


# --- operations -----------------------------------------------------------------------


def _seconds(value: float) -> str:
    """A number of seconds as PostgreSQL's ``format('%s', float8)`` writes it."""
    text = repr(float(value))
    return text.removesuffix(".0")


def _outcome(decision: Decision, saved: dict[int, Operation]) -> Outcome:
    """One decision's outcome, with the operation as this report left it."""
    found = saved.get(decision.report.operation_id)
    if decision.move is not Move.APPLY or found is None or decision.status is None:
        return Outcome(decision)
    return Outcome(
        decision, replace(found, status=decision.status, failure_reason=decision.failure_reason)
    )


def _listed(op: Operation, flt: OperationFilter) -> bool:
    return (
        (flt.device_id is None or op.device_id == flt.device_id)
        and (not flt.statuses or op.status in flt.statuses)
        and (flt.fragment_type is None or flt.fragment_type in op.fragments)
        and (flt.bulk_operation_id is None or op.bulk_operation_id == flt.bulk_operation_id)
        and (flt.date_from is None or op.creation_time >= flt.date_from)
        and (flt.date_to is None or op.creation_time <= flt.date_to)
    )


def _snapshot_type(op: Operation) -> str | None:
    """What the one-open-snapshot-per-type index keys an operation by (None: not indexed)."""
    if op.fragment_type != commands.UPLOAD_CONFIG or op.status not in ops.OPEN:
        return None
    command = op.fragments.get(commands.UPLOAD_CONFIG)
    value = command.get("type") if isinstance(command, dict) else None
    return str(value) if value is not None else None


@queries
class MemoryOperations:
    """An :class:`~fleetgate.services.ports.OperationStore` (``PgOperations``).

    Reports are decided by :func:`fleetgate.domain.operations.decide` against the
    operations as stored — ``bound`` when their device still holds the id they were made
    for — and success changes the device record by
    :func:`fleetgate.domain.commands.success_effects`, in one transaction.
    """

    def __init__(self, db: MemoryDatabase, base_url: str) -> None:
        self._db = db
        self._base_url = base_url

    async def device(self, tenant_id: str, device_id: int) -> DeviceTarget | None:
        row = self._db.object_in(tenant_id, device_id)
        if row is None:
            return None
        return DeviceTarget(row.id, self._db.serial_of(row.id), row.type, _jsonb(row.fragments))

    async def configuration_dumps(self, tenant_id: str, url: str) -> list[dict[str, Any]]:
        return [
            _jsonb(o.fragments)
            for _, o in sorted(self._db.objects.items())
            if o.tenant_id == tenant_id
            and o.type == commands.CONFIGURATION_ENTRY_TYPE
            and o.fragments.get("url") == url
        ]

    async def create(
        self,
        tenant_id: str,
        device: DeviceTarget,
        *,
        fragment_type: str,
        description: str | None,
        fragments: dict[str, Any],
        bulk_operation_id: int | None = None,
    ) -> Operation:
        assert device.serial is not None
        if device.id not in self._db.objects:
            raise Conflict(f"Device {device.id} was deleted", code="devicecontrol/Conflict")
        now = self._db.clock()
        op = Operation(
            self._db.new_operation_id(),
            tenant_id,
            device.id,
            device.serial,
            None,
            fragment_type,
            Status.PENDING,
            None,
            description,
            _jsonb(fragments),
            bulk_operation_id,
            now,
            now,
        )
        config_type = _snapshot_type(op)
        if config_type is not None and any(
            r.op.device_id == device.id and _snapshot_type(r.op) == config_type
            for r in self._db.operations.values()
        ):
            raise Conflict(
                f"A configuration snapshot of type {config_type!r} is already PENDING or"
                f" EXECUTING on device {device.id}; wait for it or cancel it first",
                code="devicecontrol/Conflict",
            )
        row = _OperationRow(op)
        self._db.operations[op.id] = row
        return self._db.shown(row)

    async def get(self, tenant_id: str, operation_id: int) -> Operation | None:
        row = self._db.operations.get(operation_id)
        return self._db.shown(row) if row is not None and row.op.tenant_id == tenant_id else None

    async def get_by_id(self, operation_id: int) -> Operation | None:
        row = self._db.operations.get(operation_id)
        return self._db.shown(row) if row is not None else None

    async def find(
        self, tenant_id: str, flt: OperationFilter, offset: int, limit: int, *, revert: bool
    ) -> list[Operation]:
        found = self._found(tenant_id, flt)
        return _page(found[::-1] if revert else found, offset, limit)

    async def count(self, tenant_id: str, flt: OperationFilter) -> int:
        return len(self._found(tenant_id, flt))

    def _found(self, tenant_id: str, flt: OperationFilter) -> list[Operation]:
        return [
            self._db.shown(r)
            for _, r in sorted(self._db.operations.items())
            if r.op.tenant_id == tenant_id and _listed(r.op, flt)
        ]

    async def update_fields(
        self, tenant_id: str, operation_id: int, description: str | None, fragments: dict[str, Any]
    ) -> Operation | None:
        """Merge extra fragments (not the command) and the description; a null removes."""
        row = self._db.operations.get(operation_id)
        if row is None or row.op.tenant_id != tenant_id:
            return None
        row.op = replace(
            row.op,
            fragments=_merged(row.op.fragments, fragments),
            description=row.op.description if description is None else description,
        )
        return self._db.shown(row)

    async def apply(self, reports: Sequence[Report]) -> list[Outcome]:
        """Apply status reports in order, in one transaction; one outcome each."""
        if not reports:
            return []
        rows = {
            r.operation_id: self._db.operations[r.operation_id]
            for r in reports
            if r.operation_id in self._db.operations
        }
        states = {op_id: self._state(row) for op_id, row in rows.items()}
        decisions = ops.decide(states, reports)
        final = ops.final_moves(decisions)
        if not final:
            return [Outcome(d) for d in decisions]
        now = self._db.clock()
        saved: dict[int, Operation] = {}
        with self._db.transaction():
            for op_id, (status, reason) in final.items():
                row = self._db.operations[op_id]
                row.op = replace(row.op, status=status, failure_reason=reason, status_time=now)
                saved[op_id] = self._db.shown(row)
            for op in sorted(saved.values(), key=lambda o: o.device_id):
                if op.status is Status.SUCCESSFUL:
                    self._save_success(op, self._db.operations[op.id].snapshot_id, now)
        return [_outcome(d, saved) for d in decisions]

    def _state(self, row: _OperationRow) -> OperationState:
        op = row.op
        return OperationState(
            op.id,
            op.tenant_id,
            op.serial,
            op.status,
            op.fragment_type,
            row.snapshot_id is not None,
            self._db.bound(op),
        )

    def _save_success(self, op: Operation, snapshot_id: int | None, now: datetime) -> None:
        """What a successful operation changes in its device's record."""
        device = self._db.objects[op.device_id]
        record = commands.DeviceRecord(device.name, device.type, _jsonb(device.fragments))
        url = f"{self._base_url}/inventory/binaries/{snapshot_id}" if snapshot_id else None
        effects = commands.success_effects(op, record, url, now)
        changes = effects.fragments
        if effects.entry is not None:
            entry = self._db.insert_object(
                op.tenant_id,
                name=effects.entry.name,
                type=commands.CONFIGURATION_ENTRY_TYPE,
                owner=None,
                fragments=effects.entry.fragments,
            )
            changes = effects.with_entry_id(entry.id)
        if changes:
            device.fragments = {**device.fragments, **_jsonb(changes)}
            device.last_updated = now

    async def attach_snapshot(self, operation_id: int, serial: str, binary_id: int) -> int | None:
        """Record the snapshot a device uploaded; the binary it replaces (or None).
        ``Conflict`` unless the operation is the device's open c8y_UploadConfigFile."""
        row = self._db.operations.get(operation_id)
        if (
            row is None
            or row.op.serial != serial
            or row.op.fragment_type != commands.UPLOAD_CONFIG
            or row.op.status not in ops.OPEN
        ):
            raise Conflict(
                f"Operation {operation_id} is not an open configuration snapshot request"
                f" of device {serial}",
                code="devicecontrol/Conflict",
            )
        if binary_id not in self._db.objects:
            raise ForeignKeyViolation(f"managed object {binary_id} does not exist")
        previous, row.snapshot_id = row.snapshot_id, binary_id
        return previous

    async def open_for(self, serials: Sequence[str]) -> list[Operation]:
        """PENDING and EXECUTING operations of these devices (that still hold their id),
        oldest first."""
        return [
            self._db.shown(r)
            for _, r in sorted(self._db.operations.items())
            if r.op.serial in serials and r.op.status in ops.OPEN and self._db.bound(r.op)
        ]

    async def undispatched(self, limit: int) -> list[Operation]:
        waiting = [
            r
            for _, r in sorted(self._db.operations.items())
            if r.op.status is Status.PENDING and r.dispatched_at is None and self._db.bound(r.op)
        ]
        return [self._db.shown(r) for r in waiting[:limit]]

    async def mark_dispatched(self, ids: Sequence[int]) -> None:
        now = self._db.clock()
        for op_id in ids:
            if op_id in self._db.operations:
                self._db.operations[op_id].dispatched_at = now

    async def time_out(self, pending_after: float, executing_after: float) -> list[Operation]:
        """FAIL every operation open past its limit; returns them."""
        now = self._db.clock()
        limits = {Status.PENDING: pending_after, Status.EXECUTING: executing_after}
        timed_out: list[Operation] = []
        for _, row in sorted(self._db.operations.items()):
            limit = limits.get(row.op.status)
            if limit is None or (now - row.op.status_time).total_seconds() <= limit:
                continue
            reason = f"Timed out: {row.op.status} for more than {_seconds(limit)} s"
            row.op = replace(row.op, status=Status.FAILED, failure_reason=reason, status_time=now)
            timed_out.append(self._db.shown(row))
        return timed_out


# --- all of them ----------------------------------------------------------------------


@dataclass
class MemoryStores:
    """Every in-memory adapter, on one database."""

    db: MemoryDatabase
    inventory: MemoryInventory
    identity: MemoryIdentity
    users: MemoryUsers
    registry: MemoryDeviceRegistry
    requests: MemoryRequests
    binaries: MemoryBinaries
    files: MemoryFiles
    operations: MemoryOperations

    @classmethod
    def make(
        cls,
        *tenants: str,
        base_url: str = "http://fleetgate.test",
        clock: Callable[[], datetime] = _utc_now,
        file_clock: Callable[[], float] = time.time,
    ) -> MemoryStores:
        """The adapters on a new database that holds these tenants; ``clock`` is the
        database's ``now()``, ``file_clock`` the file store's (Unix seconds)."""
        db = MemoryDatabase(clock)
        for tenant_id in tenants:
            db.add_tenant(tenant_id)
        return cls(
            db,
            MemoryInventory(db),
            MemoryIdentity(db),
            db.users,
            MemoryDeviceRegistry(db),
            MemoryRequests(db),
            MemoryBinaries(db),
            MemoryFiles(clock=file_clock),
            MemoryOperations(db, base_url),
        )
