"""The small interfaces the services need from the outside world.

Services depend on these Protocols only; the adapters (``fleetgate.db``,
``fleetgate.mqtt``, ``fleetgate.files``) implement them, and the composition root
(``fleetgate.app``) hands the services their adapters. Unit tests hand them in-memory
adapters (``tests/memory/``) and recording fakes (``tests/fakes.py``);
``tests/port_contracts.py`` holds the in-memory and the PostgreSQL adapters of the
riskiest ports to one contract.
"""

from __future__ import annotations

from collections.abc import (
    AsyncIterable,
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Mapping,
    Sequence,
)
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from fleetgate.domain.batch_apply import StagedRecord
from fleetgate.domain.batch_state import BatchState, Claim, NewBatch, RecordOutcome
from fleetgate.domain.binaries import BinaryFile, NewContent, StagedFile, StoredFile
from fleetgate.domain.bootstrap import NewDeviceRequest, RequestStatus
from fleetgate.domain.bulk_operations import (
    BulkFilter,
    BulkOperation,
    NewBulkOperation,
    Prepared,
    Refusal,
    StepReport,
    Target,
    TargetState,
)
from fleetgate.domain.child_devices import Attached, Detached, RemovedChild
from fleetgate.domain.device_messages import ConnectivityReport
from fleetgate.domain.device_migrations import Entered, Migration
from fleetgate.domain.devices import ManagedObject, Registration
from fleetgate.domain.enablement import Enablement
from fleetgate.domain.inventory import Deleted, ExternalId, ObjectFilter, Reference
from fleetgate.domain.inventory_query import Query
from fleetgate.domain.lockout import LoginFailures
from fleetgate.domain.operations import (
    DeviceTarget,
    Operation,
    OperationFilter,
    Outcome,
    Report,
)
from fleetgate.domain.tenant_options import TenantOption
from fleetgate.domain.tenants import DeletedTenant, NewTenantRows, TenantRecord, TenantStatus
from fleetgate.domain.traces import TraceEntry
from fleetgate.domain.trust import TrustedCertificate
from fleetgate.domain.users import Role, Tenant, User

#: Tells a failure worth retrying (the database away) from one that would fail again.
TransientCheck = Callable[[BaseException], bool]


# --- users and the broker -------------------------------------------------------------


class UserStore(Protocol):
    async def find_user(self, tenant_id: str, username: str) -> tuple[Tenant, User] | None: ...

    async def users_with_role(self, role: Role) -> list[User]: ...

    async def ensure_tenant(self, tenant: Tenant) -> bool: ...

    async def ensure_user(
        self, tenant_id: str, username: str, password_hash: str, roles: Iterable[Role]
    ) -> bool: ...

    async def update_failures(
        self, tenant_id: str, username: str, change: Callable[[LoginFailures], LoginFailures]
    ) -> LoginFailures | None:
        """Apply ``change`` to the user's failed logins atomically (several service
        instances count together); None when there is no such user."""

    async def clear_failures(self, tenant_id: str, username: str) -> None: ...


class TenantStore(Protocol):
    """Tenants as the management tenant manages them (db/tenants.py)."""

    async def list_tenants(self, offset: int, limit: int) -> list[TenantRecord]: ...

    async def count_tenants(self) -> int: ...

    async def get_tenant(self, tenant_id: str) -> TenantRecord | None: ...

    async def suspended_tenants(self) -> list[str]: ...

    async def create_tenant(self, new: NewTenantRows) -> TenantRecord | None:
        """The new tenant, its admin and bootstrap user in one transaction; None when
        the id is taken; ``Conflict`` when the domain is."""

    async def update_tenant(
        self,
        tenant_id: str,
        profile: Mapping[str, str | None],
        status: TenantStatus | None,
        admin_hash: str | None = None,
    ) -> TenantRecord | None:
        """Change the tenant, and its admin user's e-mail and password (``admin_hash``),
        in one transaction; ``Conflict`` when the new domain is taken."""

    async def delete_tenant(self, tenant_id: str) -> DeletedTenant | None:
        """Delete the (non-management) tenant and all it owns in one transaction."""


