"""``fleetgate ops watch``: the operations of a fleet, live in the terminal.

On a terminal the table is redrawn in place (at most ten times a second, and when the
window is resized); piped, one tab-separated line is printed per change, and the state of
the connection goes to standard error. ``--once`` prints the table and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from fleetgate.domain.errors import ConfigurationError
from fleetgate.watch.bulk import BulkProgress, plain_progress, progress_lines
from fleetgate.watch.bulk_command import add_bulk_parser
from fleetgate.watch.manage_command import OPS_ACTIONS, add_ops_actions
from fleetgate.watch.migration_command import add_migration_parser
from fleetgate.watch.render import plain_line, render_table
from fleetgate.watch.table import STATUSES, Change, OperationTable

if TYPE_CHECKING:  # httpx is imported when the command runs, not when the CLI starts
    import httpx

    from fleetgate.watch.client import Endpoint, OperationFilter

DEFAULT_STACK = Path(".fleetgate/stack.json")
REDRAW_INTERVAL = 0.1  # seconds: at most ten redraws a second

_HOME = "\x1b[H"
_CLEAR_SCREEN = "\x1b[2J"
_CLEAR_LINE = "\x1b[K"
_CLEAR_BELOW = "\x1b[J"
_HIDE_CURSOR = "\x1b[?25l"
_SHOW_CURSOR = "\x1b[?25h"


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``ops`` (with its sub-command ``watch``) to fleetgate's commands."""
    ops = commands.add_parser("ops", help="device operations", description="Device operations.")
    sub = ops.add_subparsers(dest="ops_command", required=True)
    watch = sub.add_parser(
        "watch",
        help="watch operations change, live",
        description="Show operations and their status as they change: a table redrawn in"
        " place on a terminal, one tab-separated line per change when piped (status time,"
        " id, device, type, status, failure reason). The API and the admin's credentials"
        " are read from the stack file of `fleetgate up` unless --url is given.",
    )
    watch.add_argument(
        "--stack",
        type=Path,
        default=DEFAULT_STACK,
        help=f"stack file written by `fleetgate up` ({DEFAULT_STACK})",
    )
    watch.add_argument("--url", help="REST API address, e.g. http://127.0.0.1:8080")
    watch.add_argument("--user", type=tenant_user, help="tenant/username (with --url)")
    watch.add_argument("--password", help="the user's password (with --url)")
    watch.add_argument("--device", metavar="ID", help="only this device's operations")
    watch.add_argument(
        "--bulk",
        metavar="ID",
        help="only this bulk operation's operations, under a bar of its progress",
    )
    watch.add_argument(
        "--status",
        nargs="+",
        action="extend",
        type=_statuses,
        metavar="S",
        help=f"only operations in these statuses ({', '.join(STATUSES)}; several or"
        " comma-separated)",
    )
    watch.add_argument("--once", action="store_true", help="print the table once and exit")
    add_bulk_parser(sub, tenant_user)
    add_migration_parser(sub, tenant_user)
    add_ops_actions(sub, tenant_user)


def tenant_user(value: str) -> str:
    tenant, slash, name = value.partition("/")
    if not (tenant and slash and name):
        raise argparse.ArgumentTypeError(f"expected tenant/username, not {value!r}")
    return value


def _statuses(value: str) -> list[str]:
    found = [s.strip().upper() for s in value.split(",") if s.strip()]
    unknown = [s for s in found if s not in STATUSES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown status {', '.join(unknown)} (known: {', '.join(STATUSES)})"
        )
    return found


def endpoint_from(args: argparse.Namespace) -> Endpoint:
    """The API and credentials: all from the flags when ``--url`` is given (the stack's
    password is never sent to another server), else from the stack file, whose admin
    ``--user``/``--password`` may replace."""
    from fleetgate.watch.client import Endpoint

    if args.url is not None:
        if args.user is None or args.password is None:
            raise ConfigurationError("--url needs --user tenant/username and --password")
        return Endpoint(args.url, args.user, args.password)
    if args.user is not None and args.password is None:
        raise ConfigurationError("--user needs --password")
    stack = _read_stack(args.stack)
    try:
        admin = stack["admin"]
        user = args.user or f"{admin['tenant']}/{admin['username']}"
        password = args.password if args.password is not None else admin["password"]
        return Endpoint(str(stack["api_url"]), str(user), str(password))
    except (KeyError, TypeError) as exc:
        raise ConfigurationError(
            f"{args.stack} lacks {exc}: is it a fleetgate stack file?"
        ) from None


