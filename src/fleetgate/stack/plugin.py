"""Building the fleetgate mosquitto plugin from ``broker/`` (the C sources and their
Makefile) for the embedded stack and the tests: ``make -C broker``, only when needed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from fleetgate.domain.errors import ConfigurationError

__all__ = [
    "BROKER_DIR_ENV",
    "BUILD_PACKAGES",
    "broker_dir",
    "build_plugin",
    "is_packaged",
    "plugin_build_dir",
]

#: Environment variable naming the ``broker/`` directory (plugin source and template).
BROKER_DIR_ENV = "FLEETGATE_BROKER_DIR"
BUILD_PACKAGES = "mosquitto-dev libmosquitto-dev libssl-dev gcc make"
_PLUGIN_NAME = "fleetgate_plugin.so"
#: What ``broker/Makefile`` builds the plugin from (its own wildcards say the same).
_PLUGIN_INPUTS = ("*.c", "*.h", "Makefile")
_HEADERS = ("mosquitto_broker.h", "mosquitto_plugin.h", "mosquitto.h", "openssl/evp.h")
#: Where an installed package (a wheel: ``pip install .``, pipx) keeps ``broker/``'s
#: sources and template: setup.py ships them as ``fleetgate/_broker``.
_PACKAGED = Path(__file__).resolve().parents[1] / "_broker"
#: ``broker/`` of a checkout: src/fleetgate/stack/plugin.py is three levels below it.
_CHECKOUT = Path(__file__).resolve().parents[3] / "broker"


def broker_dir() -> Path:
    """The plugin's sources and config template: ``$FLEETGATE_BROKER_DIR``, else
    ``broker/`` of the checkout this module runs from, else the installed package's copy."""
    override = os.environ.get(BROKER_DIR_ENV)
    if override:
        return Path(override).resolve()
    if (_CHECKOUT / "Makefile").is_file():
        return _CHECKOUT
    return _PACKAGED


def is_packaged() -> bool:
    """True when the sources are an installed package's (read-only, perhaps shared by
    several users: the plugin is built elsewhere, see :func:`plugin_build_dir`)."""
    return broker_dir() == _PACKAGED


def plugin_build_dir(home: Path) -> Path:
    """Where ``fleetgate up`` on ``home`` builds the plugin: ``broker/build`` in a
    checkout (``scripts/install`` builds it there too), ``<home>/plugin`` for an
    installed package, whose own directory is not ours to write."""
    return home.resolve() / "plugin" if is_packaged() else broker_dir() / "build"


def build_plugin(repo_root: Path | None = None, build_dir: Path | None = None) -> Path:
    """Build the plugin with ``make -C <sources>`` unless it is newer than every input.

    The sources are ``repo_root/broker`` or :func:`broker_dir`; the ``.so`` goes to
    ``build_dir`` (``make BUILD=…``), by default their ``build/``. The inputs are every
    ``*.c`` and ``*.h`` and the ``Makefile``. Returns the path of the ``.so``. Raises
    ConfigurationError naming the Debian packages when the compiler or the headers are
    missing, or with the compiler's output when the build fails.
    """
    directory = (repo_root / "broker").resolve() if repo_root else broker_dir()
    output = build_dir.resolve() if build_dir is not None else directory / "build"
    target = output / _PLUGIN_NAME
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
    command = ["make", "-C", str(directory)]
    if build_dir is not None:
        command.append(f"BUILD={output}")
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not target.is_file():
        raise ConfigurationError(
            f"building the mosquitto plugin failed (needs {BUILD_PACKAGES}):\n"
            f"{result.stdout}{result.stderr}"
        )
    return target
