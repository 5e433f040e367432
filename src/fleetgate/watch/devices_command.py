"""``fleetgate devices template|batch-upload|batch-show|batch-errors|batch-confirm``:
batch updates from a template (``/inventory/batchUpdates``) from the command line (and
``list|show|enable|disable|delete|children``, from :mod:`fleetgate.watch.manage_command`).

``template`` writes the template for a device type (empty, or with a device's row);
``batch-upload`` stages an edited file and says how many records are valid and invalid
(nothing changes yet); ``batch-errors`` prints ``errmsg.txt``; ``batch-confirm`` applies
the valid records. ``--json`` prints the API's answer as it is.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from fleetgate.domain.errors import ConfigurationError
from fleetgate.watch.manage_command import DEVICE_ACTIONS, add_device_actions

if TYPE_CHECKING:
    import httpx

    from fleetgate.watch.client import Endpoint

DEFAULT_STACK = Path(".fleetgate/stack.json")
PATH = "/inventory/batchUpdates"


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    tenant_user: Callable[[str], str],
) -> None:
    devices = commands.add_parser(
        "devices",
        help="list, show, enable, disable, delete devices; batch updates from a template",
        description="Devices (/inventory/managedObjects), and batch updates from a template"
        " (/inventory/batchUpdates). The API and"
        " the admin's credentials are read from the stack file of `fleetgate up` unless"
        " --url is given.",
    )
    devices.add_argument("--stack", type=Path, default=DEFAULT_STACK, help="stack file of `up`")
    devices.add_argument("--url", help="REST API address, e.g. http://127.0.0.1:8080")
    devices.add_argument("--user", type=tenant_user, help="tenant/username (with --url)")
    devices.add_argument("--password", help="the user's password (with --url)")
    devices.add_argument("--json", action="store_true", help="print the API's JSON answer")
    actions = devices.add_subparsers(dest="devices_command", required=True)
    add_device_actions(actions)
    template = actions.add_parser("template", help="download the template for a device type")
    template.add_argument("--type", required=True, help="the device type (managed object type)")
    template.add_argument("--device", metavar="ID", help="a device whose row is the example")
    template.add_argument("--format", choices=("xlsx", "csv"), default="xlsx")
    template.add_argument(
        "--output", "-o", type=Path, help="where to write it (Template_<type>.<format>)"
    )
    upload = actions.add_parser(
        "batch-upload", help="upload an edited template: checked and staged, nothing changes"
    )
    upload.add_argument("file", type=Path)
    upload.add_argument("--type", required=True, help="the device type of the template")
    for name, text in (
        ("batch-show", "show a staged or applied batch update"),
        ("batch-errors", "print its invalid records (errmsg.txt)"),
        ("batch-confirm", "apply its valid records (Update)"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("id", metavar="ID")
        if name != "batch-errors":
            _json_flag(action)
    _json_flag(upload)


def _json_flag(action: argparse.ArgumentParser) -> None:
    """``--json`` after the action too (SUPPRESS: not given here keeps the one before)."""
    action.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print the JSON answer"
    )


def batch_lines(body: dict[str, Any]) -> list[str]:
    """A batch update as text: its counts, its problems, its outcome, what to do next."""
    name = f", {body['fileName']}" if body.get("fileName") else ""
    lines = [
        f"batch update {body['id']} ({body['type']}{name}): {body['status']};"
        f" {body['numberOfRecords']} records, {body['numberOfValid']} valid,"
        f" {body['numberOfInvalid']} invalid"
    ]
    for problem in body.get("invalidRecords", []):
        where = f"row {problem['row']}" + (
            f", column {problem['column']}" if problem.get("column") else ""
        )
        lines.append(f"  {where}: {problem['cause']}")
    if body.get("invalidRecordsTruncated"):
        lines.append(f"  … all of them: fleetgate devices batch-errors {body['id']}")
    result = body.get("result")
    if result is not None:
        lines.append(
            f"updated {result['numberOfUpdated']}, unchanged {result['numberOfUnchanged']},"
            f" failed {result['numberOfFailed']}"
        )
        for failed in result["failedRecords"]:
            lines.append(f"  row {failed['row']} (device {failed['deviceId']}): {failed['cause']}")
    elif body["status"] == "STAGED" and body["numberOfValid"]:
        lines.append(
            f"nothing is changed yet; until {body['expiresAt']}:"
            f" fleetgate devices batch-confirm {body['id']}"
        )
    return lines


async def devices_command(
    args: argparse.Namespace,
    endpoint: Endpoint,
    client: httpx.AsyncClient | None = None,
    out: TextIO | None = None,
) -> None:
    """Run one ``fleetgate devices`` action (``client``: one already open, for tests)."""
    from fleetgate.watch.client import open_client

    if client is None:
        async with open_client(endpoint) as opened:
            await _act(args, opened, out or sys.stdout)
    else:
        await _act(args, client, out or sys.stdout)


async def _act(args: argparse.Namespace, client: httpx.AsyncClient, out: TextIO) -> None:
    from fleetgate.watch.client import batch_request

    verb = args.devices_command
    if verb in DEVICE_ACTIONS:
        from fleetgate.watch.manage_command import device_action

        await device_action(args, client, out)
        return
    if verb == "template":
        params = {"type": args.type, "format": args.format}
        if args.device is not None:
            params["deviceId"] = args.device
        response = await batch_request(client, "GET", f"{PATH}/template", params=params)
        target = args.output or Path(_file_name(response) or f"Template.{args.format}")
        target.write_bytes(response.content)
        print(f"wrote {target} ({len(response.content)} bytes)", file=out)
        return
    if verb == "batch-errors":
        response = await batch_request(client, "GET", f"{PATH}/{args.id}/errmsg.txt")
        out.write(response.text)
        return
    if verb == "batch-upload":
        try:
            content = args.file.read_bytes()
        except OSError as exc:
            raise ConfigurationError(f"cannot read {args.file}: {exc.strerror}") from None
        response = await batch_request(
            client,
            "POST",
            PATH,
            params={"type": args.type},
            files={"file": (args.file.name, content)},
        )
    elif verb == "batch-show":
        response = await batch_request(client, "GET", f"{PATH}/{args.id}")
    else:
        response = await batch_request(client, "POST", f"{PATH}/{args.id}/confirm")
    body = response.json()
    if args.json:
        print(json.dumps(body, indent=2), file=out)
    else:
        for line in batch_lines(body):
            print(line, file=out)


def _file_name(response: httpx.Response) -> str | None:
    """The file name of a ``Content-Disposition: attachment; filename="…"`` (no path)."""
    disposition = response.headers.get("content-disposition", "")
    _, found, rest = disposition.partition('filename="')
    name = rest.split('"', 1)[0] if found else ""
    return Path(name).name or None
