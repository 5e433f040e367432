"""Moving a device to another tenant, as EnOS's "Migrating Devices" does (decision 0014,
docs/api.md "Device migrations").

An administrator of the source tenant asks to move one device — a gateway with or without
its children — to a target tenant (:func:`plan_move`). A one-time verification code is
issued to an administrator of the target tenant who asks for it (:func:`issue_code`); the
move happens only when a target administrator enters that code before the request expires
(:func:`confirm`), with at most :data:`MAX_ATTEMPTS` wrong codes. The states and their
transitions are one table, :data:`TRANSITIONS`::

    REQUESTED ──right code──▶ CONFIRMED
        │ ──wrong code, attempts left──▶ REQUESTED
        │ ──last wrong code──▶ EXHAUSTED
        │ ──past expires_at──▶ EXPIRED
        └ ──cancel (source or target)──▶ CANCELLED

Every function here is pure: the clock is an argument, the code's hash is compared by the
caller's verifier (scrypt, constant time) and handed in as a boolean.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from fleetgate.domain import lifecycle
from fleetgate.domain.connections import FRAGMENT as CONNECTION_FRAGMENT
from fleetgate.domain.connections import Connection, ConnectionStatus
from fleetgate.domain.errors import (
    AccessDenied,
    Conflict,
    FleetgateError,
    NotFound,
    ValidationFailed,
)
from fleetgate.domain.operations import Operation
from fleetgate.domain.tenants import is_tenant_id
from fleetgate.domain.trust import subject_key
from fleetgate.domain.users import User

#: How long a request (and so its code) is valid.
CODE_TTL = timedelta(minutes=10)
#: Wrong codes a request survives; the last one ends it (EXHAUSTED).
MAX_ATTEMPTS = 5
#: Digits of a verification code: 10⁸ codes against 5 guesses.
CODE_DIGITS = 8
#: The fragment of a certificate device that names the CA of its last certificate login.
CA_FRAGMENT = "fleetgate_CertificateAuthority"


class MigrationStatus(StrEnum):
    REQUESTED = "REQUESTED"
    CONFIRMED = "CONFIRMED"
    EXPIRED = "EXPIRED"
    EXHAUSTED = "EXHAUSTED"
    CANCELLED = "CANCELLED"


class Step(StrEnum):
    """What can happen to a migration."""

    RIGHT_CODE = "right code"
    WRONG_CODE = "wrong code"
    LAST_WRONG_CODE = "last wrong code"
    EXPIRE = "expire"
    CANCEL = "cancel"


#: The state machine: (status, step) → next status. Anything else is refused.
TRANSITIONS: dict[tuple[MigrationStatus, Step], MigrationStatus] = {
    (MigrationStatus.REQUESTED, Step.RIGHT_CODE): MigrationStatus.CONFIRMED,
    (MigrationStatus.REQUESTED, Step.WRONG_CODE): MigrationStatus.REQUESTED,
    (MigrationStatus.REQUESTED, Step.LAST_WRONG_CODE): MigrationStatus.EXHAUSTED,
    (MigrationStatus.REQUESTED, Step.EXPIRE): MigrationStatus.EXPIRED,
    (MigrationStatus.REQUESTED, Step.CANCEL): MigrationStatus.CANCELLED,
}


def check_target_tenant(raw: Any) -> str:
    """The ``targetTenant`` of a request: a tenant id (:func:`is_tenant_id`), or 422."""
    if not isinstance(raw, str) or not raw:
        raise ValidationFailed("targetTenant (the id of the tenant to move to) is required")
    if not is_tenant_id(raw):
        raise ValidationFailed(f"Tenant {raw[:70]!r} does not exist")
    return raw


def migration_not_found(migration_id: int) -> NotFound:
    return NotFound(f"Migration {migration_id} not found", code="inventory/Not Found")


def not_open(migration: Migration) -> Conflict:
    """The request is over: why, in words an operator can act on."""
    why = {
        MigrationStatus.CONFIRMED: "was confirmed: the device moved",
        MigrationStatus.EXPIRED: f"expired at {_iso(migration.expires_at)}",
        MigrationStatus.EXHAUSTED: f"ended after {migration.attempts} wrong codes",
        MigrationStatus.CANCELLED: "was cancelled",
    }.get(migration.status, "is not open")
    return Conflict(
        f"Migration {migration.id} {why}; the source tenant's administrator may request a new one",
        code="inventory/migrationClosed",
    )


def step(status: MigrationStatus, what: Step) -> MigrationStatus:
    """The next status, or :class:`Conflict` for a transition the table does not have."""
    found = TRANSITIONS.get((status, what))
    if found is None:
        raise Conflict(f"a {status.value} migration cannot take a {what.value}")
    return found


@dataclass(frozen=True, slots=True)
class Migration:
    """One request to move a device, as stored (``status`` as last written: see
    :func:`at`)."""

    id: int
    source_tenant: str
    target_tenant: str
    object_id: int | None
    device_id: str
    with_children: bool
    status: MigrationStatus
    requested_by: str
    requested_at: datetime
    expires_at: datetime
    max_attempts: int
    attempts: int = 0
    code_hash: str | None = None
    code_issued_at: datetime | None = None
    code_issued_to: str | None = None
    finished_at: datetime | None = None
    finished_by: str | None = None
    moved: tuple[str, ...] = ()

    @property
    def attempts_left(self) -> int:
        return max(0, self.max_attempts - self.attempts)

    def at(self, now: datetime) -> Migration:
        """This migration as it stands at ``now``: a REQUESTED one past its expiry is
        EXPIRED (finished when it expired)."""
        if self.status is MigrationStatus.REQUESTED and now >= self.expires_at:
            return replace(
                self,
                status=step(self.status, Step.EXPIRE),
                finished_at=self.expires_at,
            )
        return self


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- who may do what --------------------------------------------------------------------


def visible_to(migration: Migration, tenant_id: str) -> bool:
    """Only the two tenants concerned see a migration; anyone else gets a 404."""
    return tenant_id in (migration.source_tenant, migration.target_tenant)


def check_target(migration: Migration, tenant_id: str) -> None:
    """Reading the code and confirming are the target's: the source gets 403 (it knows
    the migration), anyone else the 404 of a migration that does not exist."""
    if not visible_to(migration, tenant_id):
        raise migration_not_found(migration.id)
    if tenant_id != migration.target_tenant:
        raise AccessDenied(
            f"Only administrators of the target tenant {migration.target_tenant} can read"
            " and enter the verification code of migration"
            f" {migration.id}"
        )


# --- codes ------------------------------------------------------------------------------


def new_code(rng: secrets.SystemRandom | None = None) -> str:
    """A fresh verification code: :data:`CODE_DIGITS` decimal digits."""
    source = rng or secrets.SystemRandom()
    return "".join(str(source.randrange(10)) for _ in range(CODE_DIGITS))


def normalise_code(raw: Any) -> str:
    """A code as typed (spaces and dashes allowed between digits), or 422."""
    if not isinstance(raw, str):
        raise ValidationFailed("code must be a string of digits")
    code = raw.replace(" ", "").replace("-", "")
    if len(code) != CODE_DIGITS or not code.isascii() or not code.isdigit():
        raise ValidationFailed(f"code must be {CODE_DIGITS} digits")
    return code


def issue_code(
    migration: Migration, tenant_id: str, by: str, code_hash: str, now: datetime
) -> Migration:
    """A new code for the target's administrator ``by``: it replaces any earlier one (that
    one no longer works). The request's expiry and its attempts stay as they are."""
    check_target(migration, tenant_id)
    current = migration.at(now)
    if current.status is not MigrationStatus.REQUESTED:
        raise not_open(current)
    return replace(current, code_hash=code_hash, code_issued_at=now, code_issued_to=by)


