"""``fleetgate certs|requests|users`` and ``fleetgate devices list|show|enable|disable|
delete|children``: an operator's everyday tasks from the command line.

An adapter over the REST API only (one client, :mod:`fleetgate.watch.client`): the API
and the credentials come from the stack file of ``fleetgate up`` unless ``--url``,
``--user`` and ``--password`` are given (:func:`fleetgate.watch.command.endpoint_from`).
Lists print as tables (:mod:`fleetgate.watch.text_table`), one object as ``field value``
lines; ``--json`` prints the API's answer as it is. Errors end the command with the exit
status of :func:`fleetgate.watch.text_table.exit_status`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import quote

from fleetgate.domain.errors import ConfigurationError, FleetgateError, NotFound
from fleetgate.watch.text_table import PartlyFailed, format_table, pick, text

if TYPE_CHECKING:
    import httpx

    from fleetgate.watch.client import Endpoint

DEFAULT_STACK = Path(".fleetgate/stack.json")
COMMANDS = ("certs", "requests", "users", "profiles", "credentials", "repo")
DEVICE_ACTIONS = ("list", "show", "enable", "disable", "delete", "children")
OPS_ACTIONS = ("list", "show", "create", "cancel")
OPERATION_STATUSES = ("PENDING", "EXECUTING", "SUCCESSFUL", "FAILED")
LIFECYCLES = ("INACTIVE", "ONLINE", "OFFLINE", "DISABLED")
_TENANT_ADMIN = "ROLE_TENANT_ADMIN"
_INVENTORY = "ROLE_INVENTORY_READ to read, ROLE_INVENTORY_ADMIN to change"
_REQUESTS = "ROLE_DEVICE_CONTROL_READ to read, ROLE_DEVICE_CONTROL_ADMIN to change"
_USERS = "ROLE_USER_MANAGEMENT_READ to read, ROLE_USER_MANAGEMENT_ADMIN to change"
_OPERATIONS = _REQUESTS
_OPERATION_COLUMNS = (
    ("ID", "id"),
    ("DEVICE", "deviceId"),
    ("COMMAND", "command"),
    ("STATUS", "status"),
    ("CREATED", "creationTime"),
    ("FAILURE", "failureReason"),
)
_CERT_COLUMNS = (
    ("FINGERPRINT", "fingerprint"),
    ("NAME", "name"),
    ("STATUS", "status"),
    ("AUTO-REGISTRATION", "autoRegistrationEnabled"),
    ("SUBJECT", "subject"),
    ("NOT AFTER", "notAfter"),
)
_DEVICE_COLUMNS = (
    ("ID", "id"),
    ("NAME", "name"),
    ("TYPE", "type"),
    ("LIFECYCLE", "fleetgate_Lifecycle.status"),
    ("REASON", "fleetgate_Lifecycle.reason"),
)


def page_size(value: str) -> int:
    try:
        size = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {value!r}") from None
    if not 1 <= size <= 2000:
        raise argparse.ArgumentTypeError("between 1 and 2000")
    return size


def common_flags(parser: argparse.ArgumentParser, tenant_user: Callable[[str], str]) -> None:
    """Where the API is and who we are there, and ``--json`` (before the action)."""
    parser.add_argument("--stack", type=Path, default=DEFAULT_STACK, help="stack file of `up`")
    parser.add_argument("--url", help="REST API address, e.g. http://127.0.0.1:8080")
    parser.add_argument("--user", type=tenant_user, help="tenant/username (with --url)")
    parser.add_argument("--password", help="the user's password (with --url)")
    parser.add_argument("--json", action="store_true", help="print the API's JSON answer")


def _action(
    actions: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    text_: str,
    *,
    json_after: bool = True,
) -> argparse.ArgumentParser:
    action = actions.add_parser(name, help=text_, description=text_)
    if json_after:
        # --json after the action too (SUPPRESS: not given here keeps the one before)
        action.add_argument(
            "--json", action="store_true", default=argparse.SUPPRESS, help="print the JSON answer"
        )
    return action


def _list_action(
    actions: argparse._SubParsersAction[argparse.ArgumentParser],
    text_: str,
    *,
    json_after: bool = True,
) -> argparse.ArgumentParser:
    action = _action(actions, "list", text_, json_after=json_after)
    action.add_argument(
        "--limit", type=page_size, default=100, help="at most this many (1-2000; 100)"
    )
    return action


def add_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    tenant_user: Callable[[str], str],
) -> None:
    certs = commands.add_parser(
        "certs",
        help="trusted CA certificates of the tenant (tenant admin)",
        description="The tenant's trusted certificates: devices whose certificate one of"
        " them issued may connect (and register themselves with --auto-registration).",
    )
    common_flags(certs, tenant_user)
    actions = certs.add_subparsers(dest="certs_command", required=True)
    _list_action(actions, "list the trusted certificates")
    add = _action(actions, "add", "trust a CA certificate (a PEM file)")
    add.add_argument("pem", type=Path, help="the CA certificate, PEM")
    add.add_argument("--name", help="its name (the file's name without .pem)")
    add.add_argument(
        "--auto-registration",
        action="store_true",
        help="devices it issued are created on their first connection",
    )
    add.add_argument("--disabled", action="store_true", help="add it disabled")
    for verb, text_ in (
        ("enable", "enable a trusted certificate"),
        ("disable", "disable one: devices it issued are refused"),
        ("delete", "delete one"),
    ):
        _action(actions, verb, text_).add_argument("fingerprint")

    requests = commands.add_parser(
        "requests",
        help="device registration requests",
        description="New device requests (/devicecontrol/newDeviceRequests): a device that"
        " asks for credentials waits until an operator accepts its request.",
    )
    common_flags(requests, tenant_user)
    actions = requests.add_subparsers(dest="requests_command", required=True)
    _list_action(actions, "list the requests and their status")
    for verb, text_ in (
        ("accept", "accept a request: the device gets its credentials"),
        ("delete", "delete a request"),
    ):
        _action(actions, verb, text_).add_argument("id", metavar="ID")

    users = commands.add_parser(
        "users",
        help="the tenant's operators and their roles",
        description="Users of the tenant (/user/{tenant}/users) and their global roles.",
    )
    common_flags(users, tenant_user)
    actions = users.add_subparsers(dest="users_command", required=True)
    _list_action(actions, "list the users, their state and roles")
    create = _action(actions, "create", "create a user (with roles)")
    create.add_argument("name")
    create.add_argument("--new-password", required=True, help="its password (8-128 chars)")
    create.add_argument("--email")
    create.add_argument("--role", action="append", default=[], help="a role to give (repeatable)")
    _action(actions, "delete", "delete a user").add_argument("name")
    roles = _action(actions, "roles", "show a user's roles, giving or taking some first")
    roles.add_argument("name")
    roles.add_argument("--add", action="append", default=[], metavar="ROLE")
    roles.add_argument("--remove", action="append", default=[], metavar="ROLE")
    add_profile_parser(commands, tenant_user)
    repo = commands.add_parser(
        "repo",
        help="the firmware, software and configuration repositories: list, upload"
        " (with a progress bar)",
        description="The repositories: firmware (managed objects c8y_Firmware, their versions"
        " c8y_FirmwareBinary), software (c8y_Software, versions c8y_SoftwareBinary),"
        " configuration files (c8y_ConfigurationDump); the files in /inventory/binaries.",
    )
    common_flags(repo, tenant_user)
    kinds = repo.add_subparsers(dest="repo_kind", required=True)
    for kind in ("firmware", "software"):
        versioned = kinds.add_parser(kind, help=f"{kind} and its versions")
        actions = versioned.add_subparsers(dest="repo_command", required=True)
        _list_action(actions, f"list the {kind} (id, name, device type, versions)")
        upload = _action(actions, "upload", f"upload a {kind} file as a version of a {kind}")
        upload.add_argument("file", type=Path)
        upload.add_argument("--name", required=True, help=f"the {kind} (created when new)")
        upload.add_argument("--version", required=True, help="this file's version")
        upload.add_argument("--device-type", help=f"for a new {kind}: only this device type")
        if kind == "software":
            upload.add_argument("--software-type", help="for a new software: its softwareType")
    configuration = kinds.add_parser("configuration", help="configuration files")
    actions = configuration.add_subparsers(dest="repo_command", required=True)
    _list_action(actions, "list the configuration files (id, name, types, url)")
    upload = _action(actions, "upload", "upload a configuration file (a new entry)")
    upload.add_argument("file", type=Path)
    upload.add_argument("--name", required=True, help="the entry's name")
    upload.add_argument("--configuration-type", help="its configurationType (e.g. ssh)")
    upload.add_argument("--device-type", help="only for devices of this type")
    upload.add_argument("--description", help="its description")
    credentials = commands.add_parser(
        "credentials",
        help="device credentials in bulk (a CSV file)",
        description="Import device credentials from a CSV file"
        " (/devicecontrol/bulkNewDeviceRequests; columns ID;CREDENTIALS;TYPE;NAME …,"
        " see docs/api.md). A progress bar shows the upload on a terminal.",
    )
    common_flags(credentials, tenant_user)
    actions = credentials.add_subparsers(dest="credentials_command", required=True)
    _action(actions, "import", "import a CSV file of devices and passwords").add_argument(
        "csv", type=Path
    )


def add_profile_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    tenant_user: Callable[[str], str],
) -> None:
    profiles = commands.add_parser(
        "profiles",
        help="device profiles: list, create, apply to a device",
        description="Device profiles (managed objects of type c8y_Profile): firmware,"
        " software and configuration a device installs in one operation.",
    )
    common_flags(profiles, tenant_user)
    actions = profiles.add_subparsers(dest="profiles_command", required=True)
    _list_action(actions, "list the device profiles")
    create = _action(actions, "create", "create a device profile")
    create.add_argument("name")
    create.add_argument("--device-type", help="only for devices of this type (every type)")
    create.add_argument(
        "--content",
        type=Path,
        metavar="JSON_FILE",
        help='its c8y_DeviceProfile: {"firmware": {…}, "software": […], "configuration": […]}'
        " (empty)",
    )
    apply = _action(actions, "apply", "apply a profile to a device (an operation)")
    apply.add_argument("profile", metavar="PROFILE_ID")
    apply.add_argument("--device", metavar="ID", required=True)


def add_device_actions(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``fleetgate devices list|show|enable|disable|delete|children``."""
    listed = _list_action(actions, "list the devices (id, name, type, lifecycle)")
    listed.add_argument("--lifecycle", type=str.upper, choices=LIFECYCLES)
    listed.add_argument("--type", help="only devices of this type")
    for verb, text_ in (
        ("show", "show a device"),
        ("enable", "enable a disabled device (and its children)"),
        ("disable", "disable a device: disconnected and refused, with its children"),
        ("delete", "delete a device"),
        ("children", "list a gateway's child devices"),
    ):
        _action(actions, verb, text_).add_argument("id", metavar="ID")