class OperatorStore(Protocol):
    """Operator users as an administrator changes them (db/users.py)."""

    async def find_user(self, tenant_id: str, username: str) -> tuple[Tenant, User] | None: ...

    async def create_user(
        self,
        tenant_id: str,
        username: str,
        password_hash: str,
        *,
        enabled: bool,
        profile: Mapping[str, str | None],
    ) -> User | None:
        """The new user (no roles); None when the user name is taken."""

    async def update_user(
        self,
        tenant_id: str,
        username: str,
        *,
        enabled: bool | None,
        password_hash: str | None,
        profile: Mapping[str, str | None],
        clear_failures: bool,
    ) -> User | None: ...

    async def add_role(self, tenant_id: str, username: str, role: Role) -> User | None: ...

    async def remove_role(
        self, tenant_id: str, username: str, role: Role, *, keep_one_of: frozenset[Role]
    ) -> User | None:
        """Take ``role`` away unless the user would then hold none of ``keep_one_of``
        (atomically); None when there is no such user or it would."""


class DeviceUsers(Protocol):
    """Users as the device use cases see them (``device_<id>``, and operators' lookups)."""

    async def find_user(self, tenant_id: str, username: str) -> tuple[Tenant, User] | None: ...

    async def list_users(
        self, tenant_id: str, *, only_devices: bool, offset: int, limit: int
    ) -> list[User]: ...

    async def count_users(self, tenant_id: str, *, only_devices: bool) -> int: ...

    async def set_enabled(self, tenant_id: str, username: str, enabled: bool) -> User | None: ...

    async def delete_user(self, tenant_id: str, username: str) -> bool: ...


class BrokerPush(Protocol):
    """The broker plugin's state, as the service changes it (see services/broker.py)."""

    async def push(self, lines: list[str]) -> None:
        """Apply these control lines now (if the broker is reachable; a resync follows)."""

    async def resync(self) -> None:
        """Push the whole state again, atomically (after changes too broad for lines)."""

    async def discard_sessions(self, device_ids: list[str]) -> list[str]:
        """Make the broker drop what it keeps for these client ids (subscriptions, queued
        messages), closing their live connections; the ids it was done for (none while
        the broker is unreachable)."""


class TraceNotes(Protocol):
    """Where the service notes what it did for traced devices (services/traces.py)."""

    def is_traced(self, device_id: str) -> bool:
        """True while the device's trace runs (an in-memory look-up: cheap for all)."""

    async def note(self, entries: Sequence[TraceEntry]) -> None:
        """Keep these entries of traced devices (the others are dropped)."""


class Publisher(Protocol):
    """Publishes to devices (the device link): QoS 1, waits only for room."""

    async def publish(self, topic: str, payload: bytes) -> None: ...


# --- trust ----------------------------------------------------------------------------


class TrustStore(Protocol):
    """The trusted certificates of every tenant (see db/trust.py)."""

    async def add(self, cert: TrustedCertificate) -> TrustedCertificate:
        """Store a new certificate; ``Conflict`` when its fingerprint is already stored."""

    async def get(self, tenant_id: str, fingerprint: str) -> TrustedCertificate | None: ...

    async def list_certificates(
        self, tenant_id: str, offset: int, limit: int
    ) -> list[TrustedCertificate]: ...

    async def count(self, tenant_id: str) -> int: ...

    async def update(self, cert: TrustedCertificate) -> TrustedCertificate | None:
        """Write name, status and auto-registration; None when the certificate is gone."""

    async def delete(self, tenant_id: str, fingerprint: str) -> bool: ...

    async def all_certificates(self) -> list[TrustedCertificate]: ...


class BrokerChanges(Protocol):
    """Tells the broker side that a tenant's trusted certificates changed (committed)."""

    async def trust_changed(self, tenant_id: str) -> None:
        """Rewrite the broker's CA directory and push the tenant's CA lines."""


# --- inventory, identity, devices -----------------------------------------------------


