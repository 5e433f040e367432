"""How long `fleetgate up` takes to be ready, first start and restart, beside a baseline.

Baseline, measured in the same run: the bare floor `up` cannot beat — Debian's
`postgres` starting on an already-initialised cluster plus a plain `mosquitto` (no
plugin, no TLS) accepting TCP, started one after the other as `up` does.

    .venv/bin/python bench/startup.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from fleetgate.stack.postgres import find_server_binaries

from embedded import free_port, up_command


def wait_for_file(path: Path, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"fleetgate up failed (exit {process.returncode})")
        time.sleep(0.01)


def wait_for_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.01)
    raise SystemExit(f"port {port} never opened")


def time_up(home: Path, certs: Path) -> tuple[float, float]:
    """Seconds until stack.json appears, and seconds from SIGTERM to exit."""
    args = up_command(home, certs)
    start = time.monotonic()
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_file(home / "stack.json", process)
    ready = time.monotonic() - start
    stop = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.wait(60)
    return ready, time.monotonic() - stop


def time_baseline(root: Path) -> float:
    """postgres (initialised cluster) then plain mosquitto, until both accept TCP."""
    data = root / "pg"
    if not data.exists():
        data.mkdir()
        if os.geteuid() == 0:
            shutil.chown(data, "postgres", "postgres")
        subprocess.run(
            [
                str(find_server_binaries() / "initdb"),
                "-D",
                str(data),
                "-U",
                "bench",
                "--auth",
                "trust",
            ],
            check=True,
            capture_output=True,
            user="postgres" if os.geteuid() == 0 else None,
        )
    pg_port, mq_port = free_port(), free_port()
    conf = root / "mosquitto.conf"
    conf.write_text(f"listener {mq_port} 127.0.0.1\nallow_anonymous true\n")
    conf.chmod(0o644)
    start = time.monotonic()
    postgres = subprocess.Popen(
        [
            str(find_server_binaries() / "postgres"),
            "-D",
            str(data),
            "-p",
            str(pg_port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "unix_socket_directories=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        user="postgres" if os.geteuid() == 0 else None,
    )
    wait_for_port(pg_port)
    mosquitto = subprocess.Popen(
        ["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_for_port(mq_port)
    elapsed = time.monotonic() - start
    for process in (mosquitto, postgres):
        process.send_signal(signal.SIGINT)
        process.wait(60)
    return elapsed


def summary(values: list[float]) -> str:
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"min {low:6.2f} s   median {mid:6.2f} s   max {high:6.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    first, second, stops, base = [], [], [], []
    for _ in range(args.rounds):
        root = Path(tempfile.mkdtemp(prefix="fleetgate-bench-"))
        root.chmod(0o755)
        try:
            ready, stop = time_up(root / "home", root / "certs")
            first.append(ready)
            stops.append(stop)
            ready, stop = time_up(root / "home", root / "certs")
            second.append(ready)
            stops.append(stop)
            base.append(time_baseline(root))
        finally:
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps({"rounds": args.rounds}))
    print(f"fleetgate up, first start (initdb, PKI, migrations)  {summary(first)}")
    print(f"fleetgate up, second start (same home)               {summary(second)}")
    print(f"SIGTERM to exit, every child stopped                 {summary(stops)}")
    print(f"baseline: bare postgres + plain mosquitto            {summary(base)}")


if __name__ == "__main__":
    main()