@dataclass(frozen=True, slots=True)
class Confirmation:
    """What entering a code did: the migration as it now stands, whether the device is to
    move now, and the error to answer when it is not."""

    migration: Migration
    accepted: bool
    error: FleetgateError | None = None


def needs_check(migration: Migration, tenant_id: str, now: datetime) -> Migration:
    """Before a code is compared: the target's, open (else the error is raised, with the
    migration as it stands at ``now`` to store when it just expired)."""
    check_target(migration, tenant_id)
    current = migration.at(now)
    if current.status is not MigrationStatus.REQUESTED:
        raise not_open(current)
    if current.code_hash is None:
        raise Conflict(
            f"No verification code was issued for migration {migration.id} yet: an"
            " administrator of the target tenant gets one first",
            code="inventory/noCode",
        )
    return current


def confirm(
    migration: Migration, tenant_id: str, by: str, matches: bool, now: datetime
) -> Confirmation:
    """Enter a code that ``matches`` (or not) the issued one. A right code confirms (the
    caller moves the device in the same transaction); a wrong one costs an attempt, and
    the last attempt ends the request."""
    current = needs_check(migration, tenant_id, now)
    if matches:
        confirmed = replace(
            current,
            status=step(current.status, Step.RIGHT_CODE),
            finished_at=now,
            finished_by=by,
            code_hash=None,
            code_issued_at=None,
            code_issued_to=None,
        )
        return Confirmation(confirmed, accepted=True)
    attempts = current.attempts + 1
    last = attempts >= current.max_attempts
    status = step(current.status, Step.LAST_WRONG_CODE if last else Step.WRONG_CODE)
    after = replace(
        current,
        status=status,
        attempts=attempts,
        finished_at=now if last else None,
        finished_by=by if last else None,
    )
    if last:
        message = (
            f"Wrong verification code; that was the last of {current.max_attempts} attempts:"
            f" migration {migration.id} is over, the source tenant may request a new one"
        )
    else:
        left = after.attempts_left
        message = f"Wrong verification code; {left} attempt{'s' if left != 1 else ''} left"
    return Confirmation(
        after, accepted=False, error=ValidationFailed(message, code="inventory/wrongCode")
    )