def add_ops_actions(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    tenant_user: Callable[[str], str],
) -> None:
    """``fleetgate ops list|show|create|cancel`` (each with the API's flags)."""
    # ``ops`` has no flags of its own: each action takes the API's, and --json, itself.
    listed = _list_action(sub, "list operations, the newest first", json_after=False)
    listed.add_argument("--device", metavar="ID", help="only this device's")
    listed.add_argument("--status", type=str.upper, choices=OPERATION_STATUSES)
    listed.add_argument("--bulk", metavar="ID", help="only this bulk operation's")
    show = _action(sub, "show", "show an operation", json_after=False)
    show.add_argument("id", metavar="ID")
    create = _action(sub, "create", "send a device an operation", json_after=False)
    create.add_argument("--device", metavar="ID", required=True)
    command = create.add_mutually_exclusive_group(required=True)
    command.add_argument("--firmware", metavar="NAME,VERSION,URL", help="a c8y_Firmware operation")
    command.add_argument("--body", metavar="JSON", help="the operation's fragments, as JSON")
    create.add_argument("--description", help="its description")
    cancel = _action(
        sub, "cancel", "cancel an open operation (it becomes FAILED)", json_after=False
    )
    cancel.add_argument("id", metavar="ID")
    cancel.add_argument("--reason", help="its failure reason (Failed by an operator)")
    for action in (listed, show, create, cancel):
        common_flags(action, tenant_user)


