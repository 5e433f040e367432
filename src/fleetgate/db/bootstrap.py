"""New device requests in PostgreSQL, and issuing credentials in one transaction."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg

from fleetgate.db.device_ids import claim_device_id
from fleetgate.db.devices import ensure_device, set_device_password
from fleetgate.domain.bootstrap import NewDeviceRequest, RequestStatus
from fleetgate.domain.enablement import Enablement
from fleetgate.domain.errors import Conflict, NotFound


def _request(row: asyncpg.Record) -> NewDeviceRequest:
    return NewDeviceRequest(row["tenant_id"], row["id"], RequestStatus(row["status"]))


def _not_found(request_id: str) -> NotFound:
    return NotFound(f"New device request {request_id} not found", code="devicecontrol/Not Found")


class PgRequests:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(self, tenant_id: str, request_id: str) -> NewDeviceRequest:
        """A request for a device id that no other tenant holds (decision 0006)."""
        async with self._pool.acquire() as conn, conn.transaction():
            await claim_device_id(conn, tenant_id, request_id)
            row = await conn.fetchrow(
                "INSERT INTO new_device_request (tenant_id, id, status) VALUES ($1, $2, $3)"
                " ON CONFLICT DO NOTHING RETURNING *",
                tenant_id,
                request_id,
                RequestStatus.WAITING_FOR_CONNECTION.value,
            )
        if row is None:
            raise Conflict(
                f"New device request {request_id} already exists",
                code="devicecontrol/Duplicate",
            )
        return _request(row)

    async def get(self, tenant_id: str, request_id: str) -> NewDeviceRequest:
        row = await self._pool.fetchrow(
            "SELECT * FROM new_device_request WHERE tenant_id = $1 AND id = $2",
            tenant_id,
            request_id,
        )
        if row is None:
            raise _not_found(request_id)
        return _request(row)

    async def find(self, tenant_id: str, offset: int, limit: int) -> list[NewDeviceRequest]:
        rows = await self._pool.fetch(
            "SELECT * FROM new_device_request WHERE tenant_id = $1"
            " ORDER BY created_at, id OFFSET $2 LIMIT $3",
            tenant_id,
            offset,
            limit,
        )
        return [_request(r) for r in rows]

    async def count(self, tenant_id: str) -> int:
        value = await self._pool.fetchval(
            "SELECT count(*) FROM new_device_request WHERE tenant_id = $1", tenant_id
        )
        return int(value)

    async def move(
        self,
        tenant_id: str,
        request_id: str,
        decide: Callable[[RequestStatus], RequestStatus],
    ) -> NewDeviceRequest:
        """Apply ``decide`` to the current status under a row lock (concurrent PUTs queue)."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT * FROM new_device_request WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
                tenant_id,
                request_id,
            )
            if row is None:
                raise _not_found(request_id)
            current = RequestStatus(row["status"])
            wanted = decide(current)
            if wanted is not current:
                await conn.execute(
                    "UPDATE new_device_request SET status = $3, updated_at = now()"
                    " WHERE tenant_id = $1 AND id = $2",
                    tenant_id,
                    request_id,
                    wanted.value,
                )
        return NewDeviceRequest(tenant_id, request_id, wanted)

    async def delete(self, tenant_id: str, request_id: str) -> None:
        status = await self._pool.execute(
            "DELETE FROM new_device_request WHERE tenant_id = $1 AND id = $2",
            tenant_id,
            request_id,
        )
        if status.endswith(" 0"):
            raise _not_found(request_id)

    async def status_of(self, tenant_id: str, request_id: str) -> RequestStatus | None:
        value = await self._pool.fetchval(
            "SELECT status FROM new_device_request WHERE tenant_id = $1 AND id = $2",
            tenant_id,
            request_id,
        )
        return RequestStatus(value) if value is not None else None

    async def mark_pending(self, tenant_id: str, request_id: str) -> None:
        """The device asked: WAITING_FOR_CONNECTION becomes PENDING_ACCEPTANCE."""
        await self._pool.execute(
            "UPDATE new_device_request SET status = $3, updated_at = now()"
            " WHERE tenant_id = $1 AND id = $2 AND status = $4",
            tenant_id,
            request_id,
            RequestStatus.PENDING_ACCEPTANCE.value,
            RequestStatus.WAITING_FOR_CONNECTION.value,
        )

    async def issue(self, tenant_id: str, request_id: str, password_hash: str) -> Enablement | None:
        """If the request is still ACCEPTED: make the device and its user with this
        password and delete the request, all in one transaction; whether the device may
        log in. None otherwise (another ask got there first: credentials are handed out
        once)."""
        async with self._pool.acquire() as conn, conn.transaction():
            deleted = await conn.fetchval(
                "DELETE FROM new_device_request WHERE tenant_id = $1 AND id = $2"
                " AND status = $3 RETURNING true",
                tenant_id,
                request_id,
                RequestStatus.ACCEPTED.value,
            )
            if not deleted:
                return None
            object_id, _ = await ensure_device(conn, tenant_id, request_id, datetime.now(UTC))
            await set_device_password(conn, tenant_id, request_id, password_hash)
            disabled = await conn.fetchval(
                "SELECT disabled FROM managed_object WHERE id = $1", object_id
            )
        # The user follows its device: enabled exactly when the device is not disabled.
        return Enablement(user_enabled=not disabled, device_disabled=bool(disabled))
