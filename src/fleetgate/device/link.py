"""One MQTT connection of a device (or a gateway) to fleetgate's broker, for as long as it
runs: connect, begin the session (the owner subscribes and resyncs), read, reconnect.

Between attempts the link waits a random time under an exponentially growing cap
(:class:`ReconnectPolicy`): a fleet that lost its broker at once does not come back at
once. Every publish is QoS 1 and returns after the broker's PUBACK; when the connection is
lost first, it is published again on the next session (fleetgate treats repeats as
no-ops). At most ``in_flight`` publishes wait for their PUBACK at once: a gateway that
reports for a thousand children keeps a window open, not a thousand (aiomqtt's
bookkeeping grows with every call in flight).

The link owns a TaskGroup for the work its owner spawns (operations in progress), which
survives reconnects and ends with :meth:`Link.run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

import aiomqtt

from fleetgate.cancellation import raise_if_cancelling
from fleetgate.device.connection import (
    BrokerAddress,
    CertificateLogin,
    PasswordLogin,
    ReconnectPolicy,
    refused,
    tls_context,
)
from fleetgate.device.errors import DeviceError
from fleetgate.domain.devices import device_username
from fleetgate.domain.users import mqtt_username

__all__ = ["Link", "Session", "Standing"]

log = logging.getLogger(__name__)

#: Begins a session: subscribe, publish what must precede the sync, sync.
Begin = Callable[["Session"], Awaitable[None]]
#: Reads one message (topic, payload); called in the reader, so it must not block.
Receive = Callable[[str, bytes], None]


class Session:
    """A connected MQTT client; usable by the link's owner once begun, until ``closed``."""

    def __init__(self, client: aiomqtt.Client, client_id: str, in_flight: int) -> None:
        self.client = client
        self.closed = asyncio.Event()
        self._client_id = client_id
        self._in_flight = in_flight
        self._publishing: set[asyncio.Future[None]] = set()

    def close(self) -> None:
        """The connection is gone: every publish still waiting for its PUBACK raises
        MqttError now (aiomqtt would otherwise wait for its whole timeout)."""
        self.closed.set()
        for sent in self._publishing:
            sent.cancel()

    async def subscribe(self, filters: Iterable[str]) -> None:
        """QoS 1 subscriptions; DeviceError when the broker refuses one."""
        granted = await self.client.subscribe([(f, 1) for f in filters])
        if any(refused(code) for code in granted):
            raise DeviceError(f"the broker refused {self._client_id}'s subscriptions")

    async def publish_all(self, messages: Iterable[tuple[str, bytes]]) -> None:
        """Publish every (topic, payload) at QoS 1, the link's window at once; returns
        when the broker has acknowledged them all (while a session begins)."""
        listed = list(messages)
        pending = iter(listed)

        async def worker() -> None:
            for topic, payload in pending:
                await self.client.publish(topic, payload, qos=1)

        await asyncio.gather(*(worker() for _ in range(min(self._in_flight, len(listed)))))

    async def resend(self, standing: Iterable[Standing]) -> None:
        """Publish what each of ``standing`` holds, the link's window at once; each is
        marked sent once all are acknowledged (while a session begins)."""
        messages = [(s, message) for s in standing if (message := s.pending()) is not None]
        await self.publish_all(message for _, message in messages)
        for s, message in messages:
            s.sent(message)

    async def publish(self, topic: str, payload: bytes) -> None:
        """Publish at QoS 1 and wait for the PUBACK — or for the session to end, which
        raises MqttError (:meth:`close`)."""
        if self.closed.is_set():
            raise aiomqtt.MqttError("the connection was lost")
        # One future per publish, cancelled by close(): a waiter per publish on ``closed``
        # was removed from a list as long as the publishes in flight at every PUBACK.
        sent = asyncio.ensure_future(self.client.publish(topic, payload, qos=1))
        self._publishing.add(sent)
        try:
            await sent
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self.closed.is_set() and task is not None and not task.cancelling():
                raise aiomqtt.MqttError("the connection was lost before the PUBACK") from None
            raise
        finally:
            self._publishing.discard(sent)


