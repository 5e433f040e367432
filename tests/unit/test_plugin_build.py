"""``build_plugin`` runs make only when one of the plugin's inputs is newer than the
``.so``: any ``*.c`` or ``*.h`` in ``broker/``, or its Makefile. A real make runs a
stand-in Makefile that counts its builds."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from fleetgate.domain.errors import ConfigurationError
from fleetgate.stack.plugin import build_plugin

STAND_IN_MAKEFILE = (
    "all:\n\tmkdir -p build\n\techo built >> builds\n\ttouch build/fleetgate_plugin.so\n"
)
BASE = time.time() - 3600


def _broker(root: Path) -> Path:
    broker = root / "broker"
    broker.mkdir()
    (broker / "Makefile").write_text(STAND_IN_MAKEFILE)
    (broker / "login.c").write_text("")
    (broker / "fleetgate.h").write_text("")
    for path in broker.iterdir():
        os.utime(path, (BASE, BASE))
    return broker


def _builds(broker: Path) -> int:
    log = broker / "builds"
    return len(log.read_text().splitlines()) if log.exists() else 0


@pytest.mark.parametrize("changed", ["login.c", "fleetgate.h", "Makefile", "acl.c"])
def test_any_newer_input_rebuilds_and_nothing_else_does(tmp_path: Path, changed: str) -> None:
    broker = _broker(tmp_path)
    plugin = build_plugin(repo_root=tmp_path)
    assert plugin == broker / "build" / "fleetgate_plugin.so"
    assert _builds(broker) == 1

    os.utime(plugin, (BASE + 10, BASE + 10))
    (broker / "notes.txt").write_text("not an input")
    assert build_plugin(repo_root=tmp_path) == plugin
    assert _builds(broker) == 1

    (broker / changed).touch()  # an existing input edited, or acl.c added
    os.utime(broker / changed, (BASE + 20, BASE + 20))
    build_plugin(repo_root=tmp_path)
    assert _builds(broker) == 2


def test_a_directory_without_c_sources_is_named(tmp_path: Path) -> None:
    broker = _broker(tmp_path)
    (broker / "login.c").unlink()
    with pytest.raises(ConfigurationError, match=r"plugin sources \(\*\.c\) not found"):
        build_plugin(repo_root=tmp_path)


def test_a_build_directory_elsewhere_leaves_the_sources_untouched(tmp_path: Path) -> None:
    """An installed package's sources are read-only: make writes only into ``build_dir``."""
    broker = _broker(tmp_path)
    (broker / "Makefile").write_text(
        "BUILD := build\nall:\n\tmkdir -p $(BUILD)\n\ttouch $(BUILD)/fleetgate_plugin.so\n"
    )
    before = sorted(p.name for p in broker.iterdir())
    out = tmp_path / "home" / "plugin"
    plugin = build_plugin(repo_root=tmp_path, build_dir=out)
    assert plugin == out.resolve() / "fleetgate_plugin.so"
    assert plugin.is_file()
    assert sorted(p.name for p in broker.iterdir()) == before
