"""Serving the API with uvicorn inside the service's TaskGroup.

uvicorn's own signal capture and ``sys.exit`` on a busy port do not belong inside a
larger process: the socket is bound here first (a busy port is a clear
:class:`ConfigurationError`), and signals stay with the composition root.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator

import uvicorn
from fastapi import FastAPI

from fleetgate.domain.errors import ConfigurationError

#: Seconds an idle keep-alive connection stays open: longer than the idle expiry of the
#: usual clients (httpx and Node 5 s, aiohttp 15 s). uvicorn's default, 5 s, equals
#: httpx's: a client then reuses a connection just as the server's timer closes it, and
#: the request is lost ("Server disconnected without sending a response") — the more
#: often the busier either event loop is (bench/README.md, rollout.py; bench/keep_alive.py
#: shows it). Clients that keep idle connections longer still must retry.
KEEP_ALIVE = 30


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigurationError(
            f"cannot listen for the REST API on {host}:{port}: {exc.strerror}"
            " (is the port already in use? set --api-port / FLEETGATE_API_PORT)"
        ) from None
    sock.listen(1024)
    sock.setblocking(False)
    return sock


async def serve(app: FastAPI, sock: socket.socket, started: asyncio.Event) -> None:
    """Serve until cancelled; then finish in-flight requests and close the socket."""
    config = uvicorn.Config(
        app, log_config=None, access_log=False, lifespan="off", timeout_keep_alive=KEEP_ALIVE
    )
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                await task
                raise ConfigurationError("the REST API stopped during start-up")
            await asyncio.sleep(0.02)
        started.set()
        await asyncio.shield(task)
        raise ConfigurationError("the REST API server stopped unexpectedly")
    except asyncio.CancelledError:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, timeout=10)
        raise
    finally:
        sock.close()