def operation_body(args: argparse.Namespace) -> dict[str, Any]:
    """The POST body of ``ops create``."""
    if args.firmware is not None:
        parts = args.firmware.split(",", 2)
        if len(parts) != 3 or not all(parts):
            raise ConfigurationError("--firmware takes NAME,VERSION,URL")
        name, version, url = parts
        body: dict[str, Any] = {
            "description": f"Update firmware to {name} {version}",
            "c8y_Firmware": {"name": name, "version": version, "url": url},
        }
    else:
        try:
            body = json.loads(args.body)
        except ValueError as exc:
            raise ConfigurationError(f"--body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise ConfigurationError("--body must be a JSON object")
    if args.description is not None:
        body["description"] = args.description
    return {**body, "deviceId": args.device}


async def ops_action(
    args: argparse.Namespace,
    endpoint: Endpoint,
    out: TextIO | None = None,
    client: httpx.AsyncClient | None = None,
) -> None:
    """One of :data:`OPS_ACTIONS` (``fleetgate ops …``; ``client``: one already open)."""
    from fleetgate.watch.client import open_client

    if client is None:
        async with open_client(endpoint) as opened:
            await _ops(args, Api(opened, ""), out or sys.stdout)
    else:
        await _ops(args, Api(client, ""), out or sys.stdout)


async def _ops(args: argparse.Namespace, api: Api, out: TextIO) -> None:
    from fleetgate.watch.table import command_fragment

    path = "/devicecontrol/operations"
    verb = args.ops_command
    if verb == "list":
        params = {"pageSize": str(args.limit), "revert": "true"}
        for key, value in (
            ("deviceId", args.device),
            ("status", args.status),
            ("bulkOperationId", args.bulk),
        ):
            if value:
                params[key] = value
        body = await api.call("GET", path, _OPERATIONS, params=params)
        ops = [{**op, "command": command_fragment(op)} for op in _items(body, "operations")]
        if args.json:
            print(json.dumps(body, indent=2), file=out)
            return
        _print_list(args, out, {"operations": ops}, "operations", _OPERATION_COLUMNS)
        return
    if verb == "create":
        made = await api.call("POST", path, _OPERATIONS, operation_body(args))
        line = f"operation {made.get('id')}: {made.get('status')} ({command_fragment(made)})"
        _state(args, out, made, line)
        return
    where = f"{path}/{_segment(args.id)}"
    if verb == "show":
        _print_object(args, out, await api.call("GET", where, _OPERATIONS))
        return
    change: dict[str, Any] = {"status": "FAILED"}
    if args.reason:
        change["failureReason"] = args.reason
    failed = await api.call("PUT", where, _OPERATIONS, change)
    line = f"operation {args.id}: {failed.get('status')} ({failed.get('failureReason')})"
    _state(args, out, failed, line)


async def manage_command(
    args: argparse.Namespace,
    endpoint: Endpoint,
    client: httpx.AsyncClient | None = None,
    out: TextIO | None = None,
) -> None:
    """Run one ``certs``/``requests``/``users`` action (``client``: one already open)."""
    from fleetgate.watch.client import open_client

    act = {
        "certs": _certs,
        "requests": _requests,
        "users": _users,
        "profiles": _profiles,
        "credentials": _credentials,
        "repo": _repo,
    }[args.command]
    tenant = endpoint.user.partition("/")[0]
    if client is None:
        async with open_client(endpoint) as opened:
            await act(args, Api(opened, tenant), out or sys.stdout)
    else:
        await act(args, Api(client, tenant), out or sys.stdout)


async def device_action(args: argparse.Namespace, client: httpx.AsyncClient, out: TextIO) -> None:
    """One of :data:`DEVICE_ACTIONS` (``fleetgate devices …``)."""
    api = Api(client, "")
    verb, path = args.devices_command, "/inventory/managedObjects"
    if verb == "list":
        params = {"fragmentType": "c8y_IsDevice", "pageSize": str(args.limit)}
        if args.lifecycle:
            params["lifecycleStatus"] = args.lifecycle
        if args.type:
            params["type"] = args.type
        body = await api.call("GET", path, _INVENTORY, params=params)
        _print_list(args, out, body, "managedObjects", _DEVICE_COLUMNS)
        return
    where = f"{path}/{_segment(args.id)}"
    if verb == "children":
        body = await api.call(
            "GET", f"{where}/childDevices", _INVENTORY, params={"pageSize": "2000"}
        )
        children = [ref.get("managedObject", {}) for ref in _items(body, "references")]
        _print_list(args, out, {**body, "references": children}, "references", _DEVICE_COLUMNS)
        return
    if verb == "delete":
        await api.call("DELETE", where, _INVENTORY)
        _done(args, out, f"deleted device {args.id}")
        return
    if verb == "show":
        _print_object(args, out, await api.call("GET", where, _INVENTORY))
        return
    body = await api.call("POST", f"{where}/{verb}", _INVENTORY)
    _state(args, out, body, f"device {args.id}: {text(pick(body, 'fleetgate_Lifecycle.status'))}")


class Api:
    """The checked requests of one command; ``tenant``: the user's, for tenant paths."""

    def __init__(self, client: httpx.AsyncClient, tenant: str) -> None:
        self.client = client
        self.tenant = tenant

    async def call(
        self,
        method: str,
        path: str,
        roles: str,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        from fleetgate.watch.client import api_request

        answer = await api_request(self.client, method, path, body, roles=roles, params=params)
        return answer or {}


async def _certs(args: argparse.Namespace, api: Api, out: TextIO) -> None:
    path = f"/tenant/tenants/{_segment(api.tenant)}/trusted-certificates"
    verb = args.certs_command
    if verb == "list":
        body = await api.call("GET", path, _TENANT_ADMIN, params={"pageSize": str(args.limit)})
        _print_list(args, out, body, "certificates", _CERT_COLUMNS)
        return
    if verb == "add":
        try:
            pem = args.pem.read_text("ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"cannot read {args.pem}: {exc}") from None
        cert = {
            "name": args.name or args.pem.stem,
            "certInPemFormat": pem,
            "status": "DISABLED" if args.disabled else "ENABLED",
            "autoRegistrationEnabled": args.auto_registration,
        }
        made = await api.call("POST", path, _TENANT_ADMIN, cert)
        _state(args, out, made, f"trusted {made.get('fingerprint')} ({made.get('subject')})")
        return
    where = f"{path}/{_segment(args.fingerprint)}"
    if verb == "delete":
        await api.call("DELETE", where, _TENANT_ADMIN)
        _done(args, out, f"deleted certificate {args.fingerprint}")
        return
    status = "ENABLED" if verb == "enable" else "DISABLED"
    changed = await api.call("PUT", where, _TENANT_ADMIN, {"status": status})
    _state(args, out, changed, f"certificate {args.fingerprint}: {changed.get('status')}")


async def _requests(args: argparse.Namespace, api: Api, out: TextIO) -> None:
    path = "/devicecontrol/newDeviceRequests"
    verb = args.requests_command
    if verb == "list":
        body = await api.call("GET", path, _REQUESTS, params={"pageSize": str(args.limit)})
        _print_list(args, out, body, "newDeviceRequests", (("ID", "id"), ("STATUS", "status")))
        return
    where = f"{path}/{_segment(args.id)}"
    if verb == "delete":
        await api.call("DELETE", where, _REQUESTS)
        _done(args, out, f"deleted request {args.id}")
        return
    accepted = await api.call("PUT", where, _REQUESTS, {"status": "ACCEPTED"})
    _state(args, out, accepted, f"request {args.id}: {accepted.get('status')}")


async def _users(args: argparse.Namespace, api: Api, out: TextIO) -> None:
    path = f"/user/{_segment(api.tenant)}/users"
    verb = args.users_command
    if verb == "list":
        body = await api.call("GET", path, _USERS, params={"pageSize": str(args.limit)})
        users = [{**user, "roles": " ".join(_role_names(user))} for user in _items(body, "users")]
        columns = (("USER", "userName"), ("ENABLED", "enabled"), ("EMAIL", "email"))
        _print_list(args, out, {**body, "users": users}, "users", (*columns, ("ROLES", "roles")))
        return
    where = f"{path}/{_segment(args.name)}"
    if verb == "delete":
        await api.call("DELETE", where, _USERS)
        _done(args, out, f"deleted user {args.name}")
        return
    if verb == "create":
        user = {"userName": args.name, "password": args.new_password}
        if args.email:
            user["email"] = args.email
        await api.call("POST", path, _USERS, user)
        adding, removing = args.role, []
    else:
        adding, removing = args.add, args.remove
    for role in adding:
        await api.call("POST", f"{where}/roles", _USERS, {"role": {"id": role}})
    for role in removing:
        await api.call("DELETE", f"{where}/roles/{_segment(role)}", _USERS)
    shown = await api.call("GET", where, _USERS)
    _state(args, out, shown, f"user {args.name}: {' '.join(_role_names(shown)) or 'no roles'}")


async def _profiles(args: argparse.Namespace, api: Api, out: TextIO) -> None:
    path = "/inventory/managedObjects"
    verb = args.profiles_command
    if verb == "list":
        params = {"type": "c8y_Profile", "pageSize": str(args.limit)}
        body = await api.call("GET", path, _INVENTORY, params=params)
        columns = (("ID", "id"), ("NAME", "name"), ("DEVICE TYPE", "c8y_Filter.type"))
        _print_list(args, out, body, "managedObjects", columns)
        return
    if verb == "create":
        profile = {
            "name": args.name,
            "type": "c8y_Profile",
            "c8y_Filter": {"type": args.device_type} if args.device_type else {},
            "c8y_DeviceProfile": _content(args.content),
        }
        made = await api.call("POST", path, _INVENTORY, profile)
        _state(args, out, made, f"profile {made.get('id')}: {made.get('name')}")
        return
    profile = await api.call("GET", f"{path}/{_segment(args.profile)}", _INVENTORY)
    if profile.get("type") != "c8y_Profile":
        raise NotFound(f"{args.profile} is not a device profile")
    name = text(profile.get("name"))
    operation = {
        "deviceId": args.device,
        "profileId": str(profile.get("id")),
        "profileName": name,
        "description": f"Assign device profile {name} to device",
        "c8y_DeviceProfile": profile.get("c8y_DeviceProfile", {}),
    }
    made = await api.call("POST", "/devicecontrol/operations", _OPERATIONS, operation)
    line = f"operation {made.get('id')}: {made.get('status')} (profile {name} on {args.device})"
    _state(args, out, made, line)


_REPO_VERSIONED = {
    # kind: (managed object type, version type, version fragment)
    "firmware": ("c8y_Firmware", "c8y_FirmwareBinary", "c8y_Firmware"),
    "software": ("c8y_Software", "c8y_SoftwareBinary", "c8y_Software"),
}
_CONFIGURATION_COLUMNS = (
    ("ID", "id"),
    ("NAME", "name"),
    ("CONFIGURATION TYPE", "configurationType"),
    ("DEVICE TYPE", "deviceType"),
    ("URL", "url"),
)


async def _repo(args: argparse.Namespace, api: Api, out: TextIO) -> None:
    path = "/inventory/managedObjects"
    kind = args.repo_kind
    if kind == "configuration":
        await _configuration_repo(args, api, out)
        return
    object_type, version_type, fragment = _REPO_VERSIONED[kind]
    params = {"type": object_type, "pageSize": str(getattr(args, "limit", 2000))}
    if args.repo_command == "list":
        body = await api.call("GET", path, _INVENTORY, params=params)
        entries = []
        for item in _items(body, "managedObjects"):
            children = await api.call(
                "GET",
                f"{path}/{_segment(str(item.get('id')))}/childAdditions",
                _INVENTORY,
                params={"pageSize": "2000"},
            )
            versions = [
                text(pick(ref, f"managedObject.{fragment}.version"))
                for ref in _items(children, "references")
            ]
            entries.append({**item, "versions": " ".join(v for v in versions if v)})
        columns = (
            ("ID", "id"),
            ("NAME", "name"),
            ("DEVICE TYPE", "c8y_Filter.type"),
            ("VERSIONS", "versions"),
        )
        if args.json:
            print(json.dumps({**body, "managedObjects": entries}, indent=2), file=out)
            return
        _print_list(args, out, {"managedObjects": entries}, "managedObjects", columns)
        return
    binary, size = await _upload_binary(args, api)
    found = await api.call("GET", path, _INVENTORY, params=params)
    named = [item for item in _items(found, "managedObjects") if item.get("name") == args.name]
    if named:
        entry_id = str(named[0]["id"])
    else:
        new: dict[str, Any] = {
            "type": object_type,
            "name": args.name,
            "c8y_Filter": {"type": args.device_type} if args.device_type else {},
        }
        if getattr(args, "software_type", None):
            new["softwareType"] = args.software_type
        entry_id = str((await api.call("POST", path, _INVENTORY, new))["id"])
    version = {
        "type": version_type,
        "name": args.name,
        fragment: {"version": args.version, "url": binary.get("self")},
    }
    reference = await api.call(
        "POST", f"{path}/{_segment(entry_id)}/childAdditions", _INVENTORY, version
    )
    line = (
        f"{kind} {args.name} {args.version}: {kind} {entry_id},"
        f" version {pick(reference, 'managedObject.id')}, binary {binary.get('id')}"
        f" ({size} bytes)"
    )
    _state(args, out, {"binary": binary, f"{kind}Id": entry_id, **reference}, line)


async def _configuration_repo(args: argparse.Namespace, api: Api, out: TextIO) -> None:
    """``repo configuration list|upload``: one c8y_ConfigurationDump per file, no versions."""
    path = "/inventory/managedObjects"
    if args.repo_command == "list":
        params = {"type": "c8y_ConfigurationDump", "pageSize": str(args.limit)}
        body = await api.call("GET", path, _INVENTORY, params=params)
        _print_list(args, out, body, "managedObjects", _CONFIGURATION_COLUMNS)
        return
    binary, size = await _upload_binary(args, api)
    entry: dict[str, Any] = {
        "type": "c8y_ConfigurationDump",
        "name": args.name,
        "url": binary.get("self"),
    }
    for key, value in (
        ("configurationType", args.configuration_type),
        ("deviceType", args.device_type),
        ("description", args.description),
    ):
        if value:
            entry[key] = value
    made = await api.call("POST", path, _INVENTORY, entry)
    line = (
        f"configuration {args.name}: entry {made.get('id')}, binary {binary.get('id')}"
        f" ({size} bytes)"
    )
    _state(args, out, {"binary": binary, "managedObject": made}, line)


async def _upload_binary(args: argparse.Namespace, api: Api) -> tuple[dict[str, Any], int]:
    """``args.file`` streamed to /inventory/binaries (a bar on a terminal); its size."""
    from fleetgate.watch.client import upload_request
    from fleetgate.watch.upload import MultipartFile, terminal_progress

    try:
        upload = MultipartFile(args.file, on_progress=terminal_progress(sys.stderr, "uploading"))
    except OSError as exc:
        raise ConfigurationError(f"cannot read {args.file}: {exc.strerror}") from None
    binary = await upload_request(
        api.client,
        "/inventory/binaries",
        upload.chunks(),
        content_type=upload.content_type,
        length=upload.length,
        roles="ROLE_INVENTORY_ADMIN",
    )
    return binary, upload.size


async def _credentials(args: argparse.Namespace, api: Api, out: TextIO) -> None:
    from fleetgate.watch.client import upload_request
    from fleetgate.watch.upload import MultipartFile, terminal_progress

    try:
        upload = MultipartFile(args.csv, on_progress=terminal_progress(sys.stderr, "uploading"))
    except OSError as exc:
        raise ConfigurationError(f"cannot read {args.csv}: {exc.strerror}") from None
    result = await upload_request(
        api.client,
        "/devicecontrol/bulkNewDeviceRequests",
        upload.chunks(),
        content_type=upload.content_type,
        length=upload.length,
        roles="ROLE_DEVICE_CONTROL_ADMIN",
    )
    if args.json:
        print(json.dumps(result, indent=2), file=out)
    else:
        updated = result.get("credentialUpdatedList") or []
        print(
            f"{result.get('numberOfAll')} devices: {result.get('numberOfCreated')} created,"
            f" {len(updated)} credentials updated, {result.get('numberOfFailed')} failed",
            file=out,
        )
        for failure in result.get("failedCreationList") or []:
            if isinstance(failure, dict):
                line, reason = text(failure.get("line")), text(failure.get("failureReason"))
                print(f"  {line}: {reason}", file=out)
    failed_rows = result.get("numberOfFailed")
    if isinstance(failed_rows, int) and failed_rows > 0:
        # The report is printed first; the status tells a script that rows are missing.
        raise PartlyFailed(f"{failed_rows} of {result.get('numberOfAll')} rows failed")


def _content(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        content = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read {path}: {exc}") from None
    if not isinstance(content, dict):
        raise ConfigurationError(f"{path}: a profile's content is a JSON object")
    return content


_BULK_COLUMNS = (
    ("ID", "id"),
    ("GROUP", "groupId"),
    ("COMMAND", "command"),
    ("STATUS", "generalStatus"),
    ("STATE", "fleetgate_RolloutStatus.state"),
    ("TARGETS", "fleetgate_RolloutStatus.targets"),
    ("PENDING", "progress.pending"),
    ("EXECUTING", "progress.executing"),
    ("SUCCESSFUL", "progress.successful"),
    ("FAILED", "progress.failed"),
)


async def bulk_list(args: argparse.Namespace, client: httpx.AsyncClient, out: TextIO) -> None:
    """``fleetgate ops bulk list``: the bulk operations, their state and progress."""
    from fleetgate.watch.table import command_fragment

    api = Api(client, "")
    params = {"pageSize": str(args.limit)}
    body = await api.call("GET", "/devicecontrol/bulkoperations", _OPERATIONS, params=params)
    if args.json:
        print(json.dumps(body, indent=2), file=out)
        return
    bulks = [
        {**bulk, "command": command_fragment(pick(bulk, "operationPrototype") or {})}
        for bulk in _items(body, "bulkOperations")
    ]
    _print_list(args, out, {"bulkOperations": bulks}, "bulkOperations", _BULK_COLUMNS)


def _role_names(user: Mapping[str, Any]) -> list[str]:
    roles = user.get("effectiveRoles")
    if not isinstance(roles, list):
        return []
    return [str(role["id"]) for role in roles if isinstance(role, dict) and "id" in role]


def _segment(value: str) -> str:
    """``value`` as one path segment (a ``/`` or ``?`` in an id cannot change the path)."""
    return quote(value, safe="")


def _items(body: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    items = body.get(key)
    if not isinstance(items, list):
        raise FleetgateError(f"the answer has no {key} list")
    return [item for item in items if isinstance(item, dict)]


def _print_list(
    args: argparse.Namespace,
    out: TextIO,
    body: dict[str, Any],
    key: str,
    columns: Sequence[tuple[str, str]],
) -> None:
    items = _items(body, key)
    if args.json:
        print(json.dumps(body, indent=2), file=out)
        return
    rows = [[text(pick(item, field)) for _, field in columns] for item in items]
    for line in format_table([header for header, _ in columns], rows):
        print(line, file=out)


def _print_object(args: argparse.Namespace, out: TextIO, body: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(body, indent=2), file=out)
        return
    rows = [
        [key, value if not isinstance(value, dict | list) else json.dumps(value)]
        for key, value in body.items()
        if key != "self"
    ]
    for line in format_table(["FIELD", "VALUE"], rows):
        print(line, file=out)


def _state(args: argparse.Namespace, out: TextIO, body: dict[str, Any], line: str) -> None:
    print(json.dumps(body, indent=2) if args.json else line, file=out)


def _done(args: argparse.Namespace, out: TextIO, line: str) -> None:
    """What a DELETE (no answer) says: ``{}`` for scripts, a sentence for people."""
    print("{}" if args.json else line, file=out)