def cancel(migration: Migration, tenant_id: str, by: str, now: datetime) -> Migration:
    """The source (or the target, declining) ends an open request."""
    if not visible_to(migration, tenant_id):
        raise migration_not_found(migration.id)
    current = migration.at(now)
    if current.status is not MigrationStatus.REQUESTED:
        raise not_open(current)
    return replace(
        current, status=step(current.status, Step.CANCEL), finished_at=now, finished_by=by
    )


# --- what moves ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TreeNode:
    """A device as the store found it, locked."""

    object_id: int
    device_id: str | None
    is_device: bool
    #: Its gateway's device id, when it is a child.
    gateway: str | None = None
    #: The CA fingerprint of its last certificate login (``fleetgate_CertificateAuthority``).
    ca_fingerprint: str | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """Which devices move: the root first, then the children that go with it; and the
    children that stay behind (detached from the gateway in the source)."""

    root: TreeNode
    moving: tuple[TreeNode, ...]
    staying: tuple[TreeNode, ...]

    @property
    def object_ids(self) -> list[int]:
        return [n.object_id for n in self.moving]

    @property
    def device_ids(self) -> list[str]:
        return [n.device_id for n in self.moving if n.device_id is not None]


def plan_move(root: TreeNode, children: Sequence[TreeNode], with_children: bool) -> Plan:
    """What a move of ``root`` takes along. Only a device with a device id moves (it is
    found by it in the target); a child moves only with its gateway — alone it would stay
    attached to a gateway of another tenant."""
    if not root.is_device or root.device_id is None:
        raise ValidationFailed(
            f"Managed object {root.object_id} is not a device with a device id (c8y_Serial):"
            " only devices move between tenants"
        )
    if root.gateway is not None:
        raise ValidationFailed(
            f"Device {root.device_id} is a child of gateway {root.gateway}: move the gateway"
            " with its children, or detach the device first"
        )
    ordered = sorted(children, key=lambda n: n.object_id)
    if with_children:
        return Plan(root, (root, *ordered), ())
    return Plan(root, (root,), tuple(ordered))


@dataclass(frozen=True, slots=True)
class TrustFacts:
    """What decides whether the target can take a certificate device: the subject of the
    CA that issued its certificate (None when no stored CA has its fingerprint any more),
    and the subjects of the target's enabled trusted certificates."""

    fingerprint: str
    ca_subject: str | None
    target_subjects: frozenset[str]


def untrusted(device_id: str, target: str, facts: TrustFacts) -> ValidationFailed | None:
    """None when the target trusts the CA that signed the device's certificate (an enabled
    trusted certificate of the target has its subject, compared as the broker's TLS
    compares names); otherwise the 422 that says what the target must trust first."""
    keys = {subject_key(s) for s in facts.target_subjects}
    if facts.ca_subject is not None and subject_key(facts.ca_subject) in keys:
        return None
    named = (
        f"the CA {facts.ca_subject!r} (fingerprint {facts.fingerprint})"
        if facts.ca_subject is not None
        else f"the CA of fingerprint {facts.fingerprint}"
    )
    return ValidationFailed(
        f"Tenant {target} does not trust the CA that issued the certificate of device"
        f" {device_id}: tenant {target} must first add {named} to its trusted certificates"
        " and enable it (a CA belongs to one tenant: the source gives it up first)",
        code="inventory/untrustedCertificate",
    )


@dataclass(frozen=True, slots=True)
class Moved:
    """A committed move, for the broker and the children's connection state: the device
    users that moved (now the target's), the children that moved with their gateway and
    those that stayed behind, detached, in the source."""

    migration: Migration
    gateway: str
    users: tuple[User, ...]
    children: tuple[str, ...]
    detached: tuple[str, ...]
    #: The source's operations the move ended (FAILED), as they now stand.
    ended: tuple[Operation, ...] = ()


@dataclass(frozen=True, slots=True)
class Entered:
    """What entering a code did; ``moved`` when it confirmed."""

    confirmation: Confirmation
    moved: Moved | None = None


# --- what the moved devices show --------------------------------------------------------


def moved_reason(target: str) -> str:
    return f"moved to tenant {target}"


def moved_fragments(fragments: dict[str, Any], target: str, at: datetime) -> dict[str, Any]:
    """The connection fragments a device shows right after it moved: its session (in the
    source) is over, so one that had a connection is DISCONNECTED with the reason; one that
    never connected stays INACTIVE (nothing to merge)."""
    if "c8y_Connection" not in fragments:
        return {}
    shown = fragments.get(CONNECTION_FRAGMENT)
    gateway = shown.get("gateway") if isinstance(shown, dict) else None
    connection = Connection(
        ConnectionStatus.DISCONNECTED,
        moved_reason(target),
        gateway if isinstance(gateway, str) else None,
    )
    moved = connection.fragments(at)
    current = fragments.get(lifecycle.FRAGMENT)
    if isinstance(current, dict) and current.get("status") == lifecycle.LifecycleStatus.DISABLED:
        del moved[lifecycle.FRAGMENT]  # disabled stays disabled, wherever it is
    return moved


def failed_reason(target: str, migration_id: int) -> str:
    """The failure reason of the operations a move ends in the source."""
    return f"The device moved to tenant {target} (migration {migration_id})"
