"""Device messages, batch by batch: parsed at the edge, applied, answered; never stuck.

The device link hands over what devices published (``op/status``, ``op/sync``,
``inventory``) and acknowledges it to the broker once :meth:`DeviceMessages.handle`
returns — so :meth:`handle` returns only when every message of the batch has had its
effect committed, or has been rejected for good:

1. Each message is parsed once (:func:`fleetgate.domain.device_messages.parse_device_message`).
   A message that can never be applied — not JSON, too large or deep, NaN, a NUL, an id
   out of range, a reserved fragment — is answered on the device's ``error`` topic and
   kept as a **dead letter** (device, topic, payload, reason) for operators.
2. The rest is applied. Should that fail for another reason than the database being away
   (something the edge checks did not foresee), the batch is split in halves and each half
   applied on its own, down to the single message that fails, which becomes a dead letter:
   one bad message never holds back anyone else's.
3. Only a transient failure (the database away) escapes :meth:`handle`: the link then
   retries the whole batch after a pause that grows, and every step is idempotent, so the
   parts that were committed before it failed are harmless to apply again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from fleetgate.domain.dead_letters import DeadLetter
from fleetgate.domain.device_messages import (
    ConnectivityReport,
    Declaration,
    DeviceError,
    DeviceMessage,
    Incoming,
    Rejection,
    StatusReport,
    SyncRequest,
    parse_device_message,
)
from fleetgate.domain.enablement import CHILD_DISABLED, child_disabled_reason
from fleetgate.domain.errors import ValidationFailed
from fleetgate.domain.gateways import NOT_A_CHILD
from fleetgate.domain.traces import service_entry
from fleetgate.services.ports import Publisher, TraceNotes, TransientCheck

log = logging.getLogger(__name__)

#: An inventory message of a device not yet registered waits at most this many
#: deferrals (``DEFER_DELAY`` apart in the link: 30 s) before it is refused.
MAX_DEFERRALS = 60


class DeadLetterStore(Protocol):
    async def record(self, letters: Sequence[DeadLetter]) -> None:
        """Keep these (each device keeps its newest ones only)."""


class ReportSink(Protocol):
    """What operations do with device messages (``fleetgate.services.operations``)."""

    async def on_reports(self, reports: Sequence[StatusReport]) -> list[DeviceError]:
        """Apply status reports in order, in one transaction; the errors to answer."""

    async def on_sync(self, requests: Sequence[SyncRequest]) -> None:
        """Publish every open operation of these devices (and gateways' children) again."""


#: Merges a device's declaration; False when the device is not registered yet (try again
#: later), ValidationFailed when it never will be (``last_try``).
DeclarationSink = Callable[[Declaration, bool], Awaitable[bool]]


class ChildSink(Protocol):
    """What gateways' messages about their children go to (``services.gateways``)."""

    async def declare_children(
        self, declarations: Sequence[tuple[Declaration, bool]]
    ) -> list[bool | ValidationFailed]:
        """Gateways' declarations of children (each with whether it is its last try): for
        each, as a :data:`DeclarationSink` would answer — True, False (try again later) or
        the ValidationFailed that refuses it."""

    async def attached(self, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which (child, gateway) pairs are a gateway and its child now."""

    async def on_connectivity(self, reports: Sequence[ConnectivityReport]) -> list[DeviceError]:
        """Apply gateways' reports of reaching their children, in order; the errors."""

    async def disabled_children(self, pairs: list[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which (child, gateway) pairs name a gateway's child that is disabled."""


@dataclass(frozen=True, slots=True)
class _Item:
    incoming: Incoming
    message: DeviceMessage


@dataclass(slots=True)
class _Applied:
    """What applying a part of a batch leaves to do once it is committed."""

    deferred: list[Incoming] = field(default_factory=list)
    rejected: list[tuple[Incoming, Rejection]] = field(default_factory=list)
    errors: list[DeviceError] = field(default_factory=list)


class DeviceMessages:
    def __init__(
        self,
        operations: ReportSink,
        declare: DeclarationSink,
        dead_letters: DeadLetterStore,
        replies: Publisher,
        *,
        children: ChildSink,
        is_transient: TransientCheck,
        tracer: TraceNotes | None = None,
    ) -> None:
        self._tracer = tracer
        #: ids of the Incoming refused during the current :meth:`handle` (traced only).
        self._refused: set[int] = set()
        self._operations = operations
        self._declare = declare
        self._children = children
        self._dead_letters = dead_letters
        self._replies = replies
        self._is_transient = is_transient

    async def handle(self, batch: list[Incoming]) -> list[Incoming]:
        """Apply ``batch``; returns the messages to hand back later (a declaration of a
        device whose registration is not committed yet). Raises only transient failures."""
        items: list[_Item] = []
        rejected: list[tuple[Incoming, Rejection]] = []
        for incoming in batch:
            parsed = parse_device_message(incoming.topic, incoming.payload)
            if parsed is None:
                log.warning("device message on an unexpected topic %r", incoming.topic[:200])
            elif isinstance(parsed, Rejection):
                rejected.append((incoming, parsed))
            else:
                items.append(_Item(incoming, parsed))
        self._refused = set()
        if rejected:
            await self._reject(rejected)
        deferred = await self._apply(items)
        if self._tracer is not None:
            await self._trace_outcomes(items, deferred)
        return deferred

    async def _trace_outcomes(self, items: list[_Item], deferred: list[Incoming]) -> None:
        """Note what became of each traced device's message that was not refused."""
        assert self._tracer is not None
        waiting = {id(incoming) for incoming in deferred}
        entries = []
        for item in items:
            device_id = item.message.gateway or item.message.device_id
            if not self._tracer.is_traced(device_id) or id(item.incoming) in self._refused:
                continue
            outcome = "deferred" if id(item.incoming) in waiting else "applied"
            entries.append(service_entry(device_id, outcome, item.incoming.topic))
        if entries:
            await self._tracer.note(entries)

    async def _apply(self, items: list[_Item]) -> list[Incoming]:
        """Apply ``items``; on a lasting failure, split until the failing one is alone.
        Answers go out only for a part that was applied whole."""
        if not items:
            return []
        try:
            applied = await self._apply_all(items)
        except Exception as exc:
            if self._is_transient(exc):
                raise
            if len(items) == 1:
                await self._poisoned(items[0], exc)
                return []
            log.warning(
                "applying %d device messages failed (%s: %s); splitting the batch",
                len(items),
                type(exc).__name__,
                exc,
            )
            half = len(items) // 2
            return await self._apply(items[:half]) + await self._apply(items[half:])
        for error in applied.errors:
            await self._send(error)
        if self._tracer is not None:
            await self._trace_errors(applied.errors)
        if applied.rejected:
            await self._reject(applied.rejected)
        return applied.deferred

    async def _apply_all(self, items: list[_Item]) -> _Applied:
        applied = _Applied()
        rejected = applied.rejected
        items = await self._without_disabled_children(items, rejected)
        reports: list[StatusReport] = []
        reach: list[ConnectivityReport] = []
        syncs: list[_Item] = []
        children: list[tuple[_Item, Declaration]] = []
        for item in items:
            message = item.message
            if isinstance(message, StatusReport):
                reports.append(message)
            elif isinstance(message, ConnectivityReport):
                reach.append(message)
            elif isinstance(message, SyncRequest):
                syncs.append(item)
            elif isinstance(message, Declaration) and message.gateway is not None:
                children.append((item, message))
            elif isinstance(message, Declaration):
                try:
                    declared: bool | ValidationFailed = await self._declare(
                        message, _last_try(item)
                    )
                except ValidationFailed as exc:
                    declared = exc
                _declared(item, message, declared, applied)
        if children:
            # Gateways' declarations of children, together: the broker hears of the new
            # ones once per batch. Before the reports: a child is declared, then moved.
            results = await self._children.declare_children(
                [(message, _last_try(item)) for item, message in children]
            )
            for (item, message), result in zip(children, results, strict=True):
                _declared(item, message, result, applied)
        if reports:
            applied.errors.extend(await self._operations.on_reports(reports))
        if reach:
            applied.errors.extend(await self._children.on_connectivity(reach))
        if syncs:
            asked = await self._children_only(syncs, rejected)
            if asked:
                await self._operations.on_sync(asked)
        return applied

    async def _without_disabled_children(
        self, items: list[_Item], rejected: list[tuple[Incoming, Rejection]]
    ) -> list[_Item]:
        """The items to apply: a gateway's messages for a child that an operator disabled
        are refused (``devices/childDisabled``, kept as dead letters) — nothing of them
        is applied until the child is enabled (decision 0012)."""
        pairs = sorted(
            {
                (item.message.device_id, item.message.gateway)
                for item in items
                if item.message.gateway is not None
            }
        )
        if not pairs:
            return items
        disabled = await self._children.disabled_children(pairs)
        if not disabled:
            return items
        kept: list[_Item] = []
        for item in items:
            gateway = item.message.gateway
            if gateway is not None and (item.message.device_id, gateway) in disabled:
                child = item.message.device_id
                rejected.append(
                    (
                        item.incoming,
                        Rejection(
                            child,
                            item.incoming.topic,
                            CHILD_DISABLED,
                            child_disabled_reason(child, gateway),
                            gateway,
                        ),
                    )
                )
            else:
                kept.append(item)
        return kept

    async def _children_only(
        self, syncs: list[_Item], rejected: list[tuple[Incoming, Rejection]]
    ) -> list[SyncRequest]:
        """The sync requests to answer: a device's own, and a gateway's for a child that
        is its child; the others are refused (``devices/notAChild``)."""
        requests = [item.message for item in syncs if isinstance(item.message, SyncRequest)]
        pairs = [(r.device_id, r.gateway) for r in requests if r.gateway is not None]
        attached = await self._children.attached(pairs) if pairs else set()
        asked: set[SyncRequest] = set()
        for item in syncs:
            request = item.message
            assert isinstance(request, SyncRequest)
            if request.gateway is None or (request.device_id, request.gateway) in attached:
                asked.add(request)
            else:
                rejected.append((item.incoming, _not_a_child(request, item.incoming.topic)))
        return sorted(asked, key=lambda r: (r.device_id, r.gateway or ""))

    async def _poisoned(self, item: _Item, exc: Exception) -> None:
        """The one message that fails to apply, for no reason the edge foresaw."""
        log.error(
            "device message on %s could not be applied; kept as a dead letter",
            item.incoming.topic,
            exc_info=exc,
        )
        reason = (
            f"the message could not be applied ({type(exc).__name__}); it was kept for the"
            " operators"
        )
        rejection = Rejection(
            item.message.device_id,
            item.incoming.topic,
            "general/internalError",
            reason,
            item.message.gateway,
        )
        await self._reject([(item.incoming, rejection)])

    async def _reject(self, rejected: list[tuple[Incoming, Rejection]]) -> None:
        """Keep as dead letters, then tell each device. A failure to keep them that is not
        transient is logged and the messages dropped: nothing may stall the link."""
        letters = [
            DeadLetter(r.device_id, r.topic, incoming.payload, r.error, r.reason, r.gateway)
            for incoming, r in rejected
        ]
        try:
            await self._dead_letters.record(letters)
        except Exception as exc:
            if self._is_transient(exc):
                raise
            log.exception("could not keep %d dead letters; dropped", len(letters))
        if self._tracer is not None:
            await self._trace_refusals(rejected)
        for _, rejection in rejected:
            log.info(
                "device %s: refused a message on %s: %s",
                rejection.device_id,
                rejection.topic,
                rejection.reason,
            )
            await self._send(DeviceError.of(rejection))

    async def _trace_refusals(self, rejected: list[tuple[Incoming, Rejection]]) -> None:
        assert self._tracer is not None
        entries = []
        for incoming, r in rejected:
            device_id = r.gateway or r.device_id
            if self._tracer.is_traced(device_id):
                self._refused.add(id(incoming))
                entries.append(
                    service_entry(device_id, "refused", r.topic, r.reason, error=r.error)
                )
        if entries:
            await self._tracer.note(entries)

    async def _trace_errors(self, errors: list[DeviceError]) -> None:
        """A status report or connectivity report the service answered with an error."""
        assert self._tracer is not None
        entries = [
            service_entry(e.gateway or e.device_id, "refused", e.topic, e.message, error=e.error)
            for e in errors
            if self._tracer.is_traced(e.gateway or e.device_id)
        ]
        if entries:
            await self._tracer.note(entries)

    async def _send(self, error: DeviceError) -> None:
        await self._replies.publish(error.reply_topic, json.dumps(error.body()).encode())


def _last_try(item: _Item) -> bool:
    return item.incoming.deferrals >= MAX_DEFERRALS


def _declared(
    item: _Item, message: Declaration, result: bool | ValidationFailed, applied: _Applied
) -> None:
    """Note what a declaration came to: applied, to try again later, or refused."""
    if isinstance(result, ValidationFailed):
        code = "inventory/badRequest" if result.code == ValidationFailed.code else result.code
        rejection = Rejection(
            message.device_id, item.incoming.topic, code, result.message, message.gateway
        )
        applied.rejected.append((item.incoming, rejection))
    elif not result:
        applied.deferred.append(item.incoming)


def _not_a_child(request: SyncRequest, topic: str) -> Rejection:
    return Rejection(
        request.device_id,
        topic,
        NOT_A_CHILD,
        f"device {request.device_id} is not a child of gateway {request.gateway}",
        request.gateway,
    )
