"""fleetgate as a package, not a checkout: the wheel built from this tree, installed into
a fresh virtual environment outside it, runs `fleetgate up` from there — the plugin's
sources and the mosquitto config template come from the package, and the plugin is
built into the home (decision 0017)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from stack_support import Up, ports, processes_under

pytestmark = pytest.mark.e2e

CHECKOUT = Path(__file__).resolve().parents[2]
#: What a wheel is built from (an sdist holds the same: MANIFEST.in).
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "src", "broker")


@pytest.fixture
def scratch(scratch_dir: Path) -> Iterator[Path]:
    yield scratch_dir
    leftovers = processes_under(scratch_dir)
    assert not leftovers, f"processes left behind: {leftovers}"


def run(*command: str | Path, cwd: Path) -> str:
    done = subprocess.run(
        [str(c) for c in command], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"{command}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def build_wheel(scratch: Path) -> Path:
    """A wheel of this tree, built from a copy (nothing is written into the checkout)."""
    tree = scratch / "tree"
    tree.mkdir()
    ignore = shutil.ignore_patterns("build", "__pycache__", "*.egg-info", "*.so")
    for name in SOURCES:
        source = CHECKOUT / name
        if source.is_dir():
            shutil.copytree(source, tree / name, ignore=ignore)
        else:
            shutil.copy2(source, tree / name)
    dist = scratch / "dist"
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", dist, tree, cwd=scratch)
    (wheel,) = dist.glob("fleetgate-*.whl")
    return wheel


def test_the_installed_wheel_runs_fleetgate_up(scratch: Path) -> None:
    wheel = build_wheel(scratch)
    names = zipfile.ZipFile(wheel).namelist()
    assert "fleetgate/_broker/mosquitto.conf.template" in names
    assert "fleetgate/_broker/Makefile" in names
    assert "fleetgate/_broker/plugin.c" in names
    assert "fleetgate/api/swagger_ui/swagger-ui-bundle.js" in names
    assert "fleetgate/api/console/templates/base.html" in names
    assert "fleetgate/api/console/static/console.js" in names
    assert not [n for n in names if n.endswith(".so")]

    venv = scratch / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=scratch)
    run(venv / "bin" / "python", "-m", "pip", "install", "-q", wheel, cwd=scratch)
    where = run(
        venv / "bin" / "python", "-c", "import fleetgate, sys; print(fleetgate.__file__)",
        cwd=scratch,
    )  # fmt: skip
    assert Path(where.strip()).is_relative_to(venv)

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FLEETGATE_BROKER_DIR")}
    home = scratch / "home"
    up = Up(
        home, scratch / "certs", ports(), program=[str(venv / "bin" / "fleetgate")],
        cwd=scratch, env=env,
    )  # fmt: skip
    try:
        stack = up.wait_ready()
        ready = httpx.get(f"{stack['api_url']}/health/ready", timeout=30)
        assert ready.status_code == 200, ready.text
        # The API docs' assets come from the installed package too.
        css = httpx.get(f"{stack['api_url']}/docs/assets/swagger-ui.css", timeout=30)
        assert css.status_code == 200
        assert css.headers["content-type"].startswith("text/css")
        # So do the console's templates and stylesheet.
        login = httpx.get(f"{stack['api_url']}/console/login", timeout=30)
        assert login.status_code == 200
        assert 'href="/console/static/console.css"' in login.text
        style = httpx.get(f"{stack['api_url']}/console/static/console.css", timeout=30)
        assert style.status_code == 200
        # Built from the package's sources into the home, not into the package.
        assert (home / "plugin" / "fleetgate_plugin.so").is_file()
        assert not list((venv / "lib").rglob("fleetgate_plugin.so"))
    finally:
        code = up.terminate()
    assert code == 0, up.output