class Inventory(Protocol):
    """Managed objects of a tenant and the references between them (db/inventory.py)."""

    async def create(
        self,
        tenant_id: str,
        *,
        name: str | None,
        type: str | None,
        owner: str | None,
        fragments: dict[str, Any],
    ) -> ManagedObject: ...

    async def get(self, tenant_id: str, object_id: int) -> ManagedObject | None: ...

    async def find(
        self, tenant_id: str, flt: ObjectFilter, offset: int, limit: int
    ) -> list[ManagedObject]: ...

    async def count(self, tenant_id: str, flt: ObjectFilter) -> int: ...

    async def update(
        self, tenant_id: str, object_id: int, plain: dict[str, Any], fragments: dict[str, Any]
    ) -> ManagedObject | None:
        """Set name/type/owner given in ``plain``; merge ``fragments`` (a null removes one)."""

    async def update_device(
        self, device_id: str, plain: dict[str, Any], fragments: dict[str, Any]
    ) -> bool:
        """:meth:`update` of the device that holds ``device_id`` (its ``c8y_Serial``), in
        whatever tenant, in one step; False when no device holds it."""

    async def delete(
        self,
        tenant_id: str,
        object_id: int,
        *,
        through: frozenset[str] = frozenset(),
        removed_by: str | None = None,
    ) -> Deleted | None:
        """Delete the object and its descendants through the kinds of child reference in
        ``through``, in one transaction; a deleted child device whose gateway stays is
        recorded as removed from it (``deleted``, by ``removed_by``) in the same one. None
        if the object did not exist."""

    async def is_binary(self, tenant_id: str, object_id: int) -> bool: ...

    async def references(
        self, tenant_id: str, object_ids: Sequence[int], *, children: bool = True
    ) -> dict[int, list[Reference]]:
        """Every reference from and to each object, as the object shows them, in one
        query (without ``children``, the parents only); ordered by kind, then the other
        object's id."""

    async def add_child(self, tenant_id: str, parent_id: int, kind: str, child_id: int) -> bool:
        """Reference ``child_id`` from ``parent_id``; False when either is not in the tenant."""

    async def children(
        self, tenant_id: str, parent_id: int, kind: str, offset: int, limit: int
    ) -> list[ManagedObject]: ...

    async def count_children(self, tenant_id: str, parent_id: int, kind: str) -> int: ...

    async def child(
        self, tenant_id: str, parent_id: int, kind: str, child_id: int
    ) -> ManagedObject | None: ...

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

    async def remove_child(
        self, tenant_id: str, parent_id: int, kind: str, child_id: int
    ) -> bool: ...

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
        """Merge the connection fragments of device ``device_id`` and remember which
        connection it is on (only if it is still on ``only_if_connection``, when given)."""

    async def connected_devices(self) -> list[tuple[str, str]]:
        """(tenant, device id) of every device shown CONNECTED."""


class GroupStore(Protocol):
    """Device groups' membership (db/groups.py): what a group reaches through childAssets."""

    async def device_ids(
        self, tenant_id: str, group_id: int, where: Query | None = None
    ) -> list[int]:
        """The group's devices (``c8y_IsDevice``), ascending: every device reached from
        the group through ``childAssets`` at any depth — a subgroup's devices included —
        that passes ``where`` (an inventory query); none for an object not in the tenant."""

    async def reaches(self, tenant_id: str, ancestor_id: int, object_id: int) -> bool:
        """Whether ``object_id`` is reached from ``ancestor_id`` through childAssets."""


class Identity(Protocol):
    """External ids (db/inventory.py); ``c8y_Serial`` is the device id, global."""

    async def add(self, tenant_id: str, object_id: int, type: str, value: str) -> ExternalId:
        """Give the object this external id (a device id is claimed across tenants)."""

    async def get(self, tenant_id: str, type: str, value: str) -> ExternalId | None: ...

    async def device(self, device_id: str) -> ExternalId | None:
        """The device that holds ``device_id``, in whatever tenant."""

    async def of_object(self, tenant_id: str, object_id: int) -> list[ExternalId]: ...

    async def delete(self, tenant_id: str, type: str, value: str) -> bool: ...


