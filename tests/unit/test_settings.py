from __future__ import annotations

from pathlib import Path

import pytest

from fleetgate.cli import _parser, settings_from
from fleetgate.config import Settings
from fleetgate.stack.home import HomeSecrets
from fleetgate.up import stack_description, with_home_secrets


def test_environment_variables_reach_their_section(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETGATE_DATABASE_URL", "postgresql://x/y")
    monkeypatch.setenv("FLEETGATE_MQTT_CERT_PORT", "9883")
    monkeypatch.setenv("FLEETGATE_MQTT_SERVICE_PORT", "9830")
    monkeypatch.setenv("FLEETGATE_API_PORT", "9080")
    monkeypatch.setenv("FLEETGATE_STACK_POSTGRES_PORT", "9432")
    settings = Settings()
    assert settings.database.url is not None
    assert settings.database.url.get_secret_value() == "postgresql://x/y"
    assert (settings.mqtt.cert_port, settings.mqtt.service_port) == (9883, 9830)
    assert settings.api.port == 9080
    assert settings.stack.postgres_port == 9432


def test_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETGATE_API_PORT", "9080")
    monkeypatch.setenv("FLEETGATE_MQTT_PASSWORD_PORT", "9884")
    args = _parser().parse_args(["up", "--api-port", "7080", "--home", "/tmp/h"])
    settings = settings_from(args)
    assert settings.api.port == 7080
    assert settings.mqtt.password_port == 9884
    assert settings.stack.home == Path("/tmp/h")


def test_an_invalid_port_is_refused() -> None:
    args = _parser().parse_args(["up", "--api-port", "70000"])
    with pytest.raises(ValueError, match="65535"):
        settings_from(args)


def test_the_device_link_client_id_cannot_be_a_device_id(monkeypatch: pytest.MonkeyPatch) -> None:
    """A device with that id could take the service's persistent session over."""
    assert Settings().mqtt.device_link_client_id == "fleetgate:devices"
    monkeypatch.setenv("FLEETGATE_MQTT_DEVICE_LINK_CLIENT_ID", "fleetgate-devices")
    with pytest.raises(ValueError, match="could be a device's id"):
        Settings()


def test_stack_json_holds_exactly_the_documented_keys(tmp_path: Path) -> None:
    secrets = HomeSecrets.generate()
    settings = with_home_secrets(Settings(), secrets, "postgresql://u:p@127.0.0.1:1/db")
    description = stack_description(settings, tmp_path / "ca.crt")
    assert set(description) == {
        "api_url",
        "mqtt_host",
        "mqtt_cert_port",
        "mqtt_password_port",
        "ca_file",
        "admin",
        "bootstrap",
    }
    assert description["admin"] == {
        "tenant": secrets.tenant,
        "username": "admin",
        "password": secrets.admin_password,
    }
    assert description["bootstrap"] == {
        "tenant": secrets.tenant,
        "username": "devicebootstrap",
        "password": secrets.bootstrap_password,
    }
    assert Path(str(description["ca_file"])).is_absolute()


def test_home_secrets_are_made_once_and_differ_between_homes(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = HomeSecrets.load_or_create(tmp_path / "a")
    assert HomeSecrets.load_or_create(tmp_path / "a") == first
    assert HomeSecrets.load_or_create(tmp_path / "b") != first
    assert (tmp_path / "a" / "secrets.json").stat().st_mode & 0o077 == 0


def test_log_format_and_metrics_access_from_the_environment_and_flags(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    defaults = Settings()
    assert (defaults.log_format, defaults.api.metrics_auth) == ("text", "management")
    monkeypatch.setenv("FLEETGATE_LOG_FORMAT", "json")
    monkeypatch.setenv("FLEETGATE_API_METRICS_AUTH", "none")
    settings = Settings()
    assert (settings.log_format, settings.api.metrics_auth) == ("json", "none")
    flagged = settings_from(_parser().parse_args(["--log-format", "text", "serve"]))
    assert flagged.log_format == "text"
    monkeypatch.setenv("FLEETGATE_API_METRICS_AUTH", "anyone")
    with pytest.raises(ValueError, match="management"):
        Settings()
