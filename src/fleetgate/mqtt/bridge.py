"""The service's own connection to mosquitto, kept alive for as long as the service runs.

On every (re)connect it pushes the broker plugin's whole state — the broker keeps
nothing that cannot be rebuilt from PostgreSQL — in ONE control message, so the plugin
applies ``reset`` and the new state atomically (it handles one message at a time) and no
connecting device ever sees a half-built state. It then asks the plugin for its live
certificate sessions and hands them to the service for reconciliation, and only then
calls the broker ready. Changes are pushed as single lines in between; a lock orders
pushes and full syncs, so a change committed while a sync reads the database is either
in that sync or pushed after it. Between connection attempts it backs off with jitter.

Several service instances push to one plugin: their pushes are ordered through
PostgreSQL (``PushOrder``: a whole state excludes changes being pushed), so no whole
state read before a change can overwrite it (decision 0018).

Events from the plugin (device connected / disconnected) arrive on a shared
subscription, so several service instances split them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Protocol

import aiomqtt

from fleetgate.cancellation import raise_if_cancelling
from fleetgate.config import MqttSettings, reveal
from fleetgate.domain import broker_control as control
from fleetgate.domain import broker_trace

log = logging.getLogger(__name__)

#: Produces the plugin's full state as control lines (read from the database each time).
StateSource = Callable[[], Awaitable[list[str]]]
Event = control.Connected | control.Disconnected
#: Receives events in batches: whatever arrived while the previous batch was handled.
EventSink = Callable[[list[Event]], Awaitable[None]]
LiveSink = Callable[[tuple[control.LiveClient, ...]], Awaitable[None]]
#: Receives what the plugin reports of traced clients, in batches (docs/decisions/0016).
TraceSink = Callable[[list[broker_trace.BrokerTraceEvent]], Awaitable[None]]
#: Answers a device's message: the reply (topic, payload) to publish, or None.
RequestHandler = Callable[[str, bytes], Awaitable[tuple[str, bytes] | None]]


class PushOrder(Protocol):
    """Orders pushes across service instances (``fleetgate.db.push_order``)."""

    def whole_state(self) -> AbstractAsyncContextManager[None]: ...

    def change(self) -> AbstractAsyncContextManager[None]: ...


class _OneProcess:
    """Without other instances the bridge's own lock is order enough."""

    @contextlib.asynccontextmanager
    async def whole_state(self) -> AsyncIterator[None]:
        yield

    @contextlib.asynccontextmanager
    async def change(self) -> AsyncIterator[None]:
        yield


_SHARED_EVENTS = f"$share/fleetgate/{control.EVENTS_TOPIC}"
_SHARED_TRACE = f"$share/fleetgate/{broker_trace.TRACE_TOPIC}"
_MAX_BATCH = 1000
#: Pauses before a batch of events is retried after a transient failure.
_EVENT_RETRY_MIN, _EVENT_RETRY_MAX = 0.5, 30.0
#: Device requests (bootstrap …) answered at the same time.
_REQUEST_PARALLEL = 16


