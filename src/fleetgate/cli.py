"""The ``fleetgate`` command: ``up`` (embedded stack), ``serve`` (production), ``simulate``
(simulated devices), ``ops watch`` (operations live), ``devices`` (devices, and batch
updates from a template), ``certs``, ``requests``, ``users`` and ``tenants`` (tenant
management).

Exit statuses: 0 done, 1 refused otherwise, 2 usage, 3 not found, 4 not allowed,
5 conflict, 6 unavailable (:mod:`fleetgate.watch.text_table`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from fleetgate import __version__
from fleetgate.admin import add_parser as add_tenants_parser
from fleetgate.config import Settings
from fleetgate.device.simulate_command import add_parser as add_simulate_parser
from fleetgate.domain.errors import FleetgateError
from fleetgate.log_format import configure_logging
from fleetgate.watch import add_parser as add_ops_parser
from fleetgate.watch.command import tenant_user
from fleetgate.watch.devices_command import add_parser as add_devices_parser
from fleetgate.watch.manage_command import COMMANDS as MANAGE_COMMANDS
from fleetgate.watch.manage_command import add_parsers as add_manage_parsers
from fleetgate.watch.trace_command import add_trace_parser

log = logging.getLogger("fleetgate")

# flag → (settings section, field)
_PORT_FLAGS = {
    "api_port": ("api", "port"),
    "mqtt_cert_port": ("mqtt", "cert_port"),
    "mqtt_password_port": ("mqtt", "password_port"),
    "mqtt_service_port": ("mqtt", "service_port"),
    "postgres_port": ("stack", "postgres_port"),
}
#: The port options of ``up`` as typed (``api-port`` …), for scripts, tests and benchmarks.
UP_PORT_OPTIONS = tuple(flag.replace("_", "-") for flag in _PORT_FLAGS)
_OTHER_FLAGS = {
    "home": ("stack", "home"),
    "certs_dir": ("stack", "certs_dir"),
    "api_host": ("api", "host"),
    "bind_address": ("mqtt", "bind_address"),
    "public_host": ("mqtt", "public_host"),
    "instances": ("stack", "instances"),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fleetgate", description=__doc__)
    parser.add_argument("--version", action="version", version=f"fleetgate {__version__}")
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING … (env FLEETGATE_LOG_LEVEL)")
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        help="text lines, or one JSON object a line (env FLEETGATE_LOG_FORMAT)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser(
        "up",
        help="run the whole stack with embedded defaults (PostgreSQL, mosquitto, service)",
        description="Start a private PostgreSQL cluster and mosquitto with fleetgate's plugin,"
        " then the service; Ctrl-C or SIGTERM stops them all. Every setting can also be given"
        " as an environment variable (shown in brackets).",
    )
    up.add_argument("--home", type=Path, help="state directory [FLEETGATE_STACK_HOME] (.fleetgate)")
    up.add_argument(
        "--certs-dir", type=Path, help="development PKI [FLEETGATE_STACK_CERTS_DIR] (certs)"
    )
    up.add_argument("--api-host", help="REST API address [FLEETGATE_API_HOST] (127.0.0.1)")
    up.add_argument("--api-port", type=int, help="REST API port [FLEETGATE_API_PORT] (8080)")
    up.add_argument(
        "--mqtt-cert-port",
        type=int,
        help="TLS listener, client certificates [FLEETGATE_MQTT_CERT_PORT] (8883)",
    )
    up.add_argument(
        "--mqtt-password-port",
        type=int,
        help="TLS listener, username/password [FLEETGATE_MQTT_PASSWORD_PORT] (8884)",
    )
    up.add_argument(
        "--mqtt-service-port",
        type=int,
        help="loopback listener for the service [FLEETGATE_MQTT_SERVICE_PORT] (18830)",
    )
    up.add_argument(
        "--postgres-port",
        type=int,
        help="private PostgreSQL port [FLEETGATE_STACK_POSTGRES_PORT] (15432)",
    )
    up.add_argument(
        "--instances",
        type=int,
        help="service processes, on API ports --api-port, --api-port + 1 …"
        " [FLEETGATE_STACK_INSTANCES] (1)",
    )
    up.add_argument(
        "--bind-address", help="device listeners' address [FLEETGATE_MQTT_BIND_ADDRESS] (0.0.0.0)"
    )
    up.add_argument(
        "--public-host", help="host name devices use [FLEETGATE_MQTT_PUBLIC_HOST] (localhost)"
    )

    commands.add_parser(
        "serve",
        help="run the service against an external PostgreSQL and mosquitto",
        description="Production mode: FLEETGATE_DATABASE_URL, FLEETGATE_MQTT_* and"
        " FLEETGATE_SEED_* configure it (see README, configuration reference).",
    )
    hasher = commands.add_parser(
        "hash-password",
        help="print (or write) the scrypt hash of a password, for the broker plugin",
        description="Reads the password from FLEETGATE_MQTT_SERVICE_PASSWORD, or from the"
        " first line of standard input when that is unset. Used by docker-compose to give"
        " mosquitto the hash of the service account's password.",
    )
    hasher.add_argument("--output", type=Path, help="write the hash to this file (mode 0640)")
    add_ops_parser(commands)
    add_devices_parser(commands, tenant_user)
    add_manage_parsers(commands, tenant_user)
    add_trace_parser(commands)
    add_simulate_parser(commands)
    add_tenants_parser(commands)
    return parser


def hash_password_command(output: Path | None) -> int:
    import os

    from fleetgate.domain.passwords import hash_password

    password = os.environ.get("FLEETGATE_MQTT_SERVICE_PASSWORD") or sys.stdin.readline().rstrip(
        "\n"
    )
    if not password:
        print("fleetgate: error: no password given", file=sys.stderr)
        return 2
    hashed = hash_password(password)
    if output is None:
        print(hashed)
        return 0
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(hashed + "\n", encoding="ascii")
    output.chmod(0o640)
    return 0


def settings_from(args: argparse.Namespace) -> Settings:
    """The environment's settings with the command-line flags laid over them."""
    settings = Settings()
    updates: dict[str, dict[str, Any]] = {}
    for flag, (section, field) in {**_PORT_FLAGS, **_OTHER_FLAGS}.items():
        value = getattr(args, flag, None)
        if value is not None:
            updates.setdefault(section, {})[field] = value
    if args.log_level:
        settings = settings.model_copy(update={"log_level": args.log_level})
    if args.log_format:
        settings = settings.model_copy(update={"log_format": args.log_format})
    for section, fields in updates.items():
        current = getattr(settings, section)
        merged = type(current).model_validate({**current.model_dump(), **fields})
        settings = settings.model_copy(update={section: merged})
    return settings


