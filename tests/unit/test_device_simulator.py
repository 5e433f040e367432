"""The simulator's configuration, command line and enrolment files (no network)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from fleetgate.device.enrolment import (
    StackInfo,
    ensure_device_certificates,
    ensure_fleet_ca,
    load_stack,
)
from fleetgate.device.simulate_command import add_parser, config_from
from fleetgate.device.simulator import SimulationConfig
from fleetgate.domain.errors import ConfigurationError

STACK = {
    "api_url": "http://127.0.0.1:8080",
    "mqtt_host": "localhost",
    "mqtt_cert_port": 8883,
    "mqtt_password_port": 8884,
    "ca_file": "/abs/certs/ca.crt",
    "admin": {"tenant": "t1", "username": "admin", "password": "pw"},
    "bootstrap": {"tenant": "t1", "username": "devicebootstrap", "password": "bpw"},
}


def stack() -> StackInfo:
    return StackInfo.model_validate(STACK)


def test_device_ids_are_zero_padded_to_at_least_four_digits(tmp_path: Path) -> None:
    config = SimulationConfig(stack=stack(), devices=3, state_dir=tmp_path, prefix="lab")
    assert config.device_ids == ("lab-0001", "lab-0002", "lab-0003")
    many = SimulationConfig(stack=stack(), devices=10_000, state_dir=tmp_path)
    assert many.device_ids[-1] == "sim-10000"
    assert len(set(many.device_ids)) == 10_000


def test_gateways_and_their_children_are_named_after_the_prefix(tmp_path: Path) -> None:
    config = SimulationConfig(
        stack=stack(), devices=0, gateways=2, children=3, state_dir=tmp_path, prefix="lab"
    )
    assert config.device_ids == ()
    assert config.gateway_ids == ("lab-gw-0001", "lab-gw-0002")
    assert config.child_ids("lab-gw-0002") == (
        "lab-gw-0002-c-0001",
        "lab-gw-0002-c-0002",
        "lab-gw-0002-c-0003",
    )


@pytest.mark.parametrize(
    "change",
    [
        {"devices": 0},
        {"prefix": "a/b"},
        {"failure_rate": 1.5},
        {"delay": -1},
        {"gateways": 1},
        {"children": 5},
        {"devices": -1, "gateways": 2, "children": 1},
    ],
)
def test_impossible_settings_are_configuration_errors(
    tmp_path: Path, change: dict[str, object]
) -> None:
    fields: dict[str, object] = {"stack": stack(), "devices": 1, "state_dir": tmp_path}
    with pytest.raises(ConfigurationError):
        SimulationConfig(**{**fields, **change})  # type: ignore[arg-type]


def test_the_command_line_and_its_defaults() -> None:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["simulate", "--devices", "5", "--failure-rate", "0.1"])
    assert (args.command, args.devices, args.failure_rate) == ("simulate", 5, 0.1)
    assert (args.prefix, args.delay, args.state_dir) == ("sim", 0.5, None)
    assert (args.gateways, args.children) == (0, None)
    assert args.stack == Path(".fleetgate/stack.json")


def test_the_command_line_of_gateways(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    path = tmp_path / "stack.json"
    path.write_text(json.dumps(STACK))

    def config(*argv: str) -> SimulationConfig:
        return config_from(parser.parse_args(["simulate", "--stack", str(path), *argv]))

    plain = config()
    assert (plain.devices, plain.gateways, plain.children) == (10, 0, 0)
    gateways = config("--gateways", "3")
    assert (gateways.devices, gateways.gateways, gateways.children) == (0, 3, 10)
    both = config("--gateways", "2", "--children", "50", "--devices", "4")
    assert (both.devices, both.gateways, both.children) == (4, 2, 50)
    assert both.state_dir == tmp_path / "simulator"
    with pytest.raises(ConfigurationError, match="children need gateways"):
        config("--children", "5")


def test_stack_json_is_read_or_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "stack.json"
    path.write_text(json.dumps(STACK))
    assert load_stack(path).admin.tenant == "t1"
    with pytest.raises(ConfigurationError, match="is `fleetgate up` running"):
        load_stack(tmp_path / "missing.json")
    path.write_text("{}")
    with pytest.raises(ConfigurationError, match=r"not a usable stack\.json"):
        load_stack(path)


def test_the_ca_and_certificates_are_made_once(tmp_path: Path) -> None:
    ca = ensure_fleet_ca(tmp_path)
    assert ensure_fleet_ca(tmp_path).certificate == ca.certificate
    logins = ensure_device_certificates(tmp_path, ca, ["sim-0001", "sim-0002"])
    first = logins["sim-0001"].cert_file.read_bytes()
    certificate = x509.load_pem_x509_certificate(first)
    cn = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == "sim-0001"
    assert certificate.issuer == ca.certificate.subject
    again = ensure_device_certificates(tmp_path, ca, ["sim-0001"])
    assert again["sim-0001"].cert_file.read_bytes() == first
