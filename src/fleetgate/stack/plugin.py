"""Building the fleetgate mosquitto plugin from ``broker/`` (the C sources and their
Makefile) for the embedded stack and the tests: ``make -C broker``, only when needed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from fleetgate.domain.errors import ConfigurationError

__all__ = ["BROKER_DIR_ENV", "BUILD_PACKAGES", "broker_dir", "build_plugin", "plugin_path"]

#: Environment variable naming the ``broker/`` directory (plugin source and template).
BROKER_DIR_ENV = "FLEETGATE_BROKER_DIR"
BUILD_PACKAGES = "mosquitto-dev libmosquitto-dev libssl-dev gcc make"
_PLUGIN_RELATIVE = Path("build") / "fleetgate_plugin.so"
#: What ``broker/Makefile`` builds the plugin from (its own wildcards say the same).
_PLUGIN_INPUTS = ("*.c", "*.h", "Makefile")
_HEADERS = ("mosquitto_broker.h", "mosquitto_plugin.h", "mosquitto.h", "openssl/evp.h")


def broker_dir() -> Path:
    """The ``broker/`` directory: ``$FLEETGATE_BROKER_DIR`` or the one beside ``src/``."""
    override = os.environ.get(BROKER_DIR_ENV)
    if override:
        return Path(override).resolve()
    # src/fleetgate/stack/plugin.py -> the repository root is three levels above "fleetgate"
    return Path(__file__).resolve().parents[3] / "broker"


def plugin_path() -> Path:
    """Where the built plugin lives (it may not exist yet; see :func:`build_plugin`)."""
    return broker_dir() / _PLUGIN_RELATIVE


def build_plugin(repo_root: Path | None = None) -> Path:
    """Build the plugin with ``make -C broker`` unless it is newer than every input.

    The inputs are every ``*.c`` and ``*.h`` in ``broker/`` and its ``Makefile``. Returns
    the path of the ``.so``. Raises ConfigurationError naming the Debian packages when the
    compiler or the headers are missing, or with the compiler's output when the build fails.
    """
    directory = (repo_root / "broker").resolve() if repo_root else broker_dir()
    target = directory / _PLUGIN_RELATIVE
    inputs = [path for pattern in _PLUGIN_INPUTS for path in directory.glob(pattern)]
    if not any(path.suffix == ".c" for path in inputs):
        raise ConfigurationError(
            f"plugin sources (*.c) not found in {directory}; "
            f"set {BROKER_DIR_ENV} to the broker/ directory"
        )
    newest_input = max(path.stat().st_mtime for path in inputs)
    if target.is_file() and target.stat().st_mtime >= newest_input:
        return target
    missing = [tool for tool in ("make", "cc") if shutil.which(tool) is None]
    missing += [h for h in _HEADERS if not (Path("/usr/include") / h).is_file()]
    if missing:
        raise ConfigurationError(
            f"cannot build the mosquitto plugin: {', '.join(missing)} missing; "
            f"install the Debian packages: apt-get install {BUILD_PACKAGES}"
        )
    result = subprocess.run(
        ["make", "-C", str(directory)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0 or not target.is_file():
        raise ConfigurationError(
            f"building the mosquitto plugin failed (needs {BUILD_PACKAGES}):\n"
            f"{result.stdout}{result.stderr}"
        )
    return target
