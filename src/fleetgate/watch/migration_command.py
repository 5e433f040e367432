"""``fleetgate ops migration request|list|show|code|confirm|cancel``: moving a device to
another tenant from the command line (``/inventory/migrations``, decision 0014).

``code`` is how an administrator of the target tenant reads the verification code: it is
issued to the user who asks and printed once (the service keeps only its hash). Nobody
else can: the source's administrators and the target's other users are refused.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from fleetgate.watch.client import Endpoint

DEFAULT_STACK = Path(".fleetgate/stack.json")


def add_migration_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    tenant_user: Callable[[str], str],
) -> None:
    migration = sub.add_parser(
        "migration",
        help="move a device to another tenant, with the target's verification code",
        description="Device migrations (/inventory/migrations): an administrator of the"
        " source tenant requests one, an administrator of the target tenant gets the"
        " verification code (`code`) and enters it (`confirm`) within 10 minutes.",
    )
    migration.add_argument("--stack", type=Path, default=DEFAULT_STACK, help="stack file of `up`")
    migration.add_argument("--url", help="REST API address, e.g. http://127.0.0.1:8080")
    migration.add_argument("--user", type=tenant_user, help="tenant/username (with --url)")
    migration.add_argument("--password", help="the user's password (with --url)")
    actions = migration.add_subparsers(dest="migration_command", required=True)
    request = actions.add_parser("request", help="ask to move a device (source's admin)")
    request.add_argument("device", metavar="DEVICE", help="the device's managed object id")
    request.add_argument("target", metavar="TENANT", help="the tenant to move it to")
    request.add_argument(
        "--without-children",
        action="store_true",
        help="a gateway's children stay (detached) in the source",
    )
    actions.add_parser("list", help="the migrations out of and into your tenant")
    for name, text in (
        ("show", "show one migration"),
        ("code", "get the verification code, printed once (target's admin)"),
        ("cancel", "withdraw (source) or decline (target) a request"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("id", metavar="ID")
    confirm = actions.add_parser("confirm", help="enter the code: the device moves (target)")
    confirm.add_argument("id", metavar="ID")
    confirm.add_argument("code", metavar="CODE")


def describe(migration: dict[str, Any]) -> str:
    """One line per migration: id, status, device, from → to, what is left or done."""
    line = (
        f"{migration.get('id')}\t{migration.get('status')}\t{migration.get('externalId')}"
        f"\t{migration.get('sourceTenant')} -> {migration.get('targetTenant')}"
    )
    if migration.get("status") == "REQUESTED":
        line += (
            f"\texpires {migration.get('expiresAt')}\t{migration.get('attemptsLeft')} attempts left"
        )
    elif migration.get("movedDevices"):
        line += f"\tmoved {', '.join(migration['movedDevices'])}"
    return line


async def migration_command(
    args: argparse.Namespace, endpoint: Endpoint, out: TextIO = sys.stdout
) -> None:
    from fleetgate.watch.client import migration_request, open_client

    verb = args.migration_command
    async with open_client(endpoint) as client:
        if verb == "request":
            body = {
                "deviceId": args.device,
                "targetTenant": args.target,
                "withChildren": not args.without_children,
            }
            answer = await migration_request(client, "POST", "", body)
        elif verb == "list":
            found = await migration_request(client, "GET", "?pageSize=100")
            for migration in found.get("migrations", []):
                print(describe(migration), file=out)
            return
        elif verb == "show":
            answer = await migration_request(client, "GET", f"/{args.id}")
        elif verb == "code":
            issued = await migration_request(client, "POST", f"/{args.id}/code")
            print(issued["code"], file=out)
            print(
                f"valid until {issued.get('expiresAt')}; it replaces any code issued before",
                file=sys.stderr,
            )
            return
        elif verb == "confirm":
            answer = await migration_request(
                client, "POST", f"/{args.id}/confirmation", {"code": args.code}
            )
        else:
            answer = await migration_request(client, "DELETE", f"/{args.id}")
    print(describe(answer), file=out)
