"""When parts of `fleetgate up` die.

`up` killed with SIGKILL: its servers die with it, and the next `up` on the same home, on
the same ports, starts and resumes its data — also when servers of an earlier `up` were
left running (one from before they were tethered to it). mosquitto or PostgreSQL killed
under a running `up`: it starts them again and the service recovers by itself."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fleetgate.stack.postgres import find_server_binaries
from fleetgate.stack.processes import RunAs, recorded_pid

from stack_support import Up, mqtt_connect, ports, processes_under

pytestmark = pytest.mark.e2e

WAIT = 60.0  # a generous bound for waiting, never an assertion about time


@pytest.fixture
def home(scratch_dir: Path) -> Iterator[Path]:
    yield scratch_dir / "home"
    leftovers = processes_under(scratch_dir)
    for line in leftovers:
        os.kill(int(line.split(":", 1)[0]), signal.SIGKILL)
    assert not leftovers, f"processes left behind: {leftovers}"


def wait_gone(home: Path) -> None:
    """Until no process names ``home`` in its command line (the servers of `up` do)."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if not processes_under(home):
            return
        time.sleep(0.05)
    pytest.fail(f"still running: {processes_under(home)}")


def wait_listening(port: int) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"nothing listens on {port}")


def current_user(stack: dict[str, object]) -> dict[str, object]:
    admin = stack["admin"]
    assert isinstance(admin, dict)
    me = httpx.get(
        f"{stack['api_url']}/user/currentUser",
        auth=(f"{admin['tenant']}/{admin['username']}", admin["password"]),
    )
    assert me.status_code == 200, me.text
    body: dict[str, object] = me.json()
    return body


def test_servers_die_with_a_killed_up_and_the_next_up_resumes(home: Path) -> None:
    certs, chosen = home.parent / "certs", ports()
    first = Up(home, certs, chosen)
    try:
        made = current_user(first.wait_ready())
        assert len(processes_under(home)) == 3  # up, PostgreSQL, mosquitto
    finally:
        first.kill()
    wait_gone(home)
    assert (home / "stack.json").exists()  # stale: the next `up` removes it

    second = Up(home, certs, chosen)  # the same ports: nothing holds them any more
    try:
        resumed = current_user(second.wait_ready())
        assert resumed["lastPasswordChange"] == made["lastPasswordChange"]
        assert "ended without stopping" in second.output
    finally:
        assert second.terminate() == 0, second.output
    assert processes_under(home) == []
    assert not (home / "stack.json").exists()


def test_the_next_up_stops_servers_left_running_and_starts(home: Path) -> None:
    certs, chosen = home.parent / "certs", ports()
    first = Up(home, certs, chosen)
    try:
        made = current_user(first.wait_ready())
    finally:
        assert first.terminate() == 0, first.output

    # What an `up` from before the tether leaves when it is killed: both servers
    # running on the home's data and configuration, their pids recorded, stack.json.
    data = home / "postgres" / "data"
    run_as = RunAs.for_service("postgres", "postgresql")
    postgres = subprocess.Popen(
        [str(find_server_binaries() / "postgres"), "-D", str(data), "-p",
         str(chosen["postgres-port"]), "-c", "listen_addresses=127.0.0.1",
         "-c", "unix_socket_directories="],
        user=run_as.user, group=run_as.gid if run_as.user else None,
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    mosquitto = subprocess.Popen(
        ["/usr/sbin/mosquitto", "-c", str(home / "mosquitto" / "mosquitto.conf")],
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        (home / "mosquitto" / "mosquitto.pid").write_text(f"{mosquitto.pid}\n")
        (home / "stack.json").write_text(json.dumps({"api_url": "http://stale.invalid"}))
        wait_listening(chosen["postgres-port"])
        wait_listening(chosen["mqtt-service-port"])
        assert recorded_pid(data / "postmaster.pid") == postgres.pid

        second = Up(home, certs, chosen)
        try:
            resumed = current_user(second.wait_ready())
            assert resumed["lastPasswordChange"] == made["lastPasswordChange"]
            assert f"stopping postgres (pid {postgres.pid}) left running" in second.output
            assert f"stopping mosquitto (pid {mosquitto.pid}) left running" in second.output
            assert postgres.wait(WAIT) == 0  # a fast shutdown, not a kill
            assert mosquitto.wait(WAIT) == 0
        finally:
            assert second.terminate() == 0, second.output
    finally:
        for leftover in (postgres, mosquitto):
            if leftover.poll() is None:
                leftover.kill()
                leftover.wait()
    assert processes_under(home) == []


def kill_recorded(pid_file: Path) -> int:
    pid = recorded_pid(pid_file)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    return pid


def until_restarted(up: Up, name: str, pid_file: Path, old: int) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if f"{name} is running again" in up.output and recorded_pid(pid_file) != old:
            return
        time.sleep(0.05)
    pytest.fail(f"{name} was not restarted:\n{up.output}")


def answers(url: str, auth: tuple[str, str] | None = None) -> list[int]:
    """The status codes of ``url`` until it answers 200 (bounded)."""
    seen: list[int] = []
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        status = httpx.get(url, auth=auth, timeout=WAIT).status_code
        seen.append(status)
        if status == 200:
            return seen
        time.sleep(0.1)
    pytest.fail(f"{url} answered {seen} and never 200")


def test_up_restarts_a_broker_and_a_database_that_died(home: Path) -> None:
    up = Up(home, home.parent / "certs", ports())
    try:
        stack = up.wait_ready()
        api = str(stack["api_url"])
        admin, bootstrap = stack["admin"], stack["bootstrap"]
        assert isinstance(admin, dict)
        assert isinstance(bootstrap, dict)
        auth = (f"{admin['tenant']}/{admin['username']}", str(admin["password"]))
        boot = (f"{bootstrap['tenant']}/{bootstrap['username']}", str(bootstrap["password"]))
        assert answers(f"{api}/health/ready") == [200]

        broker_pid = home / "mosquitto" / "mosquitto.pid"
        until_restarted(up, "mosquitto", broker_pid, kill_recorded(broker_pid))
        # The service reconnects and gives the new broker's plugin its accounts again.
        assert set(answers(f"{api}/health/ready")) <= {200, 503}
        deadline = time.monotonic() + WAIT
        while mqtt_connect(stack, *boot, "recovery-device-1") != 0:
            assert time.monotonic() < deadline, "the bootstrap account never came back"
            time.sleep(0.1)

        postmaster = home / "postgres" / "data" / "postmaster.pid"
        killed = kill_recorded(postmaster)
        # Meanwhile requests get 503 (never 500), until the pool reconnects by itself.
        assert set(answers(f"{api}/health/ready")) <= {200, 503}
        assert set(answers(f"{api}/user/currentUser", auth)) <= {200, 503}
        until_restarted(up, "PostgreSQL", postmaster, killed)
        assert answers(f"{api}/user/currentUser", auth) == [200]
        assert answers(f"{api}/health/ready") == [200]
        assert "mosquitto exited unexpectedly" in up.output
        assert "PostgreSQL exited unexpectedly" in up.output
    finally:
        assert up.terminate() == 0, up.output
    assert processes_under(home) == []
