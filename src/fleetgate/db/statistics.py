"""The fleet in numbers, for the metrics (fleetgate.metrics reads them at scrape time)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg


class PgFleetStatistics:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def connected_devices(self) -> int:
        """Devices with a live broker session (``connection_id`` is set while it lasts)."""
        count: int = await self._pool.fetchval(
            "SELECT count(*) FROM managed_object WHERE connection_id IS NOT NULL"
        )
        return count

    async def operation_counts(self) -> Sequence[tuple[str, str, int]]:
        """(status, command fragment, count) over every tenant's operations."""
        rows = await self._pool.fetch(
            "SELECT status, fragment_type, count(*) AS n FROM operation"
            " GROUP BY status, fragment_type"
        )
        return [(r["status"], r["fragment_type"], r["n"]) for r in rows]