class Link:
    """The connection of ``client_id`` (a device id); see the module docstring."""

    def __init__(
        self,
        client_id: str,
        broker: BrokerAddress,
        login: CertificateLogin | PasswordLogin,
        *,
        reconnect: ReconnectPolicy | None = None,
        connect_gate: asyncio.Semaphore | None = None,
        timeout: float = 30.0,
        keepalive: int = 60,
        in_flight: int = 100,
    ) -> None:
        if in_flight < 1:
            raise ValueError("at least one publish must be allowed in flight")
        self.client_id = client_id
        #: Sessions established so far (each one begun: subscribed and synced).
        self.connections = 0
        self._broker = broker
        self._login = login
        self._tls = tls_context(client_id, broker, login)
        self._reconnect = reconnect or ReconnectPolicy()
        self._gate = connect_gate
        self._timeout = timeout
        self._keepalive = keepalive
        self._in_flight = in_flight
        self._rng = random.Random()  # noqa: S311 — jitter only
        self._session: Session | None = None
        self._ready = asyncio.Event()  # set while a session is ready, or once stopped
        self._stopped = False
        self._tasks: asyncio.TaskGroup | None = None

    @property
    def connected(self) -> bool:
        """True while a session is up and begun."""
        return self._session is not None

    @property
    def running(self) -> bool:
        return self._tasks is not None

    async def run(self, begin: Begin, receive: Receive) -> None:
        """Connect, begin, read, reconnect for ever; spawned work survives reconnects.
        Returns only by cancellation (which also cancels the spawned work)."""
        if self._tasks is not None:
            raise DeviceError(f"device {self.client_id} is running already")
        self._stopped = False
        self._ready.clear()
        attempt = 0
        try:
            async with asyncio.TaskGroup() as tasks:
                self._tasks = tasks
                while True:
                    before = self.connections
                    try:
                        await self._serve(begin, receive)
                    except (aiomqtt.MqttError, DeviceError) as exc:
                        raise_if_cancelling(exc)
                        self._log_loss(exc, lost=self.connections > before, attempt=attempt)
                    attempt = 0 if self.connections > before else attempt + 1
                    await asyncio.sleep(self._reconnect.delay(attempt, self._rng))
        finally:
            self._tasks = None
            self._stopped = True
            self._ready.set()  # wakes the waiting publishers: they raise now

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` in the link's TaskGroup; its failure is logged, never fatal."""
        if self._tasks is None:
            work.close()
            raise DeviceError(f"device {self.client_id} is not running")
        self._tasks.create_task(_guarded(self.client_id, work))

    async def ready_session(self) -> Session:
        """The current session once it has begun; DeviceError once the link stopped."""
        while True:
            session = self._session
            if session is not None and not session.closed.is_set():
                return session
            if self._stopped:
                raise DeviceError(f"device {self.client_id} is not running")
            self._ready.clear()
            await self._ready.wait()

    async def publish(self, topic: str, payload: bytes) -> None:
        """QoS 1 until the broker acknowledges it, over as many sessions as it takes."""
        while True:
            session = await self.ready_session()
            try:
                await session.publish(topic, payload)
                return
            except aiomqtt.MqttError as exc:
                raise_if_cancelling(exc)
                log.debug("device %s: publish to %s again (%s)", self.client_id, topic, exc)
                # Not asyncio.wait_for: in 3.11 it swallows a cancellation that arrives as
                # the awaited event fires, and this loop would then outlive the client.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await session.closed.wait()

    def _log_loss(self, exc: Exception, *, lost: bool, attempt: int) -> None:
        if lost:
            log.warning("device %s lost its connection: %s", self.client_id, exc)
        else:
            log.log(
                logging.INFO if attempt == 0 else logging.DEBUG,
                "device %s could not connect (attempt %d): %s",
                self.client_id,
                attempt + 1,
                exc,
            )

    async def _serve(self, begin: Begin, receive: Receive) -> None:
        async with contextlib.AsyncExitStack() as stack:
            async with self._gate or contextlib.nullcontext():
                client = await stack.enter_async_context(self._mqtt_client())
            client.pending_calls_threshold = self._in_flight + 10
            session = Session(client, self.client_id, self._in_flight)
            await begin(session)
            self._session = session
            self.connections += 1
            self._ready.set()
            log.debug("device %s connected (session %d)", self.client_id, self.connections)
            try:
                async for message in client.messages:
                    payload = message.payload if isinstance(message.payload, bytes) else b""
                    receive(message.topic.value, payload)
            finally:
                session.close()
                self._session = None
                self._ready.clear()

    def _mqtt_client(self) -> aiomqtt.Client:
        username = password = None
        if isinstance(self._login, PasswordLogin):
            username = mqtt_username(self._login.tenant, device_username(self.client_id))
            password = self._login.password
        return aiomqtt.Client(
            self._broker.host,
            self._broker.port,
            identifier=self.client_id,
            username=username,
            password=password,
            protocol=aiomqtt.ProtocolVersion.V5,
            tls_context=self._tls,
            keepalive=self._keepalive,
            timeout=self._timeout,
            max_inflight_messages=self._in_flight,
            max_concurrent_outgoing_calls=self._in_flight,
        )


class Standing:
    """A message that stands until replaced (a declaration, a child's connectivity): sent
    when it is set, and again while each session begins (:meth:`Link.run`'s ``begin``
    publishes :meth:`pending`, then calls :meth:`sent`)."""

    def __init__(self, link: Link, topic: str) -> None:
        self.topic = topic
        self.payload: bytes | None = None
        self._link = link
        self._sent: bytes | None = None

    async def set(self, payload: bytes) -> None:
        """Publish ``payload`` (now, and as each session begins); returns after PUBACK."""
        self.payload = payload
        await self._link.ready_session()
        if self._sent is payload:
            return  # the session's beginning sent it already
        await self._link.publish(self.topic, payload)
        if self.payload is payload:
            self._sent = payload

    def pending(self) -> tuple[str, bytes] | None:
        """What a beginning session must send: (topic, payload), or None."""
        return None if self.payload is None else (self.topic, self.payload)

    def sent(self, message: tuple[str, bytes]) -> None:
        """The beginning session sent ``message`` (from :meth:`pending`)."""
        self._sent = message[1]


async def _guarded(client_id: str, work: Coroutine[Any, Any, None]) -> None:
    """A failure of one operation's task is logged; it never stops the device."""
    try:
        await work
    except Exception:
        log.exception("device %s: an operation task failed", client_id)
