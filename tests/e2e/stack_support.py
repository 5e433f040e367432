"""Running `fleetgate up` as a subprocess for the end-to-end tests and benchmarks."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from fleetgate.cli import UP_PORT_OPTIONS

from conftest import free_ports


def up_command(
    home: Path, certs: Path, ports: dict[str, int], extra: Sequence[str] = ()
) -> list[str]:
    """The `fleetgate up` command line for ``home`` on ``ports`` (flag → port)."""
    args = [sys.executable, "-m", "fleetgate.cli", "up", "--home", str(home)]
    args += ["--certs-dir", str(certs)]
    for flag, port in ports.items():
        args += [f"--{flag}", str(port)]
    return [*args, *extra]


class Up:
    """One `fleetgate up` child process and where its output goes."""

    def __init__(
        self,
        home: Path,
        certs: Path,
        ports: dict[str, int],
        extra: Sequence[str] = (),
        *,
        program: list[str] | None = None,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        """``program``: what runs `fleetgate` (default: this Python's ``-m fleetgate.cli``)."""
        self.home = home
        self.log_path = home.parent / f"up-{time.monotonic_ns()}.log"
        self.ports = ports
        self._log = self.log_path.open("wb")
        command = up_command(home, certs, ports, extra)
        if program is not None:
            command = [*program, *command[3:]]
        self.process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, cwd=cwd, env=env
        )

    @property
    def output(self) -> str:
        return self.log_path.read_text("utf-8", "replace")

    def wait_ready(self, timeout: float = 120) -> dict[str, object]:
        """The stack description, once this `up` says it is ready (a ``stack.json`` alone
        may be the stale one of an `up` that was killed)."""
        stack_file = self.home / "stack.json"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"fleetgate up exited with {self.process.returncode}:\n{self.output}")
            if "fleetgate is ready" in self.output and stack_file.exists():
                data: dict[str, object] = json.loads(stack_file.read_text())
                return data
            time.sleep(0.1)
        pytest.fail(f"no stack.json after {timeout} s:\n{self.output}")

    def terminate(self, timeout: float = 60) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()  # not left running after the test; the test fails
            self.process.wait()
            raise
        finally:
            self._log.close()
        return code

    def kill(self) -> None:
        """SIGKILL, as the OOM killer or `kill -9` would: nothing of `up` runs after it."""
        self.process.kill()
        self.process.wait()
        self._log.close()


def ports() -> dict[str, int]:
    """Distinct free ports for every listener of `fleetgate up`."""
    return dict(zip(UP_PORT_OPTIONS, free_ports(len(UP_PORT_OPTIONS)), strict=True))


def processes_under(path: Path) -> list[str]:
    """Command lines of live processes that mention ``path`` (our children would)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(path) in cmdline:
            found.append(f"{entry.name}: {cmdline}")
    return found


def mqtt_connect(stack: dict[str, object], username: str, password: str, client_id: str) -> int:
    """CONNECT over TLS to the password listener; returns the CONNACK reason code value."""
    result: list[int] = []
    done = threading.Event()
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
    )
    client.username_pw_set(username, password)
    client.tls_set(ca_certs=str(stack["ca_file"]), cert_reqs=ssl.CERT_REQUIRED)

    def on_connect(_c: object, _u: object, _f: object, reason: mqtt.ReasonCode, _p: object) -> None:
        result.append(reason.value)
        done.set()

    client.on_connect = on_connect
    client.connect(str(stack["mqtt_host"]), int(str(stack["mqtt_password_port"])))
    client.loop_start()
    try:
        assert done.wait(15), "no CONNACK"
    finally:
        client.disconnect()
        client.loop_stop()
    return result[0]
