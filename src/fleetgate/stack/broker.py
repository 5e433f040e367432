"""Running mosquitto with the fleetgate plugin for the embedded stack and the tests.

:func:`render_config` fills ``broker/mosquitto.conf.template`` from a
:class:`BrokerConfig`, and :class:`MosquittoProcess` runs the broker as a child process
whose log goes to the ``fleetgate.broker`` logger. When we are root it runs as the
``mosquitto`` user from the start (rather than dropping root by itself, which would clear
its parent-death signal: see :func:`fleetgate.stack.processes.tethered`), so every file
it reads must be readable by that user; ``start()`` checks this before spawning, to fail
with a clear message instead of a broker that cannot open its key. Its pid is recorded in
``<run_dir>/mosquitto.pid`` while it runs, so that a broker left behind by a process
that died can be found and stopped (:meth:`MosquittoProcess.stop_leftover`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import grp
import logging
import os
import pwd
import shutil
import signal
import stat
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType

from fleetgate.domain.errors import ConfigurationError
from fleetgate.stack.plugin import broker_dir
from fleetgate.stack.processes import RunAs, require_free_ports, stop_recorded, tethered

__all__ = [
    "BrokerConfig",
    "MosquittoProcess",
    "render_config",
    "write_service_password_hash",
]

log = logging.getLogger("fleetgate.broker")

_BROKER_USER = "mosquitto"
_TEMPLATE = "mosquitto.conf.template"
_LOG_TAIL = 40
#: In the run directory, while mosquitto runs.
PID_FILE = "mosquitto.pid"


@dataclass(frozen=True)
class BrokerConfig:
    """Everything the mosquitto.conf template needs. Paths should be absolute."""

    service_port: int
    cert_port: int
    password_port: int
    bind_address: str
    #: The broker CA devices verify the server with (the stack describes it); the
    #: certificate listener trusts ``capath`` instead, not this file.
    ca_file: Path
    server_cert: Path
    server_key: Path
    persistence_dir: Path
    service_username: str
    #: File whose first line is the scrypt hash of the service password (see
    #: :func:`write_service_password_hash`); the hash itself stays out of mosquitto.conf.
    service_password_hash_file: Path
    plugin_path: Path
    #: ``user`` directive; None leaves mosquitto's default (drop to "mosquitto" as root).
    user: str | None = None
    #: The certificate listener's ``capath``: the trusted device CAs in OpenSSL
    #: hashed-directory form (:func:`fleetgate.pki.capath.sync_capath` writes it).
    #: None: ``trusted/`` beside the persistence directory.
    capath: Path | None = None

    def trusted_dir(self) -> Path:
        """The capath directory mosquitto is given (``capath`` or its default)."""
        return self.capath or self.persistence_dir.parent / "trusted"

    def listeners(self) -> dict[str, tuple[str, int]]:
        """Listener name -> (bind address, port)."""
        return {
            "service": ("127.0.0.1", self.service_port),
            "certificate devices": (self.bind_address, self.cert_port),
            "password devices": (self.bind_address, self.password_port),
        }


def write_service_password_hash(path: Path, password_hash: str) -> None:
    """Write the service password's hash where the plugin reads it (mode 0640).

    When running as root the file belongs to the mosquitto user's group, so the plugin can
    read it whether mosquitto loads plugins before or after dropping privileges.
    """
    if not password_hash or any(c.isspace() for c in password_hash):
        raise ConfigurationError("the service password hash must be one line without spaces")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(password_hash + "\n")
    broker_user = _broker_user(None)
    if broker_user is not None:
        os.chown(tmp, -1, broker_user.pw_gid)
    tmp.chmod(0o640)
    tmp.replace(path)


def render_config(cfg: BrokerConfig, template: Path | None = None) -> str:
    """Fill the mosquitto.conf template with ``cfg``."""
    for name, value in (
        ("service_username", cfg.service_username),
        ("bind_address", cfg.bind_address),
    ):
        if not value or any(c.isspace() for c in value):
            raise ConfigurationError(f"broker setting {name} must be non-empty without spaces")
    values: dict[str, object] = {k: v for k, v in asdict(cfg).items() if k != "user"}
    values["capath"] = cfg.trusted_dir()
    values["user_line"] = f"user {cfg.user}" if cfg.user else ""
    text = (template or broker_dir() / _TEMPLATE).read_text(encoding="utf-8")
    return text.format_map(values)


class MosquittoProcess:
    """mosquitto as a child process; use ``async with`` or ``start()``/``stop()``.

    ``run_dir`` receives the rendered ``mosquitto.conf``; it is created if needed and must
    be reachable by the mosquitto user. The persistence directory is created and, when
    running as root, given to the mosquitto user. The capath directory is created (0755:
    CA certificates are public) so that mosquitto can read what the service puts there.
    """

    def __init__(
        self,
        config: BrokerConfig,
        run_dir: Path,
        *,
        binary: Path | None = None,
        start_timeout: float = 15.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.config = config
        self.run_dir = run_dir
        self.config_path = run_dir / "mosquitto.conf"
        self.pid_file = run_dir / PID_FILE
        self._binary = binary
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._process: asyncio.subprocess.Process | None = None
        self._pump: asyncio.Task[None] | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=_LOG_TAIL)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def wait(self) -> int | None:
        """Wait until mosquitto exits (for any reason); its exit status, None if never started."""
        if self._process is None:
            return None
        return await self._process.wait()

    def log_tail(self) -> list[str]:
        """The last lines mosquitto wrote (for error messages and tests)."""
        return list(self._tail)

    async def start(self) -> None:
        """Write the config, spawn mosquitto and wait until the service port accepts TCP."""
        if self._process is not None and self._process.returncode is None:
            raise RuntimeError("mosquitto is running already")
        binary = self._binary or _find_mosquitto()
        await self.stop_leftover(self.run_dir)
        require_free_ports(self.config.listeners())
        self._prepare_files()
        self._tail.clear()
        broker_user = _broker_user(self.config.user)
        run_as = (
            RunAs(broker_user.pw_name, broker_user.pw_uid, broker_user.pw_gid)
            if broker_user is not None
            else RunAs(None, os.getuid(), os.getgid())
        )
        command = [*_line_buffered(), str(binary), "-c", str(self.config_path)]
        self._process = await asyncio.create_subprocess_exec(
            # SIGTERM when we die: mosquitto then saves its persistence file and exits.
            *tethered(command, run_as, signal.SIGTERM),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            # Its own session: a terminal's Ctrl-C reaches only fleetgate, which then
            # stops the broker after the service, in order.
            start_new_session=True,
        )
        self.pid_file.write_text(f"{self._process.pid}\n")
        self._pump = asyncio.create_task(self._pump_log(self._process), name="mosquitto-log")
        try:
            await asyncio.wait_for(self._wait_ready(), self._start_timeout)
        except TimeoutError:
            await self.stop()
            raise ConfigurationError(
                f"mosquitto did not accept connections on port {self.config.service_port} "
                f"within {self._start_timeout:.0f} s; last output:\n{self.last_output()}"
            ) from None
        except BaseException:
            await self.stop()
            raise
        log.info("mosquitto running (pid %s) with %s", self.pid, self.config_path)

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after the stop timeout; always reaps the child."""
        process = self._process
        try:
            if process is not None and process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), self._stop_timeout)
                except TimeoutError:
                    log.warning(
                        "mosquitto ignored SIGTERM for %.0f s; killing it", self._stop_timeout
                    )
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                    await process.wait()
        finally:
            if process is not None and process.returncode is None:
                # Cancelled while waiting: never leave an orphan behind.
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
            if process is not None and process.returncode is not None:
                self.pid_file.unlink(missing_ok=True)
            if self._pump is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await self._pump
                self._pump = None

    @staticmethod
    async def stop_leftover(run_dir: Path) -> None:
        """Stop a mosquitto that a process which died left running with the configuration
        in ``run_dir`` (it holds the listeners' ports)."""
        config = str(run_dir / "mosquitto.conf")
        await stop_recorded(run_dir / PID_FILE, "mosquitto", config, signal.SIGTERM, timeout=10)

    async def __aenter__(self) -> MosquittoProcess:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _prepare_files(self) -> None:
        cfg = self.config
        self.run_dir.mkdir(parents=True, exist_ok=True)
        cfg.persistence_dir.mkdir(parents=True, exist_ok=True)
        trusted = cfg.trusted_dir()
        trusted.mkdir(parents=True, exist_ok=True)
        trusted.chmod(0o755)
        broker_user = _broker_user(cfg.user)
        if broker_user is not None:
            os.chown(cfg.persistence_dir, broker_user.pw_uid, broker_user.pw_gid)
            _check_readable(trusted, broker_user)
            for path in (
                cfg.plugin_path,
                cfg.server_cert,
                cfg.server_key,
                cfg.service_password_hash_file,
            ):
                _check_readable(path, broker_user)
        self.config_path.write_text(render_config(cfg), encoding="utf-8")
        self.config_path.chmod(0o644)
        if broker_user is not None:
            _check_readable(self.config_path, broker_user)

    async def _wait_ready(self) -> None:
        assert self._process is not None
        while True:
            if self._process.returncode is not None or (self._pump and self._pump.done()):
                await self._process.wait()
                raise ConfigurationError(
                    f"mosquitto exited with status {self._process.returncode} while starting; "
                    f"last output:\n{self.last_output()}"
                )
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.config.service_port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return

    async def _pump_log(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                self._tail.append(line)
                log.log(_level_of(line), "%s", line)

    def last_output(self) -> str:
        """The last lines mosquitto wrote, as one text (for error messages)."""
        return "\n".join(self._tail) or "(no output)"


def _level_of(line: str) -> int:
    if "Error:" in line:
        return logging.ERROR
    if "Warning:" in line or "dropped" in line:
        return logging.WARNING
    return logging.INFO


def _line_buffered() -> list[str]:
    """mosquitto 2.0.11 does not flush its stdout log, so piped lines would only arrive
    when its stdio buffer fills or it exits; coreutils' stdbuf makes it line-buffered."""
    stdbuf = shutil.which("stdbuf")
    return [stdbuf, "-oL"] if stdbuf else []


def _find_mosquitto() -> Path:
    for candidate in (Path("/usr/sbin/mosquitto"), shutil.which("mosquitto")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    raise ConfigurationError(
        "mosquitto not found (looked at /usr/sbin/mosquitto and PATH); "
        "install the Debian package: apt-get install mosquitto"
    )


def _broker_user(configured: str | None) -> pwd.struct_passwd | None:
    """The account mosquitto will run as when it drops root, or None when it will not."""
    if os.geteuid() != 0:
        return None
    name = configured or _BROKER_USER
    if name == "root":
        return None
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise ConfigurationError(
            f"mosquitto runs as user {name!r} after dropping root, but no such user exists"
        ) from None


def _check_readable(path: Path, user: pwd.struct_passwd) -> None:
    """Fail clearly when ``user`` cannot reach and read ``path`` (mode bits only)."""
    groups = {user.pw_gid} | {g.gr_gid for g in grp.getgrall() if user.pw_name in g.gr_mem}
    path = path.resolve()
    if not path.exists():
        raise ConfigurationError(f"{path} does not exist")
    # A directory must be listable and enterable (capath), a file readable.
    last = 0o5 if path.is_dir() else 0o4
    for node, need in [(p, 0o1) for p in reversed(path.parents)] + [(path, last)]:
        st = node.stat()
        if st.st_uid == user.pw_uid:
            allowed = (st.st_mode >> 6) & need
        elif st.st_gid in groups:
            allowed = (st.st_mode >> 3) & need
        else:
            allowed = st.st_mode & need
        if allowed != need:
            what = "enter" if need == 0o1 else "read"
            raise ConfigurationError(
                f"mosquitto runs as user {user.pw_name!r} and cannot {what} {node} "
                f"(mode {stat.filemode(st.st_mode)}); make it readable by that user"
            )
