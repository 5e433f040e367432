"""The service's connection for device traffic: device messages in, commands out.

Device messages (status reports, inventory, sync requests) must not be lost once the
broker has them: this connection has a **persistent session** (fixed client id,
``clean_session`` off), so the broker keeps queueing them while the service is down, and
it acknowledges each message (PUBACK) only **after** the batch it belongs to has been
committed (paho-mqtt's ``manual_ack``; aiomqtt cannot do that). A service that dies
mid-batch leaves those messages unacknowledged, and the broker sends them again when the
service reconnects; every handler is idempotent, so the redelivery is harmless.

Acknowledgements carry the connection they were received on: after a reconnect the
broker renumbers what it redelivers, so a late acknowledgement of the old connection's
packet id must not be sent on the new one (it could acknowledge a different message).

Several service instances split device traffic: the link subscribes to the device
topics through the shared subscription ``$share/fleetgate/…``, and the broker deals each
message to one member. Each instance's link has its own client id (a *slot*, held in
PostgreSQL: ``fleetgate.db.link_slots``); a killed instance's session, with what it did
not acknowledge, is *drained* by a live one (:meth:`DeviceLink.drain`, decision 0018).

paho runs its network loop in its own thread; messages cross into asyncio with
``call_soon_threadsafe``, and the asyncio side calls paho's thread-safe ``publish``/``ack``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from fleetgate.config import MqttSettings, reveal
from fleetgate.domain.device_messages import Incoming

log = logging.getLogger(__name__)


#: Handles a batch of device messages; returns once each has had its effect committed or
#: been rejected for good, with the messages it cannot handle *yet* (a device whose
#: registration is still being committed): those stay unacknowledged and come back after
#: ``DEFER_DELAY``. Raises only when it could not commit (the database is away): the
#: whole batch is then retried, after a pause that grows from ``RETRY_MIN`` to
#: ``RETRY_MAX`` (jittered) while the failures go on.
BatchHandler = Callable[[list[Incoming]], Awaitable[list[Incoming]]]

DEFER_DELAY = 0.5
RETRY_MIN, RETRY_MAX = 0.5, 30.0

_MAX_BATCH = 500
#: Commands published and not yet acknowledged by the broker; more wait (paho would
#: otherwise queue without bound, and reuse packet ids past 65,535).
_MAX_OUTSTANDING = 5000
#: The shared subscription group of every service instance's device link.
SHARE = "$share/fleetgate/"
#: A drained session is done once nothing arrived for this many seconds (and nothing
#: received waits to be handled).
DRAIN_QUIET = 2.0
#: Seconds a drain waits to be connected and out of the shared group.
DRAIN_CONNECT_TIMEOUT = 30.0


def shared(patterns: Sequence[str]) -> list[str]:
    """The shared subscriptions of ``patterns``."""
    return [SHARE + p for p in patterns]


def reconnect_delays(settings: MqttSettings) -> tuple[int, int]:
    """paho's whole-second reconnect delays for our settings.

    paho waits ``min(previous * 2, max_delay)`` between attempts and never checks that
    ``max_delay >= min_delay``: a maximum below one second (``int(0.5) == 0``) made it
    reconnect in a tight loop, flooding the broker and the log.
    """
    low = max(1, math.ceil(settings.reconnect_min))
    return low, max(low, math.ceil(settings.reconnect_max))


@dataclass(frozen=True, slots=True)
class _Received:
    message: Incoming
    mid: int
    generation: int


class DeviceLink:
    def __init__(
        self,
        settings: MqttSettings,
        subscriptions: Sequence[str],
        handler: BatchHandler | None = None,
        *,
        client_id: str = "fleetgate:devices",
    ) -> None:
        self._settings = settings
        self._subscriptions = list(subscriptions)
        self._handler = handler
        self._client_id = client_id
        #: Draining an orphaned session: leave the shared group instead of joining it.
        self._draining = False
        self._client = self._new_client(client_id)
        #: When the last message arrived (the loop's clock), for :meth:`drain`.
        self._last_message = 0.0
        self._busy = False
        #: Messages waiting out ``DEFER_DELAY`` before they are handled again.
        self._deferred = 0
        #: Messages handled (acknowledged or rejected for good) so far.
        self._handled = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[_Received] = asyncio.Queue()
        #: Incremented at every connect; acknowledgements of older ones are dropped.
        self._generation = 0
        self._outstanding = 0
        self._capacity = asyncio.Event()
        self._capacity.set()
        #: Set while connected and subscribed.
        self.ready = asyncio.Event()

    def _new_client(self, client_id: str, *, clean: bool = False) -> paho.Client:
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean,
            protocol=paho.MQTTv311,
            manual_ack=True,
        )
        settings = self._settings
        client.username_pw_set(settings.service_username, reveal(settings.service_password))
        client.max_inflight_messages_set(1000)
        low, high = reconnect_delays(settings)
        client.reconnect_delay_set(min_delay=low, max_delay=high)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_unsubscribe = self._on_unsubscribe
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        return client

    @property
    def client_id(self) -> str:
        return self._client_id

    # --- paho's thread ----------------------------------------------------------------

    def _call(self, fn: Callable[..., object], *args: object) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(fn, *args)

    def _on_connect(
        self, client: paho.Client, _u: object, _f: object, reason: object, _p: object
    ) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("device link refused by the broker: %s", reason)
            return
        self._generation += 1  # in paho's thread, before any message of this connection
        self._call(self._connected)
        if self._draining:
            # Out of the shared group: the broker deals this session nothing new; what
            # it holds already (unacknowledged, queued) still comes.
            client.unsubscribe(shared(self._subscriptions))
            return
        # Plain subscriptions of a session from before the shared group: they would
        # deliver every message to this instance besides the group's share.
        client.unsubscribe(list(self._subscriptions))
        client.subscribe([(topic, 1) for topic in shared(self._subscriptions)])

    def _on_subscribe(
        self, _c: object, _u: object, _mid: object, codes: object, _p: object
    ) -> None:
        self._call(self.ready.set)

    def _on_unsubscribe(
        self, _c: object, _u: object, _mid: object, _codes: object, _p: object
    ) -> None:
        if self._draining:  # out of the group: what the session holds is coming
            self._call(self.ready.set)

    def _on_disconnect(
        self, _c: object, _u: object, _f: object, reason: object, _p: object
    ) -> None:
        self._generation += 1  # nothing received before may be acknowledged any more
        self._call(self._disconnected, str(reason))

    def _on_message(self, _c: object, _u: object, msg: paho.MQTTMessage) -> None:
        self._call(self._arrived)
        received = _Received(Incoming(msg.topic, bytes(msg.payload)), msg.mid, self._generation)
        self._call(self._queue.put_nowait, received)

    def _on_publish(self, _c: object, _u: object, _mid: object, _r: object, _p: object) -> None:
        self._call(self._published)

    # --- asyncio's side ---------------------------------------------------------------

    def _connected(self) -> None:
        log.info("device link %s connected (connection %d)", self._client_id, self._generation)

    def _arrived(self) -> None:
        self._last_message = asyncio.get_running_loop().time()

    def _disconnected(self, reason: str) -> None:
        self.ready.clear()
        self._outstanding = 0  # paho republishes what is unacknowledged
        self._capacity.set()
        log.warning("device link lost the broker: %s", reason)

    def _published(self) -> None:
        self._outstanding = max(0, self._outstanding - 1)
        if self._outstanding < _MAX_OUTSTANDING:
            self._capacity.set()

    async def publish(self, topic: str, payload: bytes) -> None:
        """Publish at QoS 1; waits only while too many are unacknowledged."""
        while not self._capacity.is_set():
            await self._capacity.wait()
        self._outstanding += 1
        if self._outstanding >= _MAX_OUTSTANDING:
            self._capacity.clear()
        info = self._client.publish(topic, payload, qos=1)
        if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
            self._published()
            log.warning("could not publish to %s: %s", topic, paho.error_string(info.rc))

    def handle_with(self, handler: BatchHandler) -> None:
        """Who handles device messages, once it exists (it publishes through this link).
        Before :meth:`run`."""
        self._handler = handler

    async def run(self, client_id: str | None = None, until: asyncio.Event | None = None) -> None:
        """Connect (as ``client_id``, else the id it was made with) and handle device
        messages until cancelled, or until ``until`` is set (the slot was lost: another
        instance may take this session over now, so this one leaves at once, leaving
        what it did not acknowledge to the broker)."""
        if self._handler is None:
            raise RuntimeError("the device link runs before it has a handler")
        if client_id is not None and client_id != self._client_id:
            self._client_id = client_id
            self._client = self._new_client(client_id)
        self._loop = asyncio.get_running_loop()
        self._client.connect_async(self._settings.host, self._settings.service_port, keepalive=30)
        self._client.loop_start()
        consuming = asyncio.create_task(self._consume(), name="device-link-consume")
        try:
            if until is None:
                await consuming
            else:
                stopped = asyncio.create_task(until.wait())
                try:
                    await asyncio.wait({consuming, stopped}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    stopped.cancel()
                if consuming.done():
                    consuming.result()
        finally:
            consuming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consuming
            self.ready.clear()
            self._client.disconnect()
            await asyncio.to_thread(self._client.loop_stop)
            self._generation += 1  # nothing received before may be acknowledged any more

    async def drain(self) -> int:
        """Take over an orphaned session (this link's client id), leave the shared group,
        handle and acknowledge whatever the session holds until nothing arrived for
        ``DRAIN_QUIET`` seconds, then drop the session. How many messages it handled."""
        if self._handler is None:
            raise RuntimeError("the device link drains before it has a handler")
        self._draining = True
        self._loop = asyncio.get_running_loop()
        self._client.connect_async(self._settings.host, self._settings.service_port, keepalive=30)
        self._client.loop_start()
        handled = 0
        consuming = asyncio.create_task(self._consume(), name="device-link-drain")
        try:
            # The broker away: give the slot back (someone retries later).
            await asyncio.wait_for(self.ready.wait(), DRAIN_CONNECT_TIMEOUT)
            self._last_message = self._loop.time()
            while True:
                await asyncio.sleep(DRAIN_QUIET / 4)
                quiet = self._loop.time() - self._last_message >= DRAIN_QUIET
                if quiet and self._queue.empty() and not self._busy and not self._deferred:
                    break
            handled = self._handled
        finally:
            consuming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consuming
            self._client.disconnect()
            await asyncio.to_thread(self._client.loop_stop)
        # A clean session of the same id: the broker forgets the drained one.
        cleaner = self._new_client(self._client_id, clean=True)
        cleaner.on_message = None
        await asyncio.to_thread(self._forget, cleaner)
        return handled

    def _forget(self, client: paho.Client) -> None:
        client.on_connect = client.on_disconnect = client.on_subscribe = None
        client.on_unsubscribe = client.on_publish = None
        client.connect(self._settings.host, self._settings.service_port, keepalive=30)
        client.loop_start()
        try:
            deadline = 50
            while not client.is_connected() and deadline:
                deadline -= 1
                time.sleep(0.1)
        finally:
            client.disconnect()
            client.loop_stop()

    async def _consume(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < _MAX_BATCH:
                batch.append(self._queue.get_nowait())
            self._busy = True
            try:
                deferred = await self._handle(batch)
            finally:
                self._busy = False
            self._handled += len(batch) - len(deferred)
            for item in batch:
                if id(item.message) in deferred:
                    later = _Received(
                        replace(item.message, deferrals=item.message.deferrals + 1),
                        item.mid,
                        item.generation,
                    )
                    self._deferred += 1
                    asyncio.get_running_loop().call_later(DEFER_DELAY, self._requeue, later)
                elif item.generation == self._generation:
                    self._client.ack(item.mid, 1)

    def _requeue(self, item: _Received) -> None:
        self._deferred -= 1
        self._queue.put_nowait(item)

    async def _handle(self, batch: list[_Received]) -> set[int]:
        messages = [item.message for item in batch]
        handler = self._handler
        assert handler is not None  # run() checked it
        delay = RETRY_MIN
        while True:
            try:
                return {id(m) for m in await handler(messages)}
            except Exception as exc:
                pause = delay * random.uniform(0.5, 1.0)  # noqa: S311 — jitter only
                log.warning(
                    "handling %d device messages failed (%s: %s); retrying in %.1f s",
                    len(messages),
                    type(exc).__name__,
                    exc,
                    pause,
                )
                await asyncio.sleep(pause)
                delay = min(delay * 2, RETRY_MAX)