def _run(main: Coroutine[Any, Any, None]) -> int:
    """Run ``main``; SIGINT and SIGTERM cancel it, so every ``finally`` gets to clean up."""

    async def guarded() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        await main

    try:
        asyncio.run(guarded())
    except asyncio.CancelledError:
        log.info("stopped")
    except (FleetgateError, BaseExceptionGroup) as exc:
        errors = _fleetgate_errors(exc)
        if errors is None:
            raise
        from fleetgate.watch.text_table import exit_status

        for error in errors:
            print(f"fleetgate: error: {error}", file=sys.stderr)
        return exit_status(errors[0])
    return 0


def _fleetgate_errors(exc: BaseException) -> list[FleetgateError] | None:
    """The FleetgateErrors inside ``exc`` (flattening task groups); None if anything else."""
    if isinstance(exc, FleetgateError):
        return [exc]
    if isinstance(exc, BaseExceptionGroup):
        found: list[FleetgateError] = []
        for inner in exc.exceptions:
            errors = _fleetgate_errors(inner)
            if errors is None:
                return None
            found.extend(errors)
        return found
    return None


async def _endpoint_then(
    args: argparse.Namespace,
    endpoint_from: Callable[[argparse.Namespace], Any],
    command: Callable[[argparse.Namespace, Any], Coroutine[Any, Any, None]],
) -> None:
    """Resolve the endpoint inside the run, so that its errors print as fleetgate's."""
    await command(args, endpoint_from(args))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = settings_from(args)
    except ValueError as exc:
        print(f"fleetgate: error: invalid settings: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    if args.command == "hash-password":
        return hash_password_command(args.output)
    if args.command == "simulate":
        from fleetgate.device.simulate_command import simulate_command

        return _run(simulate_command(args))
    if args.command == "ops":
        from fleetgate.watch import watch_command

        if logging.getLogger().level > logging.DEBUG:
            # An operator's command: no line per HTTP request unless debugging.
            logging.getLogger("httpx").setLevel(logging.WARNING)

        return _run(watch_command(args))
    if args.command == "tenants":
        from fleetgate.admin import tenants_command

        logging.getLogger("httpx").setLevel(logging.WARNING)
        return _run(tenants_command(args))
    if args.command == "devices":
        from fleetgate.watch.command import endpoint_from
        from fleetgate.watch.devices_command import devices_command

        logging.getLogger("httpx").setLevel(logging.WARNING)
        return _run(_endpoint_then(args, endpoint_from, devices_command))
    if args.command in MANAGE_COMMANDS:
        from fleetgate.watch.command import endpoint_from
        from fleetgate.watch.manage_command import manage_command

        logging.getLogger("httpx").setLevel(logging.WARNING)
        return _run(_endpoint_then(args, endpoint_from, manage_command))
    if args.command == "trace":
        from fleetgate.watch.trace_command import trace_command

        logging.getLogger("httpx").setLevel(logging.WARNING)
        return _run(trace_command(args))
    if args.command == "up":
        from fleetgate.up import run_stack

        return _run(run_stack(settings))
    from fleetgate.app import run_service

    return _run(run_service(settings))


if __name__ == "__main__":
    sys.exit(main())
