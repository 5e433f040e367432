"""Reading operations from fleetgate's REST API: the list, and the live stream.

:func:`follow` is the whole protocol of a watcher: open the stream first, then load the
list (so no change falls between the two), then the stream's events; when the stream
drops, wait (0.5 s, doubling to 10 s) and open it again with the last event's id
(``Last-Event-ID``). The server then replays what was missed (``event: resumed``), or
says it cannot (``event: reset``: a restarted service, or too many changes since), and
only then is the list loaded again. It yields what happened as values;
the caller merges them into its :class:`~fleetgate.watch.table.OperationTable`.

httpx errors stay in this module: an unreachable server or a 5xx answer becomes
:class:`ApiUnavailable` (retried by :func:`follow`), 401/403/404 become fleetgate's
:class:`AuthenticationFailed`/:class:`AccessDenied`/:class:`NotFound`, which end it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from fleetgate.domain.errors import (
    AccessDenied,
    AuthenticationFailed,
    Conflict,
    FleetgateError,
    NotFound,
)
from fleetgate.watch.bulk import BulkProgress
from fleetgate.watch.sse import EventStreamParser, LineTooLong, ServerSentEvent
from fleetgate.watch.table import OperationRow

log = logging.getLogger(__name__)

OPERATIONS_PATH = "/devicecontrol/operations"
STREAM_PATH = "/devicecontrol/operations/stream"
BULK_PATH = "/devicecontrol/bulkoperations"
MIGRATIONS_PATH = "/inventory/migrations"
LOAD_LIMIT = 2000
PAGE_SIZE = 500
# The server sends a keepalive every 15 s: three missed ones mean the connection is gone.
STREAM_TIMEOUT = httpx.Timeout(10.0, read=45.0)
LIST_TIMEOUT = httpx.Timeout(10.0, read=60.0)


class ApiUnavailable(FleetgateError):
    """The REST API could not be reached, or answered with a server error; worth retrying."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where the API is and who we are there (``user`` is ``tenant/username``)."""

    url: str
    user: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class OperationFilter:
    device: str | None = None
    bulk: str | None = None
    statuses: tuple[str, ...] = ()

    def list_query(self) -> dict[str, str]:
        query = self._common()
        if self.statuses:
            query["status"] = ",".join(self.statuses)
        return query

    def stream_query(self) -> dict[str, str]:
        """Every status is streamed: an operation leaving the wanted statuses must be seen
        to leave (the table hides it), or it would show its old status for ever."""
        return self._common()

    def _common(self) -> dict[str, str]:
        query = {}
        if self.device is not None:
            query["deviceId"] = self.device
        if self.bulk is not None:
            query["bulkOperationId"] = self.bulk
        return query


@dataclass(frozen=True, slots=True)
class Loaded:
    """The current operations, read from the list after the stream was opened."""

    rows: list[OperationRow]
    truncated: bool  # there were more than the load limit


@dataclass(frozen=True, slots=True)
class Changed:
    """An operation as one stream event carried it."""

    row: OperationRow


@dataclass(frozen=True, slots=True)
class Connection:
    """The stream's state, for the operator: ``connecting``, ``live``, ``reconnecting…``."""

    state: str
    live: bool = False


@dataclass(frozen=True, slots=True)
class BulkChanged:
    """The watched bulk operation's progress, from the list or a stream event."""

    progress: BulkProgress


WatchEvent = Loaded | Changed | Connection | BulkChanged


@dataclass(frozen=True, slots=True)
class Backoff:
    first: float = 0.5
    most: float = 10.0

    def after(self, delay: float) -> float:
        return min(delay * 2, self.most)


def open_client(endpoint: Endpoint) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=endpoint.url,
        auth=httpx.BasicAuth(endpoint.user, endpoint.password),
        headers={"Accept": "application/json"},
        timeout=LIST_TIMEOUT,
    )


async def load_operations(
    client: httpx.AsyncClient, filters: OperationFilter, *, limit: int = LOAD_LIMIT
) -> Loaded:
    """The operations matching ``filters``, newest first, at most ``limit`` of them
    (following ``next`` from page to page)."""
    rows: list[OperationRow] = []
    url: str | None = OPERATIONS_PATH
    params: dict[str, str] | None = {
        **filters.list_query(),
        "pageSize": str(min(PAGE_SIZE, limit)),
        "revert": "true",
    }
    while url is not None and len(rows) < limit:
        body = await _get_json(client, url, params)
        page = body.get("operations")
        if not isinstance(page, list):
            raise FleetgateError(f"{client.base_url}{OPERATIONS_PATH}: not an operation list")
        rows.extend(_rows(page))
        url = _same_origin(client, body.get("next")) if page else None
        params = None
    return Loaded(rows[:limit], truncated=url is not None or len(rows) > limit)