class ChildConnections(Protocol):
    """Gateway children's online and offline (db/connections.py): what each child shows
    follows :func:`fleetgate.domain.connections.decide`, and only a change is written."""

    async def report(
        self, reports: Sequence[ConnectivityReport], at: datetime
    ) -> list[ConnectivityReport]:
        """Keep what gateways reported of their children (per child, the last report in
        ``reports`` wins) and bring those children's connection up to date, in one
        transaction; the reports refused because the device is not (or no longer) that
        gateway's child in the gateway's tenant — nothing of them is kept."""

    async def refresh(self, devices: Sequence[tuple[str, str]], at: datetime) -> None:
        """Bring up to date the connection shown by every child of these devices
        ((tenant, device id)), and by those of them that are children or still show a
        gateway (one transaction, however many children)."""

    async def refresh_all(self, at: datetime) -> None:
        """The same for every child and every device that still shows a gateway."""

    async def attached(self) -> list[tuple[str, str]]:
        """(child device id, gateway device id) of every child attached to a gateway (a
        parent with a device id), in every tenant, by child id."""


class ChildDeviceStore(Protocol):
    """Gateways' child devices as operators attach and detach them (db/child_devices.py)."""

    async def attach(self, tenant_id: str, gateway_id: int, child_id: int) -> Attached:
        """Reference ``child_id`` as a child device of ``gateway_id`` if
        :func:`fleetgate.domain.child_devices.decide_attach` allows it (its errors are
        raised, a race for the same child lost is its 409 too) and forget that an operator
        removed the child from this gateway, in one transaction (``made`` is False when
        the child was this gateway's already)."""

    async def detach(
        self, tenant_id: str, gateway_id: int, child_id: int, removed_by: str | None
    ) -> Detached | None:
        """Drop the reference and record the removal (``detached``) under the child's
        device id, in one transaction; None when it was not the gateway's child."""

    async def removed_children(self, tenant_id: str, gateway_id: int) -> list[RemovedChild]:
        """What operators removed from the gateway (detached or deleted), by device id."""


class DeviceRegistry(Protocol):
    """Registering devices and their users in one transaction (db/devices.py)."""

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
        """Find or make the device ``device_id`` and its user; mark it on ``connection_id``.
        ``Conflict`` (``identity/Duplicate``) when another tenant holds the id."""

    async def ensure_user(self, tenant_id: str, device_id: str) -> tuple[bool, bool]:
        """Make the device user unless it exists: (created, enabled)."""

    async def released(self, limit: int) -> list[str]:
        """Device ids that lost their device, whose broker sessions are still to discard."""

    async def discarded(self, device_ids: list[str]) -> None: ...


# --- tenant options -------------------------------------------------------------------


class TenantOptionStore(Protocol):
    """A tenant's options (db/tenant_options.py), ordered by category, then key."""

    async def find(self, tenant_id: str, offset: int, limit: int) -> list[TenantOption]: ...

    async def count(self, tenant_id: str) -> int: ...

    async def of_category(self, tenant_id: str, category: str) -> list[TenantOption]: ...

    async def get(self, tenant_id: str, category: str, key: str) -> TenantOption | None: ...

    async def put(self, tenant_id: str, option: TenantOption) -> TenantOption:
        """Store the option, replacing its value if it exists."""

    async def replace(self, tenant_id: str, option: TenantOption) -> bool:
        """Set the value of an option that exists; False when it does not."""

    async def delete(self, tenant_id: str, category: str, key: str) -> bool: ...

    async def child_auto_registration(self, tenant_id: str) -> bool:
        """Whether the tenant's gateways may register unknown children (the option
        ``fleetgate.gateways`` / ``childAutoRegistration``; True when it is not set)."""


# --- bootstrap ------------------------------------------------------------------------


