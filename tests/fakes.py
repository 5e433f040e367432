"""Small in-memory fakes of the service ports, for unit tests of the core."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from fleetgate.domain.dead_letters import DeadLetter
from fleetgate.domain.device_messages import (
    ConnectivityReport,
    Declaration,
    DeviceError,
    StatusReport,
    SyncRequest,
)
from fleetgate.domain.errors import ValidationFailed
from fleetgate.domain.gateways import CHILD_REFUSED, NOT_A_CHILD
from fleetgate.domain.lockout import NO_FAILURES, LoginFailures
from fleetgate.domain.users import Role, Tenant, User

#: "Now" for tests that check certificates against a fixed clock. Certificates made during
#: the run start five minutes before they are made (the PKI backdates them); a clock read
#: when a test module is imported falls behind them once the run is longer than that (a
#: CI run found it: the unit tests run last), so the fixed clock stands an hour after the
#: import instead. Test certificates are valid for days.
CERTIFICATE_CLOCK = datetime.now(UTC) + timedelta(hours=1)


class InMemoryUsers:
    """A :class:`fleetgate.services.ports.UserStore` in a dict."""

    def __init__(self) -> None:
        self.tenants: dict[str, Tenant] = {}
        self.users: dict[tuple[str, str], User] = {}
        self.lookups = 0

    async def find_user(self, tenant_id: str, username: str) -> tuple[Tenant, User] | None:
        self.lookups += 1
        user = self.users.get((tenant_id, username))
        if user is None:
            return None
        return self.tenants[tenant_id], user

    async def users_with_role(self, role: Role) -> list[User]:
        return [u for _, u in sorted(self.users.items()) if role in u.roles]

    async def ensure_tenant(self, tenant: Tenant) -> bool:
        if tenant.id in self.tenants:
            return False
        self.tenants[tenant.id] = tenant
        return True

    async def ensure_user(
        self, tenant_id: str, username: str, password_hash: str, roles: Iterable[Role]
    ) -> bool:
        if (tenant_id, username) in self.users:
            return False
        self.users[(tenant_id, username)] = User(
            tenant_id=tenant_id,
            username=username,
            password_hash=password_hash,
            enabled=True,
            roles=frozenset(roles),
            last_password_change=datetime.now(UTC),
        )
        return True

    def update(self, tenant_id: str, username: str, **changes: object) -> None:
        key = (tenant_id, username)
        self.users[key] = replace(self.users[key], **changes)  # type: ignore[arg-type]

    async def update_failures(
        self, tenant_id: str, username: str, change: Callable[[LoginFailures], LoginFailures]
    ) -> LoginFailures | None:
        user = self.users.get((tenant_id, username))
        if user is None:
            return None
        after = change(user.failures)
        self.update(tenant_id, username, failures=after)
        return after

    async def clear_failures(self, tenant_id: str, username: str) -> None:
        if (tenant_id, username) in self.users:
            self.update(tenant_id, username, failures=NO_FAILURES)


class RecordingBroker:
    """A :class:`fleetgate.services.ports.BrokerPush` that remembers what was pushed."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.resyncs = 0
        self.discarded: list[str] = []

    async def push(self, lines: list[str]) -> None:
        self.lines.extend(lines)

    async def resync(self) -> None:
        self.resyncs += 1

    async def discard_sessions(self, device_ids: list[str]) -> list[str]:
        self.discarded.extend(device_ids)
        return device_ids