class BrokerBridge:
    def __init__(
        self,
        settings: MqttSettings,
        state: StateSource | None = None,
        *,
        on_event: EventSink | None = None,
        on_live: LiveSink | None = None,
        handlers: Mapping[str, RequestHandler] | None = None,
        is_transient: Callable[[BaseException], bool] = lambda _: False,
        before_sync: Callable[[], Awaitable[None]] | None = None,
        on_refusals: Callable[[int], None] | None = None,
        order: PushOrder | None = None,
    ) -> None:
        self._is_transient = is_transient
        #: Told how many control lines the plugin refused, each time it refuses some.
        self._on_refusals = on_refusals
        #: Orders this bridge's pushes with the other instances' (decision 0018).
        self._order: PushOrder = order or _OneProcess()
        #: Runs after each connect, before the full state is pushed: while the plugin
        #: (after a broker restart) knows nobody and no device can log in.
        self._before_sync = before_sync
        self._settings = settings
        self._state = state
        self._on_event = on_event
        self._on_live = on_live
        #: Subscription filter → handler of the messages devices send there.
        self._handlers = dict(handlers or {})
        self._requests: asyncio.Queue[tuple[RequestHandler, str, bytes]] = asyncio.Queue()
        # Not a device id (a ':'): no device can take this session over.
        self._client_id = f"fleetgate:service-{secrets.token_hex(4)}"
        self._client: aiomqtt.Client | None = None
        self._lock = asyncio.Lock()
        self._waiting: dict[str, asyncio.Future[control.ControlResponse]] = {}
        # Events are handled by a worker, never by the reader: handling one may push
        # control lines, whose answers the reader must be free to receive.
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self._on_trace: TraceSink | None = None
        self._traces: asyncio.Queue[broker_trace.BrokerTraceEvent] = asyncio.Queue()
        #: Set while connected and the plugin has confirmed the full state.
        self.synced = asyncio.Event()

    def wire(
        self,
        *,
        state: StateSource,
        on_event: EventSink,
        on_live: LiveSink,
        before_sync: Callable[[], Awaitable[None]],
        handlers: Mapping[str, RequestHandler],
        on_trace: TraceSink | None = None,
    ) -> None:
        """Hand the bridge what it serves, once the services that use the bridge (to push
        to the broker) exist: where the state comes from, who takes the broker's events
        and the live sessions, what runs before each sync, who answers device requests,
        who keeps what the plugin reports of traced clients. Before :meth:`run`."""
        self._on_trace = on_trace
        self._state = state
        self._on_event = on_event
        self._on_live = on_live
        self._before_sync = before_sync
        self._handlers = dict(handlers)

    async def run(self) -> None:
        """Connect, sync, serve; reconnect for ever. Returns only by cancellation."""
        delay = self._settings.reconnect_min
        while True:
            try:
                await self._session()
            except aiomqtt.MqttError as exc:
                raise_if_cancelling(exc)
                if self.synced.is_set():
                    log.warning("lost the broker connection: %s", exc)
                    delay = self._settings.reconnect_min
                else:
                    log.info("broker not reachable yet: %s", exc)
            except Exception as exc:
                if not self._is_transient(exc):
                    raise
                # The state comes from the database: without it there is nothing to push.
                log.warning("could not sync the broker (the database is away?): %s", exc)
            finally:
                self.synced.clear()
                self._client = None
                for waiter in self._waiting.values():
                    waiter.cancel()
                self._waiting.clear()
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311 — jitter only
            delay = min(delay * 2, self._settings.reconnect_max)

    async def push(self, lines: list[str]) -> None:
        """Apply ``lines`` in the plugin now.

        Published at QoS 1 without waiting for a ``sync`` answer: mosquitto hands a
        ``$CONTROL`` message to the plugin while handling the PUBLISH, before it sends the
        PUBACK that ``publish`` awaits, so on return the plugin has applied the lines, and
        anything this connection publishes later is handled after them. (A reply published
        by the plugin reaches us only at mosquitto's next loop iteration, ~100 ms: waiting
        for one per change would cap changes at ~10/s.) Lines the plugin refuses are
        logged when its error reply arrives. When the broker is not reachable the change is
        not lost: it is in the database, and the full sync at the next connect carries it.
        """
        async with self._lock:
            client = self._client
            if client is None or not self.synced.is_set():
                return
            try:
                try:
                    async with self._order.change():
                        await client.publish(control.CONTROL_TOPIC, control.message(lines), qos=1)
                except aiomqtt.MqttError:
                    raise
                except Exception as exc:
                    if not self._is_transient(exc):
                        raise
                    # The database that orders pushes is away: push anyway (a whole state
                    # cannot be pushed meanwhile either: it is read from there).
                    log.warning("pushing without the instances' order (%s)", exc)
                    await client.publish(control.CONTROL_TOPIC, control.message(lines), qos=1)
            except aiomqtt.MqttError as exc:
                raise_if_cancelling(exc)
                log.warning("could not push %d control lines (next sync will): %s", len(lines), exc)

    async def resync(self) -> None:
        """Push the whole state again, in one atomic message."""
        async with self._lock:
            client = self._client
            if client is None or not self.synced.is_set():
                return
            try:
                await self._full_sync(client)  # live sessions are unchanged by a resync
            except (aiomqtt.MqttError, TimeoutError) as exc:
                raise_if_cancelling(exc)
                log.warning("resync failed (the next connect will redo it): %s", exc)

    async def discard_sessions(self, device_ids: list[str]) -> list[str]:
        """Make the broker drop the sessions kept under ``device_ids``: for each, connect
        as the service with that client id and a clean session, then leave. mosquitto
        then throws away what it kept (subscriptions, queued messages) and closes a live
        connection of that client id. The ids it was done for: stops at the first that
        fails (the broker away)."""
        done: list[str] = []
        for device_id in device_ids:
            try:
                async with aiomqtt.Client(
                    self._settings.host,
                    self._settings.service_port,
                    username=self._settings.service_username,
                    password=reveal(self._settings.service_password),
                    identifier=device_id,
                    clean_session=True,
                    protocol=aiomqtt.ProtocolVersion.V311,
                    timeout=10,
                ):
                    pass
            except aiomqtt.MqttError as exc:
                raise_if_cancelling(exc)
                log.warning("could not discard the broker session of %s: %s", device_id, exc)
                break
            done.append(device_id)
        return done

    async def _session(self) -> None:
        async with aiomqtt.Client(
            self._settings.host,
            self._settings.service_port,
            username=self._settings.service_username,
            password=reveal(self._settings.service_password),
            identifier=self._client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            keepalive=30,
        ) as client:
            await client.subscribe(control.RESPONSE_TOPIC, qos=1)
            await client.subscribe(_SHARED_EVENTS, qos=1)
            await client.subscribe(_SHARED_TRACE, qos=1)
            for pattern in self._handlers:
                await client.subscribe(pattern, qos=1)
            reader = asyncio.create_task(self._read(client), name="mqtt-bridge-reader")
            worker = asyncio.create_task(self._handle_events(), name="mqtt-bridge-events")
            answering = asyncio.create_task(self._answer_requests(client), name="mqtt-requests")
            tracing = asyncio.create_task(self._handle_traces(), name="mqtt-bridge-traces")
            try:
                if self._before_sync is not None:
                    await self._before_sync()
                async with self._lock:
                    self._client = client
                    lines, live = await self._full_sync(client)
                log.info("broker plugin synced (%d state lines)", lines)
                self.synced.set()
                if self._on_live is not None:
                    await self._on_live(live)
                await reader
            finally:
                reader.cancel()
                worker.cancel()
                answering.cancel()
                tracing.cancel()

    async def _full_sync(
        self, client: aiomqtt.Client
    ) -> tuple[int, tuple[control.LiveClient, ...]]:
        """``reset``, the whole state and ``clients`` in one message: applied atomically, and
        the plugin's one answer lists the live sessions (ending in ``ok <token>``)."""
        if self._state is None:
            raise RuntimeError("the broker bridge runs before it was wired")
        async with self._order.whole_state():
            state = await self._state()
            token = secrets.token_hex(8)
            body = [control.reset(), *state, control.clients(token)]
            return len(state), (await self._request(client, body, token)).clients

    async def _request(
        self, client: aiomqtt.Client, body: list[str], token: str
    ) -> control.ControlResponse:
        """Publish one control message whose last line (``sync`` or ``clients``) carries
        ``token``, and wait for the plugin's answer to it."""
        waiter: asyncio.Future[control.ControlResponse] = asyncio.get_running_loop().create_future()
        self._waiting[token] = waiter
        try:
            await client.publish(control.CONTROL_TOPIC, control.message(body), qos=1)
            response = await asyncio.wait_for(waiter, timeout=30)
        finally:
            self._waiting.pop(token, None)
        self._refused(response)
        return response

    async def _read(self, client: aiomqtt.Client) -> None:
        async for msg in client.messages:
            payload = msg.payload if isinstance(msg.payload, bytes) else b""
            if msg.topic.matches(control.RESPONSE_TOPIC):
                self._answer(payload)
            elif msg.topic.matches(control.EVENTS_TOPIC):
                self._queue_event(payload)
            elif msg.topic.matches(broker_trace.TRACE_TOPIC):
                self._queue_trace(payload)
            else:
                for pattern, handler in self._handlers.items():
                    if msg.topic.matches(pattern):
                        self._requests.put_nowait((handler, msg.topic.value, payload))
                        break

    def _answer(self, payload: bytes) -> None:
        try:
            response = control.parse_response(payload)
        except ValueError as exc:
            log.error("unreadable control response %r: %s", payload[:200], exc)
            return
        answered = False
        for token in response.synced:
            waiter = self._waiting.get(token)
            if waiter is not None and not waiter.done():
                waiter.set_result(response)
                answered = True
        if not answered:  # the answer to a push: only errors are worth a word
            self._refused(response)

    def _refused(self, response: control.ControlResponse) -> None:
        for line_no, message in response.errors:
            log.error("broker plugin refused control line %d: %s", line_no, message)
        if response.errors and self._on_refusals is not None:
            self._on_refusals(len(response.errors))

    async def _answer_requests(self, client: aiomqtt.Client) -> None:
        """Answer device requests, several at once; a failing one is logged, not fatal."""
        gate = asyncio.Semaphore(_REQUEST_PARALLEL)

        async def answer(handler: RequestHandler, topic: str, payload: bytes) -> None:
            try:
                reply = await handler(topic, payload)
                if reply is not None:
                    await client.publish(reply[0], reply[1], qos=1)
            except aiomqtt.MqttError as exc:
                raise_if_cancelling(exc)
                log.warning("could not answer %s: %s", topic, exc)
            except Exception:
                log.exception("answering %s failed", topic)
            finally:
                gate.release()

        async with asyncio.TaskGroup() as tg:
            while True:
                handler, topic, payload = await self._requests.get()
                await gate.acquire()
                tg.create_task(answer(handler, topic, payload))

    def _queue_event(self, payload: bytes) -> None:
        try:
            event = control.parse_event(payload)
        except ValueError as exc:
            log.error("unreadable broker event %r: %s", payload[:200], exc)
            return
        if self._on_event is not None:
            self._events.put_nowait(event)

    def _queue_trace(self, payload: bytes) -> None:
        try:
            event = broker_trace.parse_trace_event(payload)
        except ValueError as exc:
            log.error("unreadable trace event %r: %s", payload[:200], exc)
            return
        if self._on_trace is not None:
            self._traces.put_nowait(event)

    async def _handle_traces(self) -> None:
        """Hand trace events to the sink in batches. Tracing watches, it must never hold
        up anything: a batch that fails is retried a few times, then dropped with a log."""
        while True:
            batch = [await self._traces.get()]
            while not self._traces.empty() and len(batch) < _MAX_BATCH:
                batch.append(self._traces.get_nowait())
            if self._on_trace is None:
                continue
            for attempt in range(5):
                try:
                    await self._on_trace(batch)
                    break
                except Exception as exc:
                    log.warning("keeping %d trace events failed (%s)", len(batch), exc)
                    await asyncio.sleep(_EVENT_RETRY_MIN * 2**attempt)

    async def _handle_events(self) -> None:
        """Hand events to the sink in batches. A transient failure (the database away)
        retries the same batch, in order, after a growing pause; the sink isolates
        anything else per device, and what still escapes is logged (the reconciliation
        at the next connect repairs what it would have done)."""
        assert self._on_event is not None or self._events.empty()
        batch: list[Event] = []
        delay = _EVENT_RETRY_MIN
        while True:
            if not batch:
                batch.append(await self._events.get())
            while not self._events.empty() and len(batch) < _MAX_BATCH:
                batch.append(self._events.get_nowait())
            if self._on_event is None:
                batch = []
                continue
            try:
                await self._on_event(batch)
            except Exception as exc:
                if self._is_transient(exc):
                    log.warning(
                        "handling %d broker events failed (%s); retrying in %.1f s",
                        len(batch),
                        exc,
                        delay,
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, _EVENT_RETRY_MAX)
                    continue
                log.exception("handling %d broker events failed", len(batch))
            batch = []
            delay = _EVENT_RETRY_MIN
