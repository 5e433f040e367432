"""``fleetgate trace <device>``: a device's message trace, live in the terminal.

``--start SECONDS`` starts (or restarts) the trace first, ``--stop`` stops it. Then the
trace's entries are followed over the API's event stream
(``/devicecontrol/devices/{id}/trace/stream``): on a terminal the screen is redrawn with
the newest entry on top; piped, one tab-separated line per entry (time, kind, summary) as
it comes. It ends when the trace ends (expiry or stop) or on Ctrl-C; ``--once`` prints
what is kept and exits.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections import deque
from pathlib import Path
from typing import Any, TextIO

from fleetgate.domain.errors import ConfigurationError
from fleetgate.watch.command import DEFAULT_STACK, endpoint_from
from fleetgate.watch.sse import EventStreamParser

_HOME_CLEAR = "\x1b[H\x1b[2J"


def add_trace_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    trace = commands.add_parser(
        "trace",
        help="follow a device's message trace, live",
        description="Show what the broker and the service do with one device while its"
        " trace runs, newest first: connect attempts with the broker's decision and reason,"
        " disconnects, messages in and out, what the service did with each. The API and the"
        " admin's credentials come from the stack file of `fleetgate up` unless --url is"
        " given.",
    )
    trace.add_argument("device", help="the device id (c8y_Serial) or managed object id")
    trace.add_argument("--stack", type=Path, default=DEFAULT_STACK, help="stack file of `up`")
    trace.add_argument("--url", help="REST API address, e.g. http://127.0.0.1:8080")
    trace.add_argument("--user", help="tenant/username (with --url)")
    trace.add_argument("--password", help="the user's password (with --url)")
    trace.add_argument(
        "--start", type=int, metavar="SECONDS", help="start the trace first (at most 259200)"
    )
    trace.add_argument("--stop", action="store_true", help="stop the trace and exit")
    trace.add_argument("--once", action="store_true", help="print the kept entries and exit")


def entry_line(entry: dict[str, Any]) -> str:
    """One entry as a tab-separated line: time, kind, summary (tabs and newlines in the
    summary become spaces)."""
    summary = " ".join(str(entry.get("summary", "")).split())
    return f"{entry.get('time', '')}\t{entry.get('kind', '')}\t{summary}"


async def trace_command(args: argparse.Namespace, out: TextIO = sys.stdout) -> None:
    import httpx

    from fleetgate.watch.client import describe

    endpoint = endpoint_from(args)
    try:
        await _follow(args, endpoint, out)
    except httpx.TransportError as exc:
        raise ConfigurationError(f"cannot reach {endpoint.url}: {describe(exc)}") from None


async def _follow(args: argparse.Namespace, endpoint: Any, out: TextIO) -> None:
    import httpx

    from fleetgate.watch.client import open_client

    async with open_client(endpoint) as client:
        object_id = await _object_id(client, args.device)
        path = f"/devicecontrol/devices/{object_id}/trace"
        if args.stop:
            await _check(await client.delete(path))
            print(f"trace of {args.device} stopped", file=out)
            return
        if args.start is not None:
            await _check(await client.put(path, json={"durationSeconds": args.start}))
        if args.once:
            response = await client.get(path, params={"pageSize": "1000"})
            await _check(response)
            for entry in response.json()["entries"]:
                print(entry_line(entry), file=out)
            return
        live = out.isatty()
        shown: deque[str] = deque(maxlen=max(5, shutil.get_terminal_size().lines - 2))
        parser = EventStreamParser()
        timeout = httpx.Timeout(10.0, read=60.0)
        async with client.stream("GET", f"{path}/stream", timeout=timeout) as stream:
            await _check(stream)
            async for chunk in stream.aiter_bytes():
                batch: list[str] = []
                for event in parser.feed(chunk):
                    if event.type == "ended":
                        print(f"trace of {args.device} ended", file=out)
                        return
                    if event.type == "entry":
                        batch.append(entry_line(json.loads(event.data)))
                if not batch:
                    continue
                if not live:
                    for line in batch:
                        print(line, file=out, flush=True)
                    continue
                # A batch arrives newest first: the newest stays on top.
                for line in reversed(batch):
                    shown.appendleft(line)
                out.write(_HOME_CLEAR + f"trace of {args.device} (newest first)\n")
                out.write("\n".join(shown) + "\n")
                out.flush()


async def _object_id(client: Any, device: str) -> str:
    found = await client.get(f"/identity/externalIds/c8y_Serial/{device}")
    if found.status_code == 200:
        return str(found.json()["managedObject"]["id"])
    if device.isascii() and device.isdigit():
        return device
    raise ConfigurationError(f"no device {device!r} (neither a device id nor an object id)")


async def _check(response: Any) -> None:
    if response.is_success:
        return
    await response.aread()
    try:
        message = response.json().get("message", response.text)
    except ValueError:
        message = response.text
    raise ConfigurationError(f"{response.status_code}: {message}")
