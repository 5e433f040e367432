"""Which broker session each service instance's device link uses (decision 0018).

Every instance's device link is a member of the shared subscription that splits device
traffic, with a persistent broker session of its own: the client id of its *slot*. An
instance holds its slot by a session advisory lock on a connection of its own for as
long as it lives; PostgreSQL releases it when that connection ends (the process killed,
its machine gone). A slot whose lock is free but whose row is still in
``device_link_slot`` is *orphaned*: its broker session holds messages that the dead
instance received and did not acknowledge, and the messages the broker keeps routing to
it (mosquitto deals a shared subscription's messages to offline members too). A live
instance adopts it (:meth:`PgLinkSlots.adopt`), drains it, and forgets it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg

log = logging.getLogger(__name__)

#: First key of the slot locks ('fgsl'); the second is the slot number.
_LOCK_SPACE = 0x6667736C
#: Seconds between checks that the lock's connection is still alive.
_HEARTBEAT = 2.0


@dataclass(frozen=True, slots=True)
class Slot:
    """A slot held: its number, the link's client id, and an event set when the hold is
    lost (the database connection ended: another instance may adopt the slot now)."""

    number: int
    client_id: str
    lost: asyncio.Event


def client_id_of(base: str, number: int) -> str:
    """Slot 0 keeps the base client id (a single instance's session as before)."""
    return base if number == 0 else f"{base}:{number}"


class PgLinkSlots:
    def __init__(self, url: str, base_client_id: str, *, connect_timeout: float = 5.0) -> None:
        self._url = url
        self._base = base_client_id
        self._connect_timeout = connect_timeout

    @contextlib.asynccontextmanager
    async def claim(self) -> AsyncIterator[Slot]:
        """Hold the lowest free slot while the block runs; raises what connecting to
        the database raises."""
        async with self._holding() as held:
            async with held.turn:
                number = 0
                while not await held.conn.fetchval(_TRY_LOCK, _LOCK_SPACE, number):
                    number += 1
                await held.conn.execute(
                    "INSERT INTO device_link_slot (slot) VALUES ($1) ON CONFLICT (slot) DO NOTHING",
                    number,
                )
            yield Slot(number, client_id_of(self._base, number), held.lost)

    @contextlib.asynccontextmanager
    async def adopt(self) -> AsyncIterator[Slot | None]:
        """Hold one orphaned slot while the block runs (None: there is none). At the
        block's normal end the slot is forgotten: its session was drained and dropped."""
        async with self._holding() as held:
            found: int | None = None
            async with held.turn:
                for row in await held.conn.fetch("SELECT slot FROM device_link_slot ORDER BY slot"):
                    if await held.conn.fetchval(_TRY_LOCK, _LOCK_SPACE, row["slot"]):
                        found = row["slot"]
                        break
            if found is None:
                yield None
                return
            yield Slot(found, client_id_of(self._base, found), held.lost)
            async with held.turn:
                await held.conn.execute("DELETE FROM device_link_slot WHERE slot = $1", found)

    @contextlib.asynccontextmanager
    async def _holding(self) -> AsyncIterator[_Held]:
        conn = await asyncpg.connect(self._url, timeout=self._connect_timeout)
        held = _Held(conn, asyncio.Event(), asyncio.Lock())
        conn.add_termination_listener(lambda _c: held.lost.set())
        beat = asyncio.create_task(_heartbeat(held), name="link-slot-heartbeat")
        try:
            yield held
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 5)  # the locks go with it


_TRY_LOCK = "SELECT pg_try_advisory_lock($1, $2)"


@dataclass(frozen=True, slots=True)
class _Held:
    """A connection that holds slot locks; ``turn`` keeps its queries one at a time."""

    conn: asyncpg.Connection
    lost: asyncio.Event
    turn: asyncio.Lock


async def _heartbeat(held: _Held) -> None:
    """Notice a connection that died without telling (a database restart)."""
    while not held.lost.is_set():
        await asyncio.sleep(_HEARTBEAT)
        try:
            async with held.turn:
                await asyncio.wait_for(held.conn.fetchval("SELECT 1"), _HEARTBEAT * 2)
        except Exception as exc:
            if not held.lost.is_set():
                log.warning("the device link's slot lock was lost: %s", exc)
            held.lost.set()
