"""``fleetgate ops bulk create|show|pause|resume|cancel``: bulk operations from the
command line (``ops watch --bulk ID`` follows one)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from fleetgate.domain.errors import ConfigurationError, NotFound
from fleetgate.watch.bulk import BulkProgress, finished, plain_progress, progress_lines
from fleetgate.watch.manage_command import page_size
from fleetgate.watch.text_table import PartlyFailed

if TYPE_CHECKING:
    import httpx

    from fleetgate.watch.client import Endpoint

WAIT_INTERVAL = 1.0  # seconds between two reads of a bulk operation that --wait follows

DEFAULT_STACK = Path(".fleetgate/stack.json")


def add_bulk_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    tenant_user: Callable[[str], str],
) -> None:
    bulk = sub.add_parser(
        "bulk",
        help="create, show, pause, resume or cancel a bulk operation",
        description="Bulk operations (/devicecontrol/bulkoperations). Follow one live with"
        " `fleetgate ops watch --bulk ID`.",
    )
    bulk.add_argument("--stack", type=Path, default=DEFAULT_STACK, help="stack file of `up`")
    bulk.add_argument("--url", help="REST API address, e.g. http://127.0.0.1:8080")
    bulk.add_argument("--user", type=tenant_user, help="tenant/username (with --url)")
    bulk.add_argument("--password", help="the user's password (with --url)")
    actions = bulk.add_subparsers(dest="bulk_command", required=True)
    listed = actions.add_parser("list", help="list the bulk operations and their progress")
    listed.add_argument(
        "--limit", type=page_size, default=100, help="at most this many (1-2000; 100)"
    )
    listed.add_argument("--json", action="store_true", help="print the API's JSON answer")
    create = actions.add_parser("create", help="create a bulk operation for a group")
    target = create.add_mutually_exclusive_group(required=True)
    target.add_argument("--group", metavar="ID", help="the device group")
    target.add_argument("--failed-parent", metavar="ID", help="retry this one's failed devices")
    command = create.add_mutually_exclusive_group(required=True)
    command.add_argument(
        "--firmware",
        metavar="NAME,VERSION[,URL]",
        help="a c8y_Firmware operation (no URL: the firmware repository's for that version)",
    )
    command.add_argument("--prototype", metavar="JSON", help="the operation prototype")
    create.add_argument("--start", metavar="ISO", help="startDate (now)")
    create.add_argument("--ramp", type=float, default=0.0, help="creationRamp, seconds (0)")
    create.add_argument("--rollout", metavar="JSON", help="the fleetgate_Rollout fragment")
    create.add_argument("--note", help="a note")
    create.add_argument(
        "--wait",
        action="store_true",
        help="show its progress until it finishes; exit 0 if SUCCESSFUL, else 7",
    )
    for name, text in (
        ("show", "show its progress"),
        ("pause", "stop creating operations until resumed"),
        ("resume", "go on creating operations"),
        ("cancel", "create no more operations (those created go on)"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("id", metavar="ID")
        if name == "pause":
            action.add_argument("--reason", help="why (shown on the bulk operation)")


def _json(value: str, what: str) -> Any:
    try:
        return json.loads(value)
    except ValueError as exc:
        raise ConfigurationError(f"{what} is not JSON: {exc}") from None


def firmware_parts(value: str) -> tuple[str, str, str | None]:
    """``--firmware NAME,VERSION[,URL]``: its parts (no URL: the repository's, looked up)."""
    parts = value.split(",", 2)
    if len(parts) < 2 or not all(parts):
        raise ConfigurationError("--firmware takes NAME,VERSION[,URL]")
    return parts[0], parts[1], parts[2] if len(parts) == 3 else None


async def repository_url(client: httpx.AsyncClient, name: str, version: str) -> str:
    """The ``url`` of firmware ``name``'s version ``version`` in the firmware repository
    (the first 2000 firmware, by name); NotFound (exit 3) when there is none."""
    from fleetgate.watch.client import api_request

    roles = "ROLE_INVENTORY_READ or ROLE_INVENTORY_ADMIN"
    path = "/inventory/managedObjects"
    params = {"type": "c8y_Firmware", "pageSize": "2000"}
    found = await api_request(client, "GET", path, roles=roles, params=params) or {}
    for item in found.get("managedObjects") or []:
        if not isinstance(item, dict) or item.get("name") != name:
            continue
        children = await api_request(
            client,
            "GET",
            f"{path}/{item.get('id')}/childAdditions",
            roles=roles,
            params={"pageSize": "2000"},
        )
        for ref in (children or {}).get("references") or []:
            child = ref.get("managedObject") if isinstance(ref, dict) else None
            fragment = child.get("c8y_Firmware") if isinstance(child, dict) else None
            if isinstance(fragment, dict) and fragment.get("version") == version:
                url = fragment.get("url")
                if isinstance(url, str) and url:
                    return url
    raise NotFound(f"firmware {name} {version} is not in the firmware repository")


def create_body(args: argparse.Namespace, firmware_url: str | None = None) -> dict[str, Any]:
    """The POST body the ``create`` flags describe (``firmware_url``: for a ``--firmware``
    without one, the repository's)."""
    if args.firmware is not None:
        name, version, url = firmware_parts(args.firmware)
        url = url or firmware_url
        if url is None:
            raise ConfigurationError(f"--firmware {args.firmware}: no URL")
        prototype: Any = {
            "description": f"Update firmware to {name} {version}",
            "c8y_Firmware": {"name": name, "version": version, "url": url},
        }
    else:
        prototype = _json(args.prototype, "--prototype")
    body: dict[str, Any] = {
        "startDate": args.start or datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "creationRamp": args.ramp,
        "operationPrototype": prototype,
    }
    if args.group is not None:
        body["groupId"] = args.group
    else:
        body["failedParentId"] = args.failed_parent
    if args.rollout is not None:
        body["fleetgate_Rollout"] = _json(args.rollout, "--rollout")
    if args.note is not None:
        body["note"] = args.note
    return body


async def bulk_command(args: argparse.Namespace, endpoint: Endpoint) -> None:
    from fleetgate.watch.client import bulk_request, open_client

    async with open_client(endpoint) as client:
        verb = args.bulk_command
        if verb == "list":
            from fleetgate.watch.manage_command import bulk_list

            await bulk_list(args, client, sys.stdout)
            return
        if verb == "create":
            url = None
            if args.firmware is not None:
                name, version, url = firmware_parts(args.firmware)
                url = url or await repository_url(client, name, version)
            answer = await bulk_request(client, "POST", "", create_body(args, url))
        elif verb == "show":
            answer = await bulk_request(client, "GET", f"/{args.id}")
        elif verb == "pause":
            reason = {"reason": args.reason} if args.reason else None
            answer = await bulk_request(client, "POST", f"/{args.id}/pause", reason)
        elif verb == "resume":
            answer = await bulk_request(client, "POST", f"/{args.id}/resume")
        else:
            await bulk_request(client, "DELETE", f"/{args.id}")
            answer = await bulk_request(client, "GET", f"/{args.id}")
        assert answer is not None
        progress = BulkProgress.from_json(answer)
        if verb == "create" and args.wait:
            progress = await wait_for_bulk(client, progress, ProgressDisplay(sys.stderr))
    for line in progress_lines(progress, width=100):
        print(line)
    if verb == "create" and not args.wait:
        print(f"follow it: fleetgate ops watch --bulk {progress.id}", file=sys.stderr)
    if verb == "create" and args.wait:
        check_outcome(progress)


class ProgressDisplay:
    """``--wait``'s display on ``stream``: the two lines of the bar redrawn in place on a
    terminal; piped, one tab-separated line per change."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.terminal = stream.isatty()
        self._drawn = 0
        self._last = ""

    def show(self, progress: BulkProgress) -> None:
        if not self.terminal:
            line = plain_progress(progress)
            if line != self._last:
                print(line, file=self.stream, flush=True)
                self._last = line
            return
        import shutil

        lines = progress_lines(progress, width=shutil.get_terminal_size().columns - 1)
        # Back to the start of what was drawn, erase it, draw again.
        up = f"\x1b[{self._drawn}F\x1b[J" if self._drawn else ""
        self.stream.write(up + "\n".join(lines) + "\n")
        self.stream.flush()
        self._drawn = len(lines)


async def wait_for_bulk(
    client: httpx.AsyncClient,
    progress: BulkProgress,
    display: ProgressDisplay,
    *,
    interval: float = WAIT_INTERVAL,
) -> BulkProgress:
    """Read the bulk operation every ``interval`` seconds, showing each read, until it has
    finished (:func:`~fleetgate.watch.bulk.finished`); its last progress."""
    from fleetgate.watch.client import bulk_request

    display.show(progress)
    while not finished(progress):
        await asyncio.sleep(interval)
        answer = await bulk_request(client, "GET", f"/{progress.id}")
        assert answer is not None
        progress = BulkProgress.from_json(answer)
        display.show(progress)
    return progress


def check_outcome(progress: BulkProgress) -> None:
    """Exit status 0 for a SUCCESSFUL bulk operation; PartlyFailed (7) for any other end."""
    if progress.general_status != "SUCCESSFUL":
        raise PartlyFailed(
            f"bulk {progress.id} {progress.general_status}: {progress.successful} successful,"
            f" {progress.failed} failed, {progress.skipped} skipped of {progress.targets}"
        )
