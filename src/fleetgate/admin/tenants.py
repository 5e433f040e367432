"""``fleetgate tenants list|create|suspend|reactivate|delete``: tenants managed over the REST
API (``/tenant/tenants``) as the management tenant's administrator.

The API and the credentials come from ``--url``/``--user``/``--password``, or else from the
home of ``fleetgate up``: ``stack.json`` names the API, ``secrets.json`` holds the
management administrator's password (user ``management/admin``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from fleetgate.domain.errors import (
    AccessDenied,
    AuthenticationFailed,
    ConfigurationError,
    Conflict,
    FleetgateError,
    NotFound,
)

if TYPE_CHECKING:  # httpx is imported when the command runs, not when the CLI starts
    import httpx

DEFAULT_HOME = Path(".fleetgate")
_TIMEOUT = 30.0
_PAGE = 100


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tenants = commands.add_parser(
        "tenants",
        help="manage tenants (the management tenant's administrator)",
        description="List, create, suspend, reactivate and delete tenants over the REST API,"
        " as the management tenant's administrator: from the home of `fleetgate up` unless"
        " --url, --user and --password are given.",
    )
    tenants.add_argument("--home", type=Path, default=DEFAULT_HOME, help="home of `up`")
    tenants.add_argument("--url", help="REST API address, e.g. http://127.0.0.1:8080")
    tenants.add_argument("--user", help="management tenant/username (with --url)")
    tenants.add_argument("--password", help="the user's password (with --url)")
    sub = tenants.add_subparsers(dest="tenants_command", required=True)
    sub.add_parser("list", help="list the tenants (id, status, company, domain)")
    create = sub.add_parser("create", help="create a tenant with its admin and bootstrap user")
    create.add_argument("--id", help="tenant id (generated when absent)")
    create.add_argument("--company", required=True)
    create.add_argument("--domain", required=True)
    create.add_argument("--admin-name", default="admin")
    create.add_argument(
        "--admin-pass", required=True, help="the tenant administrator's password (8-128 chars)"
    )
    create.add_argument("--admin-email")
    create.add_argument("--contact-name")
    for verb, text in (
        ("suspend", "suspend a tenant: its operators and devices are refused"),
        ("reactivate", "reactivate a suspended tenant"),
        ("delete", "delete a tenant and everything it owns"),
    ):
        command = sub.add_parser(verb, help=text)
        command.add_argument("tenant_id", metavar="ID")
        if verb == "delete":
            command.add_argument("--yes", action="store_true", help="do not ask")


def endpoint_from(args: argparse.Namespace) -> tuple[str, str, str]:
    if args.url is not None:
        if args.user is None or args.password is None:
            raise ConfigurationError("--url needs --user tenant/username and --password")
        return args.url, args.user, args.password
    home: Path = args.home
    try:
        stack = json.loads((home / "stack.json").read_text("utf-8"))
        secrets = json.loads((home / "secrets.json").read_text("utf-8"))
        url = str(stack["api_url"])
        password = args.password or str(secrets["management_admin_password"])
    except FileNotFoundError as exc:
        raise ConfigurationError(
            f"{exc.filename} not found: is `fleetgate up` running? (or give --url, --user,"
            " --password)"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigurationError(f"cannot read the stack files in {home}: {exc}") from None
    return url, args.user or "management/admin", password


def _check(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        body = response.json()
        message = body["message"] if isinstance(body, dict) else response.reason_phrase
    except ValueError:
        message = response.reason_phrase
    said = f"{response.request.method} {response.url.path}: {response.status_code} {message}"
    if response.status_code == 401:
        raise AuthenticationFailed(said)
    if response.status_code == 403:
        raise AccessDenied(f"{said} (only the management tenant's administrator manages tenants)")
    if response.status_code == 404:
        raise NotFound(said)
    if response.status_code == 409:
        raise Conflict(said)
    if response.status_code >= 500 or response.status_code in (408, 429):
        from fleetgate.watch.client import ApiUnavailable

        raise ApiUnavailable(said)
    raise FleetgateError(said)


def _row(tenant: dict[str, Any]) -> str:
    return "\t".join(
        str(tenant.get(k) or "-") for k in ("id", "status", "company", "domain", "adminName")
    )


async def tenants_command(args: argparse.Namespace, out: TextIO = sys.stdout) -> None:
    import httpx

    url, user, password = endpoint_from(args)
    if args.tenants_command == "delete" and not args.yes:
        question = f"delete tenant {args.tenant_id} and everything it owns? [y/N] "
        answer = await asyncio.to_thread(input, question)
        if answer.strip().lower() not in ("y", "yes"):
            print("not deleted", file=out)
            return
    from fleetgate.watch.client import ApiUnavailable, describe

    try:
        async with httpx.AsyncClient(
            base_url=url,
            auth=httpx.BasicAuth(user, password),
            headers={"Accept": "application/json"},
            timeout=_TIMEOUT,
        ) as client:
            command = args.tenants_command
            if command == "list":
                page = 1
                while True:
                    response = await client.get(
                        "/tenant/tenants", params={"pageSize": _PAGE, "currentPage": page}
                    )
                    _check(response)
                    found = response.json()["tenants"]
                    for tenant in found:
                        print(_row(tenant), file=out)
                    if len(found) < _PAGE:
                        return
                    page += 1
            if command == "create":
                body = {
                    "company": args.company,
                    "domain": args.domain,
                    "adminName": args.admin_name,
                    "adminPass": args.admin_pass,
                }
                for key, value in (
                    ("id", args.id),
                    ("adminEmail", args.admin_email),
                    ("contactName", args.contact_name),
                ):
                    if value is not None:
                        body[key] = value
                response = await client.post("/tenant/tenants", json=body)
                _check(response)
                created = response.json()
                bootstrap = created.get("fleetgate_bootstrap", {})
                print(_row(created), file=out)
                print(
                    f"bootstrap user {created['id']}/{bootstrap.get('userName')}"
                    f" password {bootstrap.get('password')} (shown once)",
                    file=out,
                )
                return
            tenant_id = args.tenant_id
            if command in ("suspend", "reactivate"):
                status = "SUSPENDED" if command == "suspend" else "ACTIVE"
                response = await client.put(f"/tenant/tenants/{tenant_id}", json={"status": status})
                _check(response)
                print(_row(response.json()), file=out)
                return
            if command == "delete":
                response = await client.delete(f"/tenant/tenants/{tenant_id}")
                _check(response)
                print(f"deleted {tenant_id}", file=out)
    except httpx.TransportError as exc:
        raise ApiUnavailable(f"cannot reach {url}: {describe(exc)}") from None
