"""What the benchmarks share: a `fleetgate up` of their own, free ports, percentiles."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fleetgate.cli import UP_PORT_OPTIONS
from fleetgate.stack.processes import pick_free_ports


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports (outside the kernel's ephemeral range)."""
    return pick_free_ports(count)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def up_command(home: Path, certs: Path) -> list[str]:
    """`fleetgate up` for ``home`` on free ports, logging warnings only."""
    cmd = [
        sys.executable,
        "-m",
        "fleetgate.cli",
        "--log-level",
        "WARNING",
        "up",
        "--home",
        str(home),
        "--certs-dir",
        str(certs),
    ]
    for flag, port in zip(UP_PORT_OPTIONS, free_ports(len(UP_PORT_OPTIONS)), strict=True):
        cmd += [f"--{flag}", str(port)]
    return cmd


@contextlib.asynccontextmanager
async def running_stack(root: Path) -> AsyncIterator[dict[str, Any]]:
    """`fleetgate up` in ``root`` on free ports; yields its stack.json, then SIGTERM.
    Its output (warnings and errors) goes to ``root/up.log``, PostgreSQL's to
    ``root/home/postgres/postgresql.log``: what to read when a run fails."""
    home = root / "home"
    with (root / "up.log").open("ab") as log:
        process = subprocess.Popen(  # noqa: ASYNC220 — the benchmark's own child, polled
            up_command(home, root / "certs"), stdout=log, stderr=subprocess.STDOUT
        )
    try:
        while not (home / "stack.json").exists():
            if process.poll() is not None:
                raise SystemExit(f"fleetgate up failed (exit {process.returncode})")
            await asyncio.sleep(0.1)
        yield json.loads((home / "stack.json").read_text())
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
