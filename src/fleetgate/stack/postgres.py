"""A private PostgreSQL cluster inside fleetgate's home, from Debian's server binaries.

``initdb`` and ``postgres`` refuse to run as root, so when we are root the cluster
belongs to Debian's ``postgres`` user. The server is our child process (not
daemonised by ``pg_ctl``), tethered to us (:func:`fleetgate.stack.processes.tethered`):
stopping fleetgate stops it, and so does killing it, with a fast shutdown (SIGINT). It
listens on 127.0.0.1 only, with scram-sha-256 passwords and no Unix socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path

from fleetgate.domain.errors import ConfigurationError
from fleetgate.stack.processes import RunAs, check_traversable, stop_recorded, tethered

log = logging.getLogger(__name__)

SUPERUSER = "fleetgate"
DATABASE = "fleetgate"


def find_server_binaries() -> Path:
    """The directory holding ``initdb`` and ``postgres`` (newest Debian version wins)."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1].parent
    on_path = shutil.which("postgres")
    if on_path and shutil.which("initdb"):
        return Path(on_path).resolve().parent
    raise ConfigurationError(
        "PostgreSQL server binaries (initdb, postgres) not found: install the Debian package"
        " 'postgresql' (apt-get install postgresql)"
    )


@dataclass(frozen=True, slots=True)
class ClusterLocation:
    data_dir: Path
    port: int
    password: str

    def url(self, database: str = DATABASE) -> str:
        return f"postgresql://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{database}"


class PostgresCluster:
    """Initialise (once), start and stop a private cluster; an async context manager."""

    def __init__(self, location: ClusterLocation) -> None:
        self.location = location
        self._bin = find_server_binaries()
        self._run_as = RunAs.for_service("postgres", "postgresql")
        self._process: asyncio.subprocess.Process | None = None
        self._log_file = location.data_dir.parent / "postgresql.log"

    async def __aenter__(self) -> PostgresCluster:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self, *, timeout: float = 60.0) -> None:
        data = self.location.data_dir
        check_traversable(data.parent, self._run_as)
        if not (data / "PG_VERSION").exists():
            await self._initdb()
        await self.stop_leftover(data)
        log_handle = self._log_file.open("ab")
        server = [
            str(self._bin / "postgres"),
            "-D",
            str(data),
            "-p",
            str(self.location.port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "unix_socket_directories=",
            "-c",
            "fsync=on",
        ]
        try:
            self._process = await asyncio.create_subprocess_exec(
                *tethered(server, self._run_as, signal.SIGINT),
                stdout=log_handle,
                stderr=log_handle,
                stdin=asyncio.subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            log_handle.close()
        try:
            waiter = asyncio.create_task(self._wait_until_accepting(timeout))
            exited = asyncio.create_task(self._process.wait())
            done, _ = await asyncio.wait({waiter, exited}, return_when=asyncio.FIRST_COMPLETED)
            if exited in done:
                waiter.cancel()
                raise ConfigurationError(
                    "PostgreSQL exited during start-up:\n" + self.last_output()
                )
            exited.cancel()
            await waiter
            await self._ensure_database()
        except BaseException:
            await self.stop()
            raise
        log.info("PostgreSQL ready on 127.0.0.1:%d (%s)", self.location.port, data)

    async def _client(self, tool: str, *args: str) -> tuple[int, str]:
        """Run one of the server's client tools against it: (exit status, its output)."""
        env = {"PGPASSWORD": self.location.password, "PGCONNECT_TIMEOUT": "2"}
        process = await asyncio.create_subprocess_exec(
            str(self._bin / tool),
            *("-h", "127.0.0.1", "-p", str(self.location.port), "-U", SUPERUSER),
            *args,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await process.communicate()
        assert process.returncode is not None
        return process.returncode, output.decode("utf-8", "replace")

    async def _wait_until_accepting(self, timeout: float) -> None:
        """Poll with ``pg_isready`` until the server accepts connections."""
        deadline = asyncio.get_running_loop().time() + timeout
        output = ""
        while asyncio.get_running_loop().time() < deadline:
            status, output = await self._client("pg_isready", "-d", "postgres")
            if status == 0:
                return
            await asyncio.sleep(0.1)
        raise ConfigurationError(
            f"PostgreSQL did not accept connections within {timeout}s: {output.strip()}"
        )

    async def _ensure_database(self) -> None:
        """Make fleetgate's database unless it exists (``createdb``)."""
        status, output = await self._client("createdb", DATABASE)
        if status != 0 and "already exists" not in output:
            raise ConfigurationError(f"cannot create the database {DATABASE}: {output.strip()}")

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    async def wait(self) -> int | None:
        """Wait until the server exits (for any reason); its exit status, None if not started."""
        if self._process is None:
            return None
        return await self._process.wait()

    async def stop(self, *, timeout: float = 30.0) -> None:
        """Fast shutdown (SIGINT), then SIGKILL after ``timeout``; always reaps the child."""
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    async def _initdb(self) -> None:
        data = self.location.data_dir
        data.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._run_as.chown(data)
        pwfile = data.parent / ".initdb-password"
        pwfile.write_text(self.location.password + "\n")
        pwfile.chmod(0o600)
        self._run_as.chown(pwfile)
        try:
            proc = await asyncio.create_subprocess_exec(
                str(self._bin / "initdb"),
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                "--pwfile",
                str(pwfile),
                "--auth",
                "scram-sha-256",
                "-E",
                "UTF8",
                "--locale",
                "C",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                user=self._run_as.user,
                group=self._run_as.gid if self._run_as.user else None,
            )
            output, _ = await proc.communicate()
        finally:
            pwfile.unlink(missing_ok=True)
        if proc.returncode != 0:
            shutil.rmtree(data, ignore_errors=True)
            raise ConfigurationError("initdb failed:\n" + output.decode("utf-8", "replace")[-2000:])
        log.info("initialised a PostgreSQL cluster in %s", data)

    @staticmethod
    async def stop_leftover(data_dir: Path) -> None:
        """Stop a server that an ``up`` which died left running on ``data_dir``: it holds
        the data directory and the port (fast shutdown; SIGKILL if it does not stop)."""
        await stop_recorded(data_dir / "postmaster.pid", "postgres", str(data_dir), signal.SIGINT)

    def last_output(self, lines: int = 20) -> str:
        """The end of the server's log (for error messages)."""
        try:
            return "\n".join(self._log_file.read_text("utf-8", "replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
