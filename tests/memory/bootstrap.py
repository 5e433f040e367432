"""New device requests and issuing credentials (``db/bootstrap.py``)."""

from __future__ import annotations

from collections.abc import Callable

from fleetgate.domain.bootstrap import NewDeviceRequest, RequestStatus
from fleetgate.domain.enablement import Enablement
from fleetgate.domain.errors import Conflict, NotFound

from memory.database import MemoryDatabase, RequestRow, page, queries


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
        self._db.requests[(tenant_id, request_id)] = RequestRow(
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
        return [NewDeviceRequest(tenant_id, i, s) for _, i, s in page(mine, offset, limit)]

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

    async def issue(self, tenant_id: str, request_id: str, password_hash: str) -> Enablement | None:
        """If the request is still ACCEPTED: make the device and its user with this password
        and delete the request, in one transaction (``Conflict`` when another tenant holds
        the id: nothing changes). False otherwise."""
        found = self._db.requests.get((tenant_id, request_id))
        if found is None or found.status is not RequestStatus.ACCEPTED:
            return None
        with self._db.transaction():
            del self._db.requests[(tenant_id, request_id)]
            self._db.ensure_device(tenant_id, request_id, self._db.clock())
            self._db.set_device_password(tenant_id, request_id, password_hash)
        disabled = self._db.device_disabled(tenant_id, request_id)
        return Enablement(user_enabled=not disabled, device_disabled=disabled)