def _read_stack(path: Path) -> dict[str, Any]:
    try:
        stack = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(
            f"{path} not found: is `fleetgate up` running? (or give --url, --user, --password)"
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read {path}: {exc}") from None
    if not isinstance(stack, dict):
        raise ConfigurationError(f"{path} is not a fleetgate stack file")
    return stack


async def watch_command(args: argparse.Namespace) -> None:
    """Run ``ops watch`` until cancelled (or, with ``--once``, until the table is out);
    ``ops bulk …`` too."""
    if args.ops_command == "bulk":
        from fleetgate.watch.bulk_command import bulk_command

        await bulk_command(args, endpoint_from(args))
        return
    if args.ops_command in OPS_ACTIONS:
        from fleetgate.watch.manage_command import ops_action

        await ops_action(args, endpoint_from(args))
        return
    if args.ops_command == "migration":
        from fleetgate.watch.migration_command import migration_command

        await migration_command(args, endpoint_from(args))
        return
    from fleetgate.watch.client import OperationFilter, load_bulk, load_operations, open_client

    endpoint = endpoint_from(args)
    wanted = (status for given in args.status or () for status in given)
    filters = OperationFilter(args.device, args.bulk, tuple(dict.fromkeys(wanted)))
    out = sys.stdout
    terminal = out.isatty()
    colour = terminal and "NO_COLOR" not in os.environ
    _quiet_request_log()
    table = OperationTable(filters.statuses)
    try:
        async with open_client(endpoint) as client:
            if args.once:
                loaded = await load_operations(client, filters)
                for row in loaded.rows:
                    table.apply(row)
                size = shutil.get_terminal_size()
                lines = render_table(table, width=size.columns, colour=colour)
                if filters.bulk is not None:
                    progress = await load_bulk(client, filters.bulk)
                    lines = progress_lines(progress, width=size.columns) + lines
                out.write("\n".join(lines) + "\n")
                if loaded.truncated:
                    print(f"(only the latest {len(loaded.rows)} operations)", file=sys.stderr)
                return
            title = _title(endpoint, filters)
            screen: Screen = (
                LiveScreen(out, table, title, colour=colour) if terminal else PlainLog(out, table)
            )
            await _watch(client, filters, table, screen)
    except* BrokenPipeError:
        _silence_stdout()  # `… | head`: the reader has seen enough


class Screen(Protocol):
    def changed(self, change: Change) -> None: ...
    def bulk(self, progress: BulkProgress) -> None: ...
    def connection(self, state: str) -> None: ...
    async def run(self) -> None: ...


async def _watch(
    client: httpx.AsyncClient, filters: OperationFilter, table: OperationTable, screen: Screen
) -> None:
    from fleetgate.watch.client import BulkChanged, Changed, Connection, Loaded, follow

    async def consume() -> None:
        async with contextlib.aclosing(follow(client, filters)) as events:
            async for event in events:
                if isinstance(event, Loaded):
                    # oldest first, so that a log of them reads in the order they happened
                    for row in sorted(event.rows, key=lambda r: r.changed_at):
                        screen.changed(table.apply(row))
                elif isinstance(event, Changed):
                    screen.changed(table.apply(event.row))
                elif isinstance(event, Connection):
                    screen.connection(event.state)
                elif isinstance(event, BulkChanged):
                    screen.bulk(event.progress)

    async with asyncio.TaskGroup() as tasks:
        drawing = tasks.create_task(screen.run())
        try:
            await consume()
        finally:
            drawing.cancel()


class LiveScreen:
    """The table, redrawn in place after changes, at most every :data:`REDRAW_INTERVAL`."""

    def __init__(self, out: TextIO, table: OperationTable, title: str, *, colour: bool) -> None:
        self._out = out
        self._table = table
        self._title = title
        self._colour = colour
        self._state = "connecting"
        self._dirty = asyncio.Event()
        self._bulk: BulkProgress | None = None

    def changed(self, change: Change) -> None:
        if change.applied:
            self._dirty.set()

    def bulk(self, progress: BulkProgress) -> None:
        if self._bulk is None or progress.is_newer_than(self._bulk):
            self._bulk = progress
            self._dirty.set()

    def connection(self, state: str) -> None:
        self._state = state
        self._dirty.set()

    def draw(self) -> None:
        size = shutil.get_terminal_size()
        bar = [] if self._bulk is None else progress_lines(self._bulk, width=size.columns)
        # one line short of the screen: writing the last line would scroll it
        lines = bar + render_table(
            self._table,
            width=size.columns,
            height=size.lines - 1 - len(bar),
            title=f"{self._state} · {self._title}",
            colour=self._colour,
        )
        text = _HOME + (_CLEAR_LINE + "\n").join(lines) + _CLEAR_LINE + _CLEAR_BELOW
        self._out.write(text)
        self._out.flush()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGWINCH, self._dirty.set)
        self._out.write(_HIDE_CURSOR + _CLEAR_SCREEN)
        self._dirty.set()
        try:
            while True:
                await self._dirty.wait()
                self._dirty.clear()
                self.draw()
                await asyncio.sleep(REDRAW_INTERVAL)
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signal.SIGWINCH)
            with contextlib.suppress(OSError, ValueError):
                self.draw()  # the last state, so that it stays on screen after Ctrl-C
                self._out.write(_SHOW_CURSOR + "\n")
                self._out.flush()


class PlainLog:
    """One line per change of a shown operation; the connection's state on stderr."""

    def __init__(self, out: TextIO, table: OperationTable) -> None:
        self._out = out
        self._table = table

    def changed(self, change: Change) -> None:
        if change.applied and self._table.shows(change.row.status):
            self._out.write(plain_line(change.row) + "\n")
            self._out.flush()

    def bulk(self, progress: BulkProgress) -> None:
        self._out.write(plain_progress(progress) + "\n")
        self._out.flush()

    def connection(self, state: str) -> None:
        print(f"fleetgate ops watch: {state}", file=sys.stderr, flush=True)

    async def run(self) -> None:
        await asyncio.Event().wait()  # nothing to do between changes


def _title(endpoint: Endpoint, filters: OperationFilter) -> str:
    parts = [f"operations at {endpoint.url}"]
    if filters.device is not None:
        parts.append(f"device {filters.device}")
    if filters.bulk is not None:
        parts.append(f"bulk {filters.bulk}")
    if filters.statuses:
        parts.append(" ".join(filters.statuses))
    return " · ".join(parts)


def _quiet_request_log() -> None:
    """httpx logs every request at INFO: that would scroll the table away."""
    http_log = logging.getLogger("httpx")
    if not http_log.isEnabledFor(logging.DEBUG):
        http_log.setLevel(logging.WARNING)


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit raises nothing more."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