class NewDeviceRequests(Protocol):
    """New device requests, and issuing credentials in one transaction (db/bootstrap.py)."""

    async def create(self, tenant_id: str, request_id: str) -> NewDeviceRequest:
        """A request for a device id that no other tenant holds (decision 0006)."""

    async def get(self, tenant_id: str, request_id: str) -> NewDeviceRequest: ...

    async def find(self, tenant_id: str, offset: int, limit: int) -> list[NewDeviceRequest]: ...

    async def count(self, tenant_id: str) -> int: ...

    async def move(
        self,
        tenant_id: str,
        request_id: str,
        decide: Callable[[RequestStatus], RequestStatus],
    ) -> NewDeviceRequest:
        """Apply ``decide`` to the current status under a row lock (concurrent PUTs queue)."""

    async def delete(self, tenant_id: str, request_id: str) -> None: ...

    async def status_of(self, tenant_id: str, request_id: str) -> RequestStatus | None: ...

    async def mark_pending(self, tenant_id: str, request_id: str) -> None:
        """The device asked: WAITING_FOR_CONNECTION becomes PENDING_ACCEPTANCE."""

    async def issue(self, tenant_id: str, request_id: str, password_hash: str) -> Enablement | None:
        """If the request is still ACCEPTED: make the device and its user with this password
        and delete the request, in one transaction; whether the device may log in (an
        existing device an operator disabled stays so). None otherwise (handed out once)."""


# --- binaries -------------------------------------------------------------------------


class LockedBinaries(Protocol):
    """Changes to binaries, made while their contents' locks are held."""

    async def in_use(self, sha256: str) -> bool:
        """Whether any binary (of any tenant) has this content."""

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

    async def replace(
        self, tenant_id: str, binary_id: int, expected_sha256: str, content: NewContent
    ) -> ManagedObject | None:
        """New content, if it is still ``expected_sha256`` (None otherwise)."""

    async def delete(self, tenant_id: str, binary_id: int, expected_sha256: str) -> bool:
        """Delete the binary if its content is still ``expected_sha256``."""


class BinaryStore(Protocol):
    """Binaries' rows and the content locks that order them with the files (db/binaries.py)."""

    async def file_of(self, tenant_id: str, binary_id: int) -> BinaryFile | None: ...

    async def file_by_id(self, binary_id: int) -> BinaryFile | None:
        """The binary with this id in any tenant (for a signed URL, which names no tenant)."""

    async def all_contents(self) -> set[str]:
        """The SHA-256 of every binary of every tenant."""

    def content(self, *sha256: str) -> AbstractAsyncContextManager[LockedBinaries]:
        """Hold the content lock of each SHA-256 for the ``async with`` block."""


class FileStorage(Protocol):
    """The content-addressed file store (files/store.py)."""

    def staged(
        self, chunks: AsyncIterable[bytes], *, max_size: int | None = None
    ) -> AbstractAsyncContextManager[StagedFile]:
        """The content of ``chunks`` staged, removed on exit unless kept; ``TooLarge``
        past ``max_size`` bytes."""

    async def keep(self, staged: StagedFile) -> StoredFile:
        """Give a staged file its name in the store (nothing to do if that exists)."""

    async def discard(self, sha256: str) -> bool: ...

    def path(self, sha256: str) -> Path: ...

    async def contents(self) -> list[str]: ...

    async def remove_stale_uploads(self, older_than: float) -> int: ...


# --- operations -----------------------------------------------------------------------


class FileResolver(Protocol):
    """The binaries a command names (``fleetgate.services.binaries.Binaries``)."""

    async def resolve_url(self, tenant_id: str, url: str) -> BinaryFile | None: ...

    async def store(
        self,
        tenant_id: str,
        *,
        name: str,
        content_type: str,
        chunks: AsyncIterable[bytes],
        owner: str | None,
        fragments: dict[str, Any] | None = None,
    ) -> ManagedObject: ...

    async def delete(self, tenant_id: str, binary_id: int) -> None: ...


