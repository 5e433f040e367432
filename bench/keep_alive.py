"""The keep-alive race behind rollout.py's one "Server disconnected without sending a
response": a client reuses an idle connection just as uvicorn's keep-alive timer closes
it, and the request is lost. Likelier the busier the event loops are.

    .venv/bin/python bench/keep_alive.py [--rounds 40]

One process, one event loop kept busy by blocking 50 ms callbacks (the service's loop
applying a batch, the bench's loop running the simulator), uvicorn serving a trivial app
and httpx reusing one connection after an idle time of 90-100 % of the server's
keep-alive (scaled down to 1 s to run fast). Printed: how many requests failed with the
client's idle expiry equal to the server's keep-alive (httpx's 5 s against uvicorn's
default 5 s, as fleetgate had it), with the client's shorter, and with the server's
longer (fleetgate's ``api.server.KEEP_ALIVE``, 30 s against httpx's 5 s).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import time
from typing import Any

import httpx
import uvicorn

SCALE = 1.0  # seconds standing for httpx's and uvicorn's 5 s


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await receive()
    headers = [(b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"ok"})


async def _busy() -> None:
    while True:
        time.sleep(0.05)  # noqa: ASYNC251 — the point: the loop is busy meanwhile
        await asyncio.sleep(0.001)


async def run(client_expiry: float, server_keep_alive: float, rounds: int) -> dict[str, int]:
    """Failed requests by error, with a client idle for 90-100 % of ``SCALE`` between
    two requests."""
    random.seed(1)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    config = uvicorn.Config(
        _app, log_level="critical", timeout_keep_alive=server_keep_alive, lifespan="off"
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 — uvicorn offers no event
        await asyncio.sleep(0.01)
    busy = asyncio.create_task(_busy())
    errors: dict[str, int] = {}
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    limits = httpx.Limits(keepalive_expiry=client_expiry)
    async with httpx.AsyncClient(base_url=url, limits=limits) as client:
        for _ in range(rounds):
            try:
                await client.get("/")
            except httpx.TransportError as exc:
                name = f"{type(exc).__name__}: {exc}".rstrip(": ")
                errors[name] = errors.get(name, 0) + 1
            await asyncio.sleep(SCALE * random.uniform(0.9, 1.0))
    busy.cancel()
    server.should_exit = True
    await serving
    return errors


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    for label, client, server in (
        ("client expiry = server keep-alive (httpx 5 s, uvicorn's default 5 s)", 1.0, 1.0),
        ("client expiry < server keep-alive", 0.5, 1.0),
        ("server keep-alive 6x the client's (fleetgate's 30 s, httpx 5 s)", 1.0, 6.0),
    ):
        errors = await run(client * SCALE, server * SCALE, args.rounds)
        print(f"{label}: {sum(errors.values())} of {args.rounds} requests failed {errors or ''}")


if __name__ == "__main__":
    asyncio.run(main())