class RecordingPublisher:
    """Stands in for the device link: keeps what would have been published to devices."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, object]]] = []

    async def publish(self, topic: str, payload: bytes) -> None:
        self.messages.append((topic, json.loads(payload)))

    def take(self, topic: str) -> list[dict[str, object]]:
        """The payloads published on ``topic`` since the last take (they are removed)."""
        taken = [p for t, p in self.messages if t == topic]
        self.messages = [(t, p) for t, p in self.messages if t != topic]
        return taken


class FakeOperations:
    """The operations side of device messages (``ReportSink``): applies reports in a
    list, all or nothing per call. A batch that holds one of ``poison`` (operation ids)
    fails as a database would on a value it cannot take; ``unavailable`` makes every call
    fail as an absent database does."""

    def __init__(self, poison: Iterable[int] = ()) -> None:
        self.poison = set(poison)
        self.unavailable = False
        self.applied: list[StatusReport] = []
        self.synced: list[SyncRequest] = []
        self.calls = 0

    async def on_reports(self, reports: Sequence[StatusReport]) -> list[DeviceError]:
        self.calls += 1
        if self.unavailable:
            raise ConnectionRefusedError("the database is away")
        bad = [r.operation_id for r in reports if r.operation_id in self.poison]
        if bad:
            raise ValueError(f"value out of range: {bad[0]}")
        self.applied.extend(reports)
        return []

    async def on_sync(self, requests: Sequence[SyncRequest]) -> None:
        if self.unavailable:
            raise ConnectionRefusedError("the database is away")
        self.synced.extend(requests)


class FakeChildren:
    """Gateways' children (a ``ChildSink``): ``attached`` holds (child, gateway) pairs; a
    declaration registers a child that nobody holds, refuses one another gateway holds."""

    def __init__(
        self,
        attached: Iterable[tuple[str, str]] = (),
        disabled: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.pairs = set(attached)
        #: (child, gateway) pairs of disabled children.
        self.disabled = set(disabled)
        self.declared: list[Declaration] = []
        self.reached: list[ConnectivityReport] = []

    async def declare_children(
        self, declarations: Sequence[tuple[Declaration, bool]]
    ) -> list[bool | ValidationFailed]:
        results: list[bool | ValidationFailed] = []
        for declaration, _ in declarations:
            assert declaration.gateway is not None
            holders = {g for child, g in self.pairs if child == declaration.device_id}
            if holders - {declaration.gateway}:
                results.append(
                    ValidationFailed(
                        f"device {declaration.device_id} is a child of gateway {holders.pop()}",
                        code=CHILD_REFUSED,
                    )
                )
                continue
            self.pairs.add((declaration.device_id, declaration.gateway))
            self.declared.append(declaration)
            results.append(True)
        return results

    async def attached(self, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        return set(pairs) & self.pairs

    async def disabled_children(self, pairs: list[tuple[str, str]]) -> set[tuple[str, str]]:
        return set(pairs) & self.pairs & self.disabled

    async def on_connectivity(self, reports: Sequence[ConnectivityReport]) -> list[DeviceError]:
        """Applies reports about its children; answers the others ``devices/notAChild``."""
        errors: list[DeviceError] = []
        for report in reports:
            if (report.device_id, report.gateway) in self.pairs:
                self.reached.append(report)
            else:
                errors.append(
                    DeviceError(
                        report.device_id,
                        NOT_A_CHILD,
                        f"device {report.device_id} is not a child of gateway {report.gateway}",
                        f"fg/d/{report.gateway}/c/{report.device_id}/connection",
                        gateway=report.gateway,
                    )
                )
        return errors


class RecordingConnectivity:
    """Children's connections (``ChildConnectivity``): records what it is told."""

    def __init__(self) -> None:
        self.changes: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.reports: list[ConnectivityReport] = []

    async def children_changed(
        self, tenant_id: str, changes: Sequence[tuple[str, str | None]]
    ) -> None:
        self.changes.append((tenant_id, list(changes)))

    async def on_connectivity(self, reports: Sequence[ConnectivityReport]) -> list[DeviceError]:
        self.reports.extend(reports)
        return []


class FakeDeadLetters:
    """A ``DeadLetterStore`` in a list."""

    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []
        self.failure: Exception | None = None

    async def record(self, letters: Sequence[DeadLetter]) -> None:
        if self.failure is not None:
            raise self.failure
        self.letters.extend(letters)


def unavailable(exc: BaseException) -> bool:
    """The fakes' transient failure: the database is away."""
    return isinstance(exc, ConnectionError)
