"""The one thing pyproject.toml cannot say: the mosquitto plugin's sources and config
template (``broker/``, beside ``src/``) ship in the package as ``fleetgate/_broker``, so
that ``fleetgate up`` from an installed wheel can build the plugin and render the config
(fleetgate.stack.plugin finds them there; decision 0017)."""

from setuptools import find_namespace_packages, setup

setup(
    packages=[*find_namespace_packages("src"), "fleetgate._broker"],
    package_dir={"": "src", "fleetgate._broker": "broker"},
    package_data={"fleetgate._broker": ["*.c", "*.h", "Makefile", "mosquitto.conf.template"]},
)