async def follow(
    client: httpx.AsyncClient,
    filters: OperationFilter,
    *,
    limit: int = LOAD_LIMIT,
    backoff: Backoff = Backoff(),
) -> AsyncGenerator[WatchEvent, None]:
    """Stream, load, stream… until cancelled; reconnects on its own. Raises the errors
    that a retry cannot mend (refused credentials, a missing endpoint)."""
    loop = asyncio.get_running_loop()
    delay = backoff.first
    last_event_id: str | None = None
    while True:
        yield Connection("connecting")
        live_since: float | None = None
        headers = {"Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        try:
            async with client.stream(
                "GET",
                STREAM_PATH,
                params=filters.stream_query(),
                headers=headers,
                timeout=STREAM_TIMEOUT,
            ) as response:
                await _check(response)
                parser = EventStreamParser()
                chunks = response.aiter_bytes()
                # Asked to resume, the server first says whether it could: `resumed`
                # (the missed changes follow) or `reset` (they are gone: reload).
                early = await _answer_to_resume(chunks, parser) if last_event_id else []
                if not early or early[0].type != "resumed":
                    yield await load_operations(client, filters, limit=limit)
                    if filters.bulk is not None:
                        yield BulkChanged(await load_bulk(client, filters.bulk))
                yield Connection("live", live=True)
                live_since = loop.time()
                reason = "the server ended the stream"
                pending = early
                while True:
                    for event in pending:
                        last_event_id = event.last_event_id or last_event_id
                        if event.type == "bulkOperation":
                            progress = _event_bulk(event.data)
                            if progress is not None and progress.id == filters.bulk:
                                yield BulkChanged(progress)
                            continue
                        row = _event_row(event.type, event.data)
                        if row is not None:
                            yield Changed(row)
                    if any(event.type == "overflow" for event in pending):
                        reason = "changes came faster than they were read; reloading"
                        last_event_id = None  # what was dropped cannot be resumed
                        break
                    chunk = await anext(chunks, None)
                    if chunk is None:
                        break
                    pending = parser.feed(chunk)
        except ApiUnavailable as exc:
            reason = exc.message
        except httpx.TransportError as exc:
            reason = describe(exc)
        except LineTooLong as exc:
            reason = str(exc)
        if live_since is not None and loop.time() - live_since >= backoff.most:
            delay = backoff.first  # it was up a good while: this is a new outage
        yield Connection(f"reconnecting in {delay:.1f} s: {reason}")
        await asyncio.sleep(delay)
        delay = backoff.after(delay)


async def _answer_to_resume(
    chunks: AsyncIterator[bytes], parser: EventStreamParser
) -> list[ServerSentEvent]:
    """The stream's first events: the first is the server's answer to a ``Last-Event-ID``
    (a server that does not resume sends none, and its first event is anything else)."""
    async for chunk in chunks:
        if events := parser.feed(chunk):
            return events
    return []


async def _get_json(
    client: httpx.AsyncClient, url: str, params: dict[str, str] | None
) -> dict[str, Any]:
    try:
        response = await client.get(url, params=params)
    except httpx.TransportError as exc:
        raise ApiUnavailable(f"cannot read {client.base_url}: {describe(exc)}") from None
    await _check(response)
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise FleetgateError(f"{response.url}: the answer is not a JSON object")
    return body


async def _check(
    response: httpx.Response, roles: str = "ROLE_DEVICE_CONTROL_READ or ROLE_DEVICE_CONTROL_ADMIN"
) -> None:
    """Raise the fleetgate error for an unsuccessful answer (``roles``: what a 403 says
    the user needs)."""
    if response.is_success:
        return
    await response.aread()
    where = f"{response.request.method} {response.url.copy_with(query=None)}"
    said = f"{where}: {response.status_code} {_message(response)}".rstrip()
    if response.status_code == 401:
        raise AuthenticationFailed(f"{said} (check --user tenant/username and --password)")
    if response.status_code == 403:
        raise AccessDenied(f"{said} (the user needs {roles})")
    if response.status_code == 404:
        raise NotFound(said)
    if response.status_code == 409:
        raise Conflict(said)
    if response.status_code >= 500 or response.status_code in (408, 429):
        raise ApiUnavailable(said)
    raise FleetgateError(said)


def _message(response: httpx.Response) -> str:
    """Cumulocity's error ``message``, else the reason phrase."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return response.reason_phrase


def _same_origin(client: httpx.AsyncClient, link: Any) -> str | None:
    """The ``next`` link to follow, kept on our server: the credentials go nowhere else.
    A link to another origin (a server that does not know its public address) is
    followed on ours, by its query."""
    if not isinstance(link, str) or not link:
        return None
    parts = urlsplit(link)
    base = client.base_url
    if (parts.scheme, parts.netloc) == (base.scheme, base.netloc.decode("ascii")):
        return link
    return f"{OPERATIONS_PATH}?{parts.query}"


def _rows(page: list[Any]) -> list[OperationRow]:
    rows = []
    for item in page:
        try:
            rows.append(OperationRow.from_json(item if isinstance(item, dict) else {}))
        except ValueError as exc:
            log.debug("skipped %s", exc)
    return rows


def _event_row(event_type: str, data: str) -> OperationRow | None:
    if event_type != "operation":
        return None
    try:
        body = json.loads(data)
        return OperationRow.from_json(body if isinstance(body, dict) else {})
    except ValueError as exc:
        log.debug("skipped an event: %s", exc)
        return None


def _event_bulk(data: str) -> BulkProgress | None:
    try:
        body = json.loads(data)
        return BulkProgress.from_json(body if isinstance(body, dict) else {})
    except ValueError as exc:
        log.debug("skipped an event: %s", exc)
        return None


async def load_bulk(client: httpx.AsyncClient, bulk_id: str) -> BulkProgress:
    body = await _get_json(client, f"{BULK_PATH}/{bulk_id}", None)
    try:
        return BulkProgress.from_json(body)
    except ValueError:
        raise FleetgateError(
            f"{client.base_url}{BULK_PATH}/{bulk_id}: not a bulk operation"
        ) from None


async def bulk_request(
    client: httpx.AsyncClient, method: str, path: str, body: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """Create, pause, resume or cancel a bulk operation; its JSON (None for a 204)."""
    return await api_request(client, method, f"{BULK_PATH}{path}", body)


async def migration_request(
    client: httpx.AsyncClient, method: str, path: str, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Request, show, confirm or cancel a device migration, or get its code; its JSON."""
    answer = await api_request(
        client,
        method,
        f"{MIGRATIONS_PATH}{path}",
        body,
        roles="ROLE_TENANT_ADMIN of the migration's source or target tenant, as the message says",
    )
    if answer is None:
        raise FleetgateError(f"{client.base_url}{MIGRATIONS_PATH}{path}: an empty answer")
    return answer


async def api_request(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    *,
    roles: str = "ROLE_DEVICE_CONTROL_READ or ROLE_DEVICE_CONTROL_ADMIN",
    params: dict[str, str] | None = None,
) -> dict[str, Any] | None:
    """One request to the API; the answer's JSON object (None for a 204, or any empty
    answer). ``roles``: what a 403 says the user needs."""
    try:
        response = await client.request(method, path, json=body, params=params)
    except httpx.TransportError as exc:
        raise ApiUnavailable(f"cannot reach {client.base_url}: {describe(exc)}") from None
    await _check(response, roles)
    if response.status_code == 204 or not response.content:
        return None
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise FleetgateError(f"{response.url}: the answer is not a JSON object")
    return answer


def describe(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "no answer in time"
    text = str(exc)
    return text or type(exc).__name__


async def batch_request(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    *,
    params: dict[str, str] | None = None,
    files: dict[str, tuple[str, bytes]] | None = None,
) -> httpx.Response:
    """One request of ``fleetgate devices`` (``/inventory/batchUpdates…``), checked."""
    try:
        response = await client.request(method, path, params=params, files=files)
    except httpx.TransportError as exc:
        raise ApiUnavailable(f"cannot reach {client.base_url}: {describe(exc)}") from None
    await _check(response, "ROLE_INVENTORY_READ to read, ROLE_INVENTORY_ADMIN to change")
    return response


async def upload_request(
    client: httpx.AsyncClient,
    path: str,
    body: AsyncIterator[bytes],
    *,
    content_type: str,
    length: int,
    roles: str,
) -> dict[str, Any]:
    """POST a streamed body (an upload) of ``length`` bytes; the answer's JSON object."""
    headers = {"Content-Type": content_type, "Content-Length": str(length)}
    try:
        response = await client.post(path, content=body, headers=headers, timeout=None)
    except httpx.TransportError as exc:
        raise ApiUnavailable(f"cannot reach {client.base_url}: {describe(exc)}") from None
    await _check(response, roles)
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise FleetgateError(f"{response.url}: the answer is not a JSON object")
    return answer