class OperationStore(Protocol):
    """Operations (db/operations.py)."""

    async def device(self, tenant_id: str, device_id: int) -> DeviceTarget | None: ...

    async def configuration_dumps(self, tenant_id: str, url: str) -> list[dict[str, Any]]:
        """Configuration repository entries (c8y_ConfigurationDump) whose file is ``url``."""

    async def profile(self, tenant_id: str, profile_id: int) -> ManagedObject | None:
        """The tenant's device profile (type c8y_Profile) of this id, or None."""

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
        """A PENDING operation; ``Conflict`` (``devicecontrol/Conflict``) when the device is
        gone, or a snapshot request of the same configuration type is open on it."""

    async def get(self, tenant_id: str, operation_id: int) -> Operation | None: ...

    async def get_by_id(self, operation_id: int) -> Operation | None:
        """The operation whatever its tenant (for requests a signed URL authorises)."""

    async def find(
        self, tenant_id: str, flt: OperationFilter, offset: int, limit: int, *, revert: bool
    ) -> list[Operation]: ...

    async def count(self, tenant_id: str, flt: OperationFilter) -> int: ...

    async def update_fields(
        self, tenant_id: str, operation_id: int, description: str | None, fragments: dict[str, Any]
    ) -> Operation | None:
        """Merge extra fragments (not the command) and the description; a null removes."""

    async def apply(self, reports: Sequence[Report]) -> list[Outcome]:
        """Apply status reports in order, in one transaction; one outcome each. Each is
        decided by :func:`fleetgate.domain.operations.decide` (a device reaches only the
        operations of the id it holds), and a success's device-record changes are saved
        with it."""

    async def attach_snapshot(self, operation_id: int, serial: str, binary_id: int) -> int | None:
        """Record the snapshot a device uploaded; the binary it replaces (or None).
        ``Conflict`` unless the operation is the device's open c8y_UploadConfigFile."""

    async def open_for(
        self, devices: Sequence[str], children: Sequence[tuple[str, str]] = ()
    ) -> list[Operation]:
        """PENDING and EXECUTING operations, oldest first — only those whose device still
        holds the id they were made for (decision 0006): for each of ``devices`` (asking
        for itself) its own, unless it is a child now, and its children's; for each
        (child, gateway) of ``children`` the child's while it is that gateway's child."""

    async def undispatched(self, limit: int) -> list[Operation]:
        """PENDING operations never published, oldest first (bound as for ``open_for``)."""

    async def mark_dispatched(self, ids: Sequence[int]) -> None: ...

    def claim_undispatched(
        self, limit: int, older_than: float
    ) -> AbstractAsyncContextManager[list[Operation]]:
        """PENDING operations never published, created more than ``older_than`` seconds
        ago, oldest first (bound, and not held back, as for ``undispatched``), reserved
        for this caller alone while the block runs (another service instance skips them)
        and marked dispatched when it ends normally."""

    async def time_out(self, pending_after: float, executing_after: float) -> list[Operation]:
        """FAIL every operation open past its limit; returns them."""


# --- bulk operations ------------------------------------------------------------------

#: Checks a bulk operation's prototype for a batch of its devices (tenant, prototype,
#: devices): each device's operation, or why it is refused.
BulkCheck = Callable[
    [str, dict[str, Any], Sequence[DeviceTarget]], Awaitable[list[Prepared | Refusal]]
]


