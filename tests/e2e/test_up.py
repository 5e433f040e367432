"""`fleetgate up` as a user runs it: a subprocess on free ports, stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from stack_support import Up, mqtt_connect, ports, processes_under, up_command

pytestmark = pytest.mark.e2e

STACK_KEYS = {
    "api_url",
    "mqtt_host",
    "mqtt_cert_port",
    "mqtt_password_port",
    "ca_file",
    "admin",
    "bootstrap",
}


@pytest.fixture
def home(scratch_dir: Path) -> Iterator[Path]:
    yield scratch_dir / "home"
    leftovers = processes_under(scratch_dir)
    for line in leftovers:
        os.kill(int(line.split(":", 1)[0]), signal.SIGKILL)
    assert not leftovers, f"processes left behind: {leftovers}"


def test_up_serves_stops_cleanly_and_resumes_with_its_data(home: Path) -> None:
    certs = home.parent / "certs"
    first = Up(home, certs, ports())
    try:
        stack = first.wait_ready()
        assert set(stack) == STACK_KEYS
        admin = stack["admin"]
        bootstrap = stack["bootstrap"]
        assert isinstance(admin, dict)
        assert isinstance(bootstrap, dict)
        assert Path(str(stack["ca_file"])).is_absolute()
        assert Path(str(stack["ca_file"])).is_file()
        assert "fleetgate is ready" in first.output

        api = str(stack["api_url"])
        user = f"{admin['tenant']}/{admin['username']}"
        me = httpx.get(f"{api}/user/currentUser", auth=(user, admin["password"]))
        assert me.status_code == 200, me.text
        assert me.json()["userName"] == admin["username"]
        created_at = me.json()["lastPasswordChange"]
        wrong = httpx.get(f"{api}/user/currentUser", auth=(user, "not-the-password"))
        assert wrong.status_code == 401
        assert wrong.json()["error"] == "security/Unauthorized"

        # The broker plugin got the bootstrap account from the service.
        boot_user = f"{bootstrap['tenant']}/{bootstrap['username']}"
        assert mqtt_connect(stack, boot_user, str(bootstrap["password"]), "e2e-device-1") == 0
        assert mqtt_connect(stack, boot_user, "wrong", "e2e-device-1") != 0

        # A second `up` on the same home while the first runs is refused.
        again = subprocess.run(
            up_command(home, certs, ports()),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert again.returncode == 2
        assert "already running" in again.stderr
    finally:
        code = first.terminate()
    assert code == 0, first.output
    assert processes_under(home) == []
    assert not (home / "stack.json").exists()
    assert not (home / "postgres" / "data" / "postmaster.pid").exists()

    second = Up(home, certs, ports())
    try:
        restarted = second.wait_ready()
        assert restarted["admin"] == admin
        assert restarted["bootstrap"] == bootstrap
        api = str(restarted["api_url"])
        me = httpx.get(f"{api}/user/currentUser", auth=(user, admin["password"]))
        assert me.status_code == 200
        # The user row is the one made at the first start, not a new one.
        assert me.json()["lastPasswordChange"] == created_at
    finally:
        assert second.terminate() == 0, second.output
    assert processes_under(home) == []


def test_a_port_in_use_is_a_clear_error(home: Path) -> None:
    chosen = ports()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", chosen["api-port"]))
        busy.listen(1)
        up = Up(home, home.parent / "certs", chosen)
        code = up.process.wait(60)
        up._log.close()
    assert code == 2
    assert f"{chosen['api-port']} (REST API)" in up.output
    assert "already in use" in up.output
