"""The process helpers of `fleetgate up` with real processes: the tether, telling a
recorded pid's program apart, and the home's lock remembering a holder that died."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fleetgate.stack.home import LOCK_FILE, exclusive
from fleetgate.stack.processes import RunAs, running_program, stop_recorded, tethered

pytestmark = pytest.mark.integration

WAIT = 30.0  # a generous bound for waiting, never an assertion about time
ME = RunAs(None, 0, 0)
#: A program that waits, with a marker among its arguments (as a data directory would be).
PYTHON = Path(sys.executable).name
SLEEPER = ["-c", "import time; time.sleep(300)"]


def wait_until(condition: object, what: str) -> None:
    assert callable(condition)
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    pytest.fail(what)


def child_of_a_parent_killed(tether: bool) -> int:
    """Start a sleeper from a parent process (tethered or not), SIGKILL that parent;
    the sleeper's pid."""
    parent = subprocess.Popen(
        [sys.executable, "-c",
         "import signal, subprocess, sys, time\n"
         "from fleetgate.stack.processes import RunAs, tethered\n"
         "argv = [sys.executable, '-c', 'import time; time.sleep(300)', sys.argv[1]]\n"
         "if sys.argv[2] == 'yes':\n"
         "    argv = tethered(argv, RunAs(None, 0, 0), signal.SIGTERM)\n"
         "print(subprocess.Popen(argv).pid, flush=True)\n"
         "time.sleep(300)\n",
         MARKER, "yes" if tether else "no"],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    return child


MARKER = "fleetgate-tether-test"


def test_a_tethered_child_dies_with_its_parent() -> None:
    child = child_of_a_parent_killed(tether=True)
    wait_until(lambda: not running_program(child, PYTHON, MARKER), "the child outlived its parent")


def test_an_untethered_child_outlives_its_parent() -> None:
    # The control of the test above: without the tether, the child keeps running.
    child = child_of_a_parent_killed(tether=False)
    try:
        time.sleep(0.5)
        assert running_program(child, PYTHON, MARKER)
    finally:
        os.kill(child, signal.SIGKILL)


def test_a_tether_whose_parent_is_gone_does_not_start_the_program(tmp_path: Path) -> None:
    # As if the parent died before the signal was set: the program would run for ever.
    argv = tethered(["touch", str(tmp_path / "ran")], ME, signal.SIGTERM)
    argv[argv.index(str(os.getpid()))] = "1"  # not our parent
    assert subprocess.run(argv, check=False, capture_output=True).returncode == 3
    assert not (tmp_path / "ran").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="switching accounts needs root")
def test_a_tether_runs_the_program_as_its_account() -> None:
    run_as = RunAs.for_service("postgres", "postgresql")
    argv = tethered(["id", "-un"], run_as, signal.SIGTERM)
    assert subprocess.run(argv, check=True, capture_output=True).stdout == b"postgres\n"


def test_a_recorded_pid_counts_only_for_its_own_program(tmp_path: Path) -> None:
    marker = str(tmp_path / "data")
    child = subprocess.Popen([sys.executable, *SLEEPER, marker])
    try:
        wait_until(lambda: running_program(child.pid, PYTHON, marker), "the sleeper not seen")
        assert not running_program(child.pid, "postgres", marker)  # a pid reused by another
        assert not running_program(child.pid, PYTHON, str(tmp_path / "other"))
        child.kill()
        # Killed but not reaped yet: a zombie holds nothing and counts as gone.
        wait_until(lambda: not running_program(child.pid, PYTHON, marker), "still running")
    finally:
        child.kill()
        child.wait()


async def test_stop_recorded_stops_the_program_and_leaves_others(tmp_path: Path) -> None:
    marker = str(tmp_path / "data")
    pid_file = tmp_path / "sleep.pid"
    child = await asyncio.create_subprocess_exec(sys.executable, *SLEEPER, marker)
    try:
        pid_file.write_text(f"{child.pid}\n")
        # Recorded, but not this program: left alone.
        assert await stop_recorded(pid_file, "mosquitto", marker, signal.SIGTERM) is None
        assert child.returncode is None
        assert await stop_recorded(pid_file, PYTHON, marker, signal.SIGTERM) == child.pid
        assert await asyncio.wait_for(child.wait(), WAIT) == -signal.SIGTERM
        # Gone: nothing to stop any more.
        assert await stop_recorded(pid_file, PYTHON, marker, signal.SIGTERM) is None
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()


def test_the_lock_names_a_holder_that_died_holding_it(tmp_path: Path) -> None:
    with exclusive(tmp_path) as died:
        assert died is None  # a fresh home
    with exclusive(tmp_path) as died:
        assert died is None  # the last holder let go
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from fleetgate.stack.home import exclusive\n"
         "with exclusive(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(300)",
         str(tmp_path)],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == b"held\n"
        assert (tmp_path / LOCK_FILE).read_text().strip() == str(holder.pid)
    finally:
        holder.kill()
        holder.wait()
    with exclusive(tmp_path) as died:
        assert died == holder.pid