class BulkOperationStore(Protocol):
    """Bulk operations and their targets (db/bulk_operations.py)."""

    async def create(
        self,
        tenant_id: str,
        new: NewBulkOperation,
        devices: Sequence[int],
        canary: Collection[int] = (),
    ) -> BulkOperation:
        """The bulk operation with its targets fixed: ``devices`` (those that are the
        tenant's and still exist), the ones in ``canary`` (the canary group's) marked as
        its canary; ``NotFound`` for a group or parent not in the tenant,
        ``ValidationFailed`` for a ``groupId`` or canary group that is no group."""

    async def failed_devices(self, tenant_id: str, bulk_id: int) -> list[int] | None:
        """The devices whose latest operation of the bulk operation FAILED, ascending;
        None when the tenant has no such bulk operation."""

    async def get(self, tenant_id: str, bulk_id: int) -> BulkOperation | None: ...

    async def find(
        self, tenant_id: str, flt: BulkFilter, offset: int, limit: int
    ) -> list[BulkOperation]: ...

    async def count(self, tenant_id: str, flt: BulkFilter) -> int: ...

    async def reschedule(
        self, tenant_id: str, bulk_id: int, merged: NewBulkOperation
    ) -> tuple[BulkOperation, BulkOperation | None] | None:
        """Changed in place while nothing was created, else cancelled and replaced by a new
        one for the devices still waiting: (the result, the replaced one or None)."""

    async def cancel(self, tenant_id: str, bulk_id: int, reason: str) -> BulkOperation | None:
        """No more operations are created; those created go on."""

    async def pause(self, tenant_id: str, bulk_id: int, reason: str) -> BulkOperation | None: ...

    async def resume(self, tenant_id: str, bulk_id: int) -> BulkOperation | None: ...

    async def targets(
        self, tenant_id: str, bulk_id: int, state: TargetState | None, offset: int, limit: int
    ) -> list[Target]: ...

    async def count_targets(self, tenant_id: str, bulk_id: int, state: TargetState | None) -> int:
        """How many of the bulk operation's targets are in ``state`` (any: None)."""
        ...


class RolloutSteps(Protocol):
    """The scheduler's steps (db/rollout_steps.py)."""

    async def step(self, check: BulkCheck) -> StepReport | None:
        """One step of one due bulk operation, claimed so that no other scheduler takes
        it meanwhile; None when none is due."""


class BatchStore(Protocol):
    """Staged batch updates (``fleetgate.db.batch.PgBatchUpdates``)."""

    async def devices(self, tenant_id: str, ids: list[int]) -> dict[int, ManagedObject]: ...

    async def save(self, batch: NewBatch) -> int: ...

    async def get(self, tenant_id: str, batch_id: int) -> BatchState | None: ...

    async def claim(
        self, tenant_id: str, batch_id: int, by: str, now: datetime, lease: timedelta
    ) -> Claim: ...

    async def pending(self, batch_id: int, limit: int) -> list[StagedRecord]: ...

    async def apply(
        self, tenant_id: str, batch_id: int, device_type: str, record: StagedRecord
    ) -> RecordOutcome: ...

    async def finish(self, batch_id: int, now: datetime) -> None: ...

    async def discard(self, tenant_id: str, batch_id: int) -> bool: ...

    async def purge(self, before: datetime) -> int: ...


class Workbooks(Protocol):
    """``.xlsx`` templates (``fleetgate.sheets.XlsxWorkbooks``); blocking calls."""

    def read(self, data: bytes) -> list[list[str]]: ...

    def write(self, rows: Sequence[Sequence[str | float | int]]) -> bytes: ...


# --- device migrations between tenants ---------------------------------------------------


class DeviceMigrationStore(Protocol):
    """Migrations of devices between tenants (see db/device_migrations.py). Every method
    that takes a tenant sees only the migrations of which it is the source or the target;
    the decisions are fleetgate.domain.device_migrations'."""

    async def get(self, tenant_id: str, migration_id: int) -> Migration | None: ...

    async def find(
        self, tenant_id: str, offset: int, limit: int, *, count: bool
    ) -> tuple[list[Migration], int | None]: ...

    async def request(
        self,
        source: str,
        target: str,
        object_id: int,
        *,
        with_children: bool,
        by: str,
        now: datetime,
        ttl: timedelta,
        max_attempts: int,
    ) -> Migration:
        """A new request, refused (raised) when the device cannot move to ``target``."""

    async def issue_code(
        self, tenant_id: str, migration_id: int, by: str, code_hash: str, now: datetime
    ) -> Migration: ...

    async def enter_code(
        self,
        tenant_id: str,
        migration_id: int,
        by: str,
        code: str,
        verify: Callable[[str, str], Awaitable[bool]],
        now: datetime,
    ) -> Entered:
        """Check the code; move the device in the same transaction when it is right."""

    async def cancel(
        self, tenant_id: str, migration_id: int, by: str, now: datetime
    ) -> Migration: ...
