"""Small process helpers shared by the embedded PostgreSQL and mosquitto runners.

The servers of ``fleetgate up`` are tethered to it: each is started through a small
wrapper (:mod:`fleetgate.stack.tether`) that takes the server's account and sets its
*parent-death signal* just before exec, so that the kernel stops the server when ``up``
dies, even by SIGKILL. What escapes anyway (a stack of an older version) is found again by
its recorded pid and stopped by the next ``up``: :func:`stop_recorded`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import pwd
import secrets
import signal
import socket
import stat
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fleetgate.domain.errors import ConfigurationError

log = logging.getLogger(__name__)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when ``host:port`` can be bound (every address ``host`` resolves to)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigurationError(f"cannot resolve bind address {host!r}: {exc}") from None
    for family, kind, proto, _, sockaddr in infos:
        with socket.socket(family, kind, proto) as probe:
            # Our servers set SO_REUSEADDR too: TIME_WAIT leftovers do not count as busy.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(sockaddr)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return False
                raise ConfigurationError(f"cannot bind {host}:{port}: {exc}") from None
    return True


def require_free_ports(ports: dict[str, tuple[str, int]]) -> None:
    """Raise one clear error naming every busy or doubly used port (name → (host, port))."""
    seen: dict[int, str] = {}
    for name, (_, port) in ports.items():
        if port in seen:
            raise ConfigurationError(f"port {port} is used by both {seen[port]} and {name}")
        seen[port] = name
    busy = [
        f"port {port} ({name}) is already in use"
        for name, (host, port) in ports.items()
        if not port_is_free(port, host)
    ]
    if busy:
        raise ConfigurationError(
            "; ".join(busy) + " — stop what holds it or choose another port"
            " (see `fleetgate up --help`)"
        )


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


#: ``<first>-<last>``: where :func:`pick_free_ports` chooses (default: from 20000 up to the
#: ephemeral range). Parallel test workers each get a range of their own, so that a port one
#: of them chose and has not bound yet is never chosen by another (children inherit it).
PORT_RANGE_ENV = "FLEETGATE_PORT_RANGE"


def _port_range(count: int) -> tuple[int, int]:
    configured = os.environ.get(PORT_RANGE_ENV, "")
    if configured:
        first, sep, last = configured.partition("-")
        if not (
            sep and first.isdigit() and last.isdigit() and 1024 <= int(first) < int(last) < 65536
        ):
            raise ConfigurationError(f"{PORT_RANGE_ENV} must be <first>-<last>: {configured!r}")
        return int(first), int(last) + 1
    low, _ = _ephemeral_range()
    return 20000, max(20000 + 4 * count + 1000, low)


def pick_free_ports(count: int) -> list[int]:
    """``count`` distinct ports free right now, for tests, benchmarks and scripts.

    Chosen below the kernel's ephemeral range: a port from that range can be taken by any
    outgoing connection (a thousand simulated devices make a thousand) between choosing
    it and binding it. All are held at once while chosen, so none repeats. Only inside
    :data:`PORT_RANGE_ENV` when it is set.
    """
    start, stop = _port_range(count)
    rng = secrets.SystemRandom()
    chosen: list[int] = []
    with contextlib.ExitStack() as held:
        for port in rng.sample(range(start, stop), stop - start):
            sock = held.enter_context(socket.socket())
            try:
                sock.bind(("0.0.0.0", port))
            except OSError:
                continue
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise ConfigurationError(f"no {count} free ports between {start} and {stop}")


@dataclass(frozen=True, slots=True)
class RunAs:
    """The unprivileged account a child runs as when we are root (None: as ourselves)."""

    user: str | None
    uid: int
    gid: int

    @classmethod
    def for_service(cls, account: str, package: str) -> RunAs:
        if os.geteuid() != 0:
            return cls(None, os.getuid(), os.getgid())
        try:
            entry = pwd.getpwnam(account)
        except KeyError:
            raise ConfigurationError(
                f"running as root, but the system user {account!r} does not exist:"
                f" install the Debian package {package!r}"
            ) from None
        return cls(account, entry.pw_uid, entry.pw_gid)

    def chown(self, path: Path) -> None:
        if self.user is not None:
            os.chown(path, self.uid, self.gid)


def check_traversable(path: Path, run_as: RunAs) -> None:
    """Every ancestor of ``path`` must be searchable by ``run_as``, or the child cannot start."""
    if run_as.user is None:
        return
    for parent in reversed(path.resolve().parents):
        mode = parent.stat()
        if mode.st_uid == run_as.uid or mode.st_mode & stat.S_IXOTH:
            continue
        if mode.st_gid == run_as.gid and mode.st_mode & stat.S_IXGRP:
            continue
        raise ConfigurationError(
            f"{parent} is not searchable by the {run_as.user!r} user that must run a server"
            f" below it; choose a home outside it or `chmod o+x {parent}`"
        )


_TETHER = Path(__file__).with_name("tether.py")


def tethered(argv: Sequence[str], run_as: RunAs, death_signal: signal.Signals) -> list[str]:
    """The command line that runs ``argv`` as ``run_as`` and has the kernel send it
    ``death_signal`` when this process dies (see :mod:`fleetgate.stack.tether`).

    Start it from a thread that lives as long as the child: the kernel sends the signal
    when the *thread* that forked ends (the event loop's thread, for ``up``). A server that
    drops root by itself loses the signal (changing credentials clears it): start it as
    its account instead, with ``run_as``.
    """
    tether = [sys.executable, "-I", "-S", str(_TETHER), str(os.getpid())]
    return [*tether, str(int(death_signal)), run_as.user or "-", "--", *argv]


def running_program(pid: int, program: str, argument: str) -> bool:
    """True when ``pid`` is a live process (not a zombie) of ``program`` (the file name of
    its ``argv[0]``) with ``argument`` among its arguments. A pid read from a file may
    belong to anything by now: signal only what this confirms."""
    proc = Path(f"/proc/{pid}")
    try:
        argv = (proc / "cmdline").read_bytes().split(b"\0")
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    if state in ("Z", "X"):
        return False
    return Path(os.fsdecode(argv[0])).name == program and os.fsencode(argument) in argv[1:]


def recorded_pid(pid_file: Path) -> int | None:
    """The pid on the first line of ``pid_file`` (PostgreSQL's ``postmaster.pid`` has it
    there too), or None."""
    try:
        return int(pid_file.read_text().split("\n", 1)[0].strip())
    except (OSError, ValueError):
        return None


async def stop_recorded(
    pid_file: Path,
    program: str,
    argument: str,
    stop_signal: signal.Signals,
    *,
    timeout: float = 30.0,
) -> int | None:
    """Stop the ``program`` recorded in ``pid_file`` when it still runs with ``argument``
    (a server left behind by an ``up`` that died): ``stop_signal``, then SIGKILL after
    ``timeout``. Returns its pid, or None when nothing of it was running."""
    pid = recorded_pid(pid_file)
    if pid is None or not running_program(pid, program, argument):
        return None
    log.warning(
        "stopping %s (pid %d) left running by an earlier `fleetgate up` (%s)",
        program,
        pid,
        argument,
    )
    for sig, wait in ((stop_signal, timeout), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = asyncio.get_running_loop().time() + wait
        while asyncio.get_running_loop().time() < deadline:
            if not running_program(pid, program, argument):
                return pid
            await asyncio.sleep(0.05)
    raise ConfigurationError(f"{program} (pid {pid}) left by an earlier run does not stop")
