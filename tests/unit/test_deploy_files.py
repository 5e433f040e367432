"""The Docker deployment files, checked without a Docker engine.

``Dockerfile``, ``broker/Dockerfile``, ``docker-compose.yml``, ``mosquitto.conf`` and
``.env.example`` are parsed and checked against each other and against the code: the
settings tree (``fleetgate.config.Settings``) and the broker template that ``fleetgate up``
renders (``fleetgate.stack.broker.render_config``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from fleetgate.config import MqttSettings, Settings
from fleetgate.stack.broker import BrokerConfig, render_config

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKER_CONF = ROOT / "mosquitto.conf"
SERVICE_DOCKERFILE = ROOT / "Dockerfile"
BROKER_DOCKERFILE = ROOT / "broker" / "Dockerfile"
TEMPLATE = ROOT / "broker" / "mosquitto.conf.template"

SERVICES = {"postgres", "broker-init", "mosquitto", "fleetgate"}
#: The template's hash option is being renamed to ``..._file``; both count as one name.
HASH_OPTION = "plugin_opt_service_password_hash"
HASH_OPTIONS = {HASH_OPTION, f"{HASH_OPTION}_file"}
#: Global directives whose values are paths, which differ between the two by design.
PATH_DIRECTIVES = {"plugin", "persistence_location", HASH_OPTION}
TLS_FILES = ("cafile", "capath", "certfile", "keyfile")
LOOPBACK = {"127.0.0.1", "::1"}
_VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


# ---------------------------------------------------------------------------------------
# mosquitto.conf
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class Listener:
    port: int
    address: str | None
    directives: list[tuple[str, str]]

    def names(self) -> set[str]:
        return {name for name, _ in self.directives}

    def value(self, name: str) -> str | None:
        values = [value for key, value in self.directives if key == name]
        return values[-1] if values else None


@dataclasses.dataclass
class MosquittoConf:
    globals: list[tuple[str, str]]
    listeners: list[Listener]

    def value(self, name: str) -> str | None:
        values = [value for key, value in self.globals if normalise(key) == name]
        return values[-1] if values else None


def normalise(name: str) -> str:
    return HASH_OPTION if name in HASH_OPTIONS else name


def parse_mosquitto_conf(text: str) -> MosquittoConf:
    """Directives before the first ``listener`` are global; each ``listener`` opens a
    section holding the directives up to the next one. ``#`` starts a comment line."""
    globals_: list[tuple[str, str]] = []
    listeners: list[Listener] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, value = line.partition(" ")
        value = value.strip()
        if name == "listener":
            parts = value.split()
            if len(parts) not in (1, 2) or not parts[0].isdigit():
                raise ValueError(f"line {lineno}: bad listener line {raw!r}")
            address = parts[1] if len(parts) == 2 else None
            listeners.append(Listener(int(parts[0]), address, []))
        elif listeners:
            listeners[-1].directives.append((name, value))
        else:
            globals_.append((name, value))
    return MosquittoConf(globals_, listeners)


def rendered_template() -> MosquittoConf:
    """The template as ``fleetgate up`` renders it, with the default ports."""
    mqtt = MqttSettings()
    fields = {field.name: field for field in dataclasses.fields(BrokerConfig)}
    values: dict[str, Any] = {
        "service_port": mqtt.service_port,
        "cert_port": mqtt.cert_port,
        "password_port": mqtt.password_port,
        "bind_address": "0.0.0.0",
        "ca_file": Path("/dummy/certs/ca.crt"),
        "server_cert": Path("/dummy/certs/server.crt"),
        "server_key": Path("/dummy/certs/server.key"),
        "persistence_dir": Path("/dummy/data"),
        "service_username": mqtt.service_username,
        "plugin_path": Path("/dummy/fleetgate_plugin.so"),
    }
    if "service_password_hash_file" in fields:
        values["service_password_hash_file"] = Path("/dummy/service_password.hash")
    else:
        values["service_password_hash"] = "scrypt:14:8:1:00ff:00ff"
    required = {
        name
        for name, field in fields.items()
        if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
    }
    if unknown := required - values.keys():
        pytest.fail(f"BrokerConfig has new required fields {sorted(unknown)}: add them here")
    kwargs = {name: value for name, value in values.items() if name in fields}
    return parse_mosquitto_conf(render_config(BrokerConfig(**kwargs), template=TEMPLATE))


def _comparable_globals(conf: MosquittoConf) -> Counter[str]:
    return Counter(normalise(name) for name, _ in conf.globals if name != "user")


def _global_values(conf: MosquittoConf) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for name, value in conf.globals:
        if normalise(name) not in PATH_DIRECTIVES | {"user"}:
            values.setdefault(name, []).append(value)
    return values


def queue_limits(conf: MosquittoConf) -> dict[str, str]:
    return {name: value for name, value in conf.globals if name.startswith("max_")}


def differences(docker: MosquittoConf, template: MosquittoConf) -> list[str]:
    """What the Docker config does differently from the template (empty: in step)."""
    found: list[str] = []
    ours, theirs = _comparable_globals(docker), _comparable_globals(template)
    if ours != theirs:
        found.append(
            f"global directives: only here {sorted((ours - theirs).elements())}, "
            f"only in the template {sorted((theirs - ours).elements())}"
        )
    ours_values, theirs_values = _global_values(docker), _global_values(template)
    for name in sorted(ours_values.keys() & theirs_values.keys()):
        if ours_values[name] != theirs_values[name]:
            found.append(f"{name}: {ours_values[name]} != template {theirs_values[name]}")
    if len(docker.listeners) != len(template.listeners):
        found.append(f"{len(docker.listeners)} listeners, template {len(template.listeners)}")
    for ours_l, theirs_l in zip(docker.listeners, template.listeners, strict=False):
        where = f"listener {ours_l.port} {ours_l.address}"
        if (ours_l.port, ours_l.address) != (theirs_l.port, theirs_l.address):
            found.append(f"{where}: template has {theirs_l.port} {theirs_l.address}")
        if ours_l.names() != theirs_l.names():
            found.append(
                f"{where}: directives {sorted(ours_l.names())}, template {sorted(theirs_l.names())}"
            )
        for name in ("require_certificate", "protocol"):
            if ours_l.value(name) != theirs_l.value(name):
                found.append(
                    f"{where}: {name} {ours_l.value(name)!r}, template {theirs_l.value(name)!r}"
                )
        for name in TLS_FILES:
            if (ours_l.value(name) is None) != (theirs_l.value(name) is None):
                found.append(f"{where}: {name} present here/template differs")
    return found


# ---------------------------------------------------------------------------------------
# docker-compose.yml, .env.example, Dockerfiles
# ---------------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def service(name: str) -> dict[str, Any]:
    found = compose()["services"][name]
    assert isinstance(found, dict)
    return found


def environment(name: str) -> dict[str, str]:
    env = service(name).get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f".env.example: not NAME=value: {line!r}"
            values[name.strip()] = value.strip()
    return values


def interpolate(value: str) -> str:
    """Compose's ``${VAR...}`` substitution, with .env.example's values or dummies."""
    example = env_example()

    def substitute(match: re.Match[str]) -> str:
        name, kind, default = match.groups()
        if example.get(name):
            return example[name]
        if kind and kind.endswith("-"):
            return default
        return f"dummy-{name.lower().replace('_', '-')}"

    return _VARIABLE.sub(substitute, value).replace("$$", "$")


def volume_target(service_name: str, source: str) -> PurePosixPath:
    for volume in service(service_name).get("volumes", []):
        parts = str(volume).split(":")
        if parts[0] == source:
            return PurePosixPath(parts[1])
    raise AssertionError(f"{service_name} mounts nothing from {source}")


def published_ports(service_name: str) -> dict[int, int]:
    """Container port -> host port."""
    ports: dict[int, int] = {}
    for entry in service(service_name).get("ports", []):
        *host, container = str(entry).split(":")
        container_port = int(container.split("/")[0])
        ports[container_port] = int(host[-1]) if host else container_port
    return ports


def dockerfile(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, f"{path}: dangling continuation line"
    return instructions


def stages(path: Path) -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for keyword, arguments in dockerfile(path):
        if keyword == "FROM":
            found.append([])
        assert found, f"{path}: {keyword} before FROM"
        found[-1].append((keyword, arguments))
    return found


def last(instructions: list[tuple[str, str]], keyword: str) -> str:
    values = [arguments for key, arguments in instructions if key == keyword]
    assert values, f"no {keyword}"
    return values[-1]


def exec_form(arguments: str) -> list[str]:
    parsed = json.loads(arguments)
    assert isinstance(parsed, list), f"not the exec form: {arguments}"
    return [str(item) for item in parsed]


def plugin_copy_destination() -> str:
    runtime = stages(BROKER_DOCKERFILE)[-1]
    copies = [args.split() for key, args in runtime if key == "COPY" and "--from=" in args]
    destinations = [parts[-1] for parts in copies if parts[-1].endswith(".so")]
    assert len(destinations) == 1, f"expected one .so copied from the build stage: {copies}"
    return destinations[0]


def under(path: str, directory: PurePosixPath) -> bool:
    return PurePosixPath(path).is_relative_to(directory)


# ---------------------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------------------


def test_compose_has_the_services_and_no_version_key() -> None:
    data = compose()
    assert set(data["services"]) == SERVICES
    assert "version" not in data


def test_every_compose_variable_is_in_env_example_and_none_is_stale() -> None:
    used = {match.group(1) for match in _VARIABLE.finditer(COMPOSE_FILE.read_text("utf-8"))}
    listed = set(env_example())
    assert used, "docker-compose.yml uses no variables at all?"
    assert used - listed == set(), "used by docker-compose.yml, missing from .env.example"
    assert listed - used == set(), "in .env.example, unused by docker-compose.yml"


def test_env_example_leaves_secrets_empty_with_a_recipe() -> None:
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    secrets = [name for name in env_example() if "PASSWORD" in name]
    assert secrets
    for name in secrets:
        assert env_example()[name] == "", f"{name} must be generated, not shipped"
        index = next(i for i, line in enumerate(lines) if line.startswith(f"{name}="))
        comments = []
        for line in reversed(lines[:index]):
            if not line.startswith("#"):
                break
            comments.append(line)
        assert any("secrets.token_urlsafe" in line for line in comments), name


def test_required_variables_use_the_required_syntax() -> None:
    """Secrets and the database's names must stop compose when unset, not go in empty."""
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    kinds: dict[str, set[str | None]] = {}
    for match in _VARIABLE.finditer(text):
        kinds.setdefault(match.group(1), set()).add(match.group(2))
    for name, value in env_example().items():
        if value == "" or name.startswith("POSTGRES_"):
            assert kinds[name] == {":?"}, f"{name} is used as {kinds[name]}"


@pytest.mark.parametrize("service_name", ["fleetgate", "broker-init"])
def test_fleetgate_environment_names_are_settings(service_name: str) -> None:
    names = [name for name in environment(service_name) if name.startswith("FLEETGATE_")]
    assert names
    for name in names:
        section, sep, field = name.removeprefix("FLEETGATE_").lower().partition("_")
        assert sep, f"{name} is not FLEETGATE_<SECTION>_<FIELD>"
        assert section in Settings.model_fields, f"{name}: no settings section {section!r}"
        model = Settings.model_fields[section].annotation
        assert isinstance(model, type), name
        assert issubclass(model, BaseModel), name
        assert field in model.model_fields, f"{name}: {section} has no field {field!r}"


def settings_from_compose(monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in list(os.environ):
        if name.startswith("FLEETGATE_"):
            monkeypatch.delenv(name)
    for name, value in environment("fleetgate").items():
        monkeypatch.setenv(name, interpolate(value))
    return Settings()


def test_fleetgate_settings_load_and_match_the_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_from_compose(monkeypatch)
    conf = parse_mosquitto_conf(DOCKER_CONF.read_text(encoding="utf-8"))
    service_listeners = [lsn for lsn in conf.listeners if lsn.address in LOOPBACK]
    device_ports = {lsn.port for lsn in conf.listeners if lsn.address not in LOOPBACK}
    assert [lsn.port for lsn in service_listeners] == [settings.mqtt.service_port]
    # The plugin takes the service account from loopback only: the service must dial it.
    assert settings.mqtt.host in LOOPBACK
    assert device_ports == {settings.mqtt.cert_port, settings.mqtt.password_port}
    assert conf.value("plugin_opt_service_username") == settings.mqtt.service_username
    assert settings.mqtt.service_password is not None
    assert settings.seed.admin_password is not None
    assert settings.seed.management_admin_password is not None
    assert settings.seed.bootstrap_password is not None
    assert settings.database.url is not None
    url = settings.database.url.get_secret_value()
    assert re.fullmatch(r"postgresql://[^:@/]+:[^@/]+@postgres:5432/[^/?]+", url), url


def test_fleetgate_shares_the_broker_network_namespace() -> None:
    fleetgate = service("fleetgate")
    assert fleetgate["network_mode"] == "service:mosquitto"
    assert "ports" not in fleetgate  # published by mosquitto, whose namespace it uses
    assert fleetgate["command"] == ["serve"]
    assert fleetgate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert fleetgate["depends_on"]["mosquitto"]["condition"] == "service_started"
    mosquitto = service("mosquitto")
    assert mosquitto["depends_on"]["broker-init"]["condition"] == ("service_completed_successfully")
    assert "pg_isready" in json.dumps(service("postgres")["healthcheck"]["test"])


def test_mosquitto_publishes_the_device_listeners_and_the_api() -> None:
    conf = parse_mosquitto_conf(DOCKER_CONF.read_text(encoding="utf-8"))
    device_ports = {lsn.port for lsn in conf.listeners if lsn.address not in LOOPBACK}
    service_ports = {lsn.port for lsn in conf.listeners if lsn.address in LOOPBACK}
    api_port = int(environment("fleetgate")["FLEETGATE_API_PORT"])
    published = published_ports("mosquitto")
    assert set(published) == device_ports | {api_port}
    assert not service_ports & set(published)
    assert all(published[port] == port for port in device_ports), published
    assert all(lsn.address == "0.0.0.0" for lsn in conf.listeners if lsn.port in device_ports)


def test_build_contexts_dockerfiles_and_copy_sources_exist() -> None:
    expected = {"broker-init": "Dockerfile", "fleetgate": "Dockerfile"}
    expected["mosquitto"] = "broker/Dockerfile"
    for name, dockerfile_path in expected.items():
        build = service(name)["build"]
        context = (COMPOSE_FILE.parent / build["context"]).resolve()
        assert context == ROOT
        assert build["dockerfile"] == dockerfile_path
        path = context / build["dockerfile"]
        assert path.is_file()
        for keyword, arguments in dockerfile(path):
            if keyword == "COPY" and "--from=" not in arguments:
                for source in arguments.split()[:-1]:
                    assert (context / source).exists(), f"{path}: COPY {source} is missing"


def test_broker_config_mount_is_what_the_broker_image_runs() -> None:
    target = volume_target("mosquitto", "./mosquitto.conf")
    cmd = exec_form(last(stages(BROKER_DOCKERFILE)[-1], "CMD"))
    assert cmd[0] == "mosquitto"
    assert cmd[cmd.index("-c") + 1] == str(target)


def test_broker_paths_lie_in_the_mounts_and_the_image() -> None:
    conf = parse_mosquitto_conf(DOCKER_CONF.read_text(encoding="utf-8"))
    assert conf.value("plugin") == plugin_copy_destination()
    certs = volume_target("mosquitto", "./certs")
    tls_files = [n for n in TLS_FILES if n != "capath"]
    tls_paths = [lsn.value(name) for lsn in conf.listeners for name in tls_files]
    assert [path for path in tls_paths if path is not None]
    assert all(under(path, certs) for path in tls_paths if path is not None)
    capaths = [lsn.value("capath") for lsn in conf.listeners if lsn.value("capath")]
    assert capaths
    assert all(under(str(p), volume_target("mosquitto", "trusted-cas")) for p in capaths)
    persistence = conf.value("persistence_location")
    assert persistence
    assert under(persistence, volume_target("mosquitto", "mosquitto-data"))
    hash_file = conf.value(HASH_OPTION)
    assert hash_file
    assert under(hash_file, volume_target("mosquitto", "broker-secrets"))


def test_trusted_cas_are_written_by_fleetgate_and_read_by_mosquitto() -> None:
    """fleetgate writes the capath (sync_capath) into a volume mosquitto mounts read-only."""
    conf = parse_mosquitto_conf(DOCKER_CONF.read_text(encoding="utf-8"))
    (capath,) = [lsn.value("capath") for lsn in conf.listeners if lsn.value("capath")]
    assert capath
    broker_mount = volume_target("mosquitto", "trusted-cas")
    assert PurePosixPath(capath) == broker_mount
    assert "trusted-cas:/mosquitto/trusted:ro" in service("mosquitto")["volumes"]
    fleetgate_mount = volume_target("fleetgate", "trusted-cas")
    assert "trusted-cas:/mosquitto/trusted" in service("fleetgate")["volumes"]
    assert environment("fleetgate")["FLEETGATE_MQTT_CAPATH"] == str(fleetgate_mount)
    assert "trusted-cas" in compose()["volumes"]


def test_broker_init_writes_the_hash_file_the_broker_reads() -> None:
    conf = parse_mosquitto_conf(DOCKER_CONF.read_text(encoding="utf-8"))
    names = {name for name, _ in conf.globals}
    assert f"{HASH_OPTION}_file" in names, "the hash must come from a file, not the config"
    init = service("broker-init")
    command = init["command"]
    assert command[0] == "hash-password"
    output = command[command.index("--output") + 1]
    assert output == conf.value(HASH_OPTION)
    assert under(output, volume_target("broker-init", "broker-secrets"))
    assert "FLEETGATE_MQTT_SERVICE_PASSWORD" in environment("broker-init")
    assert str(volume_target("mosquitto", "broker-secrets")) == str(PurePosixPath(output).parent)
    assert any(
        str(v).endswith(":ro") and str(v).startswith("broker-secrets:")
        for v in service("mosquitto")["volumes"]
    )


def test_docker_conf_has_the_template_directives() -> None:
    docker = parse_mosquitto_conf(DOCKER_CONF.read_text(encoding="utf-8"))
    assert "user" not in {name for name, _ in docker.globals}
    assert differences(docker, rendered_template()) == []


def test_docker_conf_has_the_template_queue_limits() -> None:
    template = queue_limits(rendered_template())
    assert "max_queued_messages" in template
    assert queue_limits(parse_mosquitto_conf(DOCKER_CONF.read_text("utf-8"))) == template


def _mutate(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("max_queued_messages 1000000\n", "max_queued_messages 1000\n"),
        ("max_inflight_bytes 0\n", ""),
        ("require_certificate true\n", "require_certificate false\n"),
        ("capath /mosquitto/trusted/\n", ""),
        ("capath /mosquitto/trusted/\n", "cafile /mosquitto/certs/ca.crt\n"),
        ("listener 18830 127.0.0.1\n", "listener 18830 0.0.0.0\n"),
        ("allow_anonymous false\n", "allow_anonymous true\n"),
        ("plugin_opt_service_password_hash_file ", "plugin_opt_service_password_file "),
        ("require_certificate false\n", "require_certificate false\nlistener 1883\n"),
    ],
)
def test_the_comparison_catches_a_drift(old: str, new: str) -> None:
    drifted = parse_mosquitto_conf(_mutate(DOCKER_CONF.read_text("utf-8"), old, new))
    assert differences(drifted, rendered_template()) != []


def test_the_two_hash_option_names_compare_equal() -> None:
    text = DOCKER_CONF.read_text(encoding="utf-8")
    legacy = _mutate(text, f"{HASH_OPTION}_file ", f"{HASH_OPTION} ")
    assert differences(parse_mosquitto_conf(legacy), rendered_template()) == []


def test_parser_splits_globals_and_listeners() -> None:
    conf = parse_mosquitto_conf(
        "# comment\nallow_anonymous false\n\nlistener 1883\nprotocol mqtt\n"
        "listener 8883 0.0.0.0\n  # indented comment\ncafile /c/ca.crt\n"
    )
    assert conf.globals == [("allow_anonymous", "false")]
    assert [(lsn.port, lsn.address) for lsn in conf.listeners] == [(1883, None), (8883, "0.0.0.0")]
    assert conf.listeners[0].directives == [("protocol", "mqtt")]
    assert conf.listeners[1].directives == [("cafile", "/c/ca.crt")]
    with pytest.raises(ValueError, match="bad listener"):
        parse_mosquitto_conf("listener\n")


def test_service_dockerfile() -> None:
    (stage,) = stages(SERVICE_DOCKERFILE)
    assert last(stage, "FROM") == "python:3.11-slim-bookworm"
    assert exec_form(last(stage, "ENTRYPOINT")) == ["fleetgate"]
    assert exec_form(last(stage, "CMD")) == ["serve"]
    assert last(stage, "USER").split(":")[0] not in {"root", "0"}
    api_port = environment("fleetgate")["FLEETGATE_API_PORT"]
    assert api_port in last(stage, "EXPOSE").split()
    assert any("pip install --no-cache-dir ." in args for key, args in stage if key == "RUN")


def test_broker_dockerfile_builds_the_plugin_and_runs_debian_mosquitto() -> None:
    build, runtime = stages(BROKER_DOCKERFILE)
    assert last(build, "FROM").split()[0] == "debian:bookworm-slim"
    assert last(runtime, "FROM") == "debian:bookworm-slim"
    build_runs = " ".join(args for key, args in build if key == "RUN")
    packages = ["mosquitto-dev", "libmosquitto-dev", "libssl-dev", "gcc", "make", "libc6-dev"]
    for package in packages:
        assert re.search(rf"(?<![\w-]){re.escape(package)}(?![\w-])", build_runs), package
    # The whole directory: the Makefile builds every *.c and *.h in it.
    assert ["broker/", "/src/broker/"] in [args.split() for key, args in build if key == "COPY"]
    assert "make -C /src/broker" in build_runs
    runtime_runs = " ".join(args for key, args in runtime if key == "RUN")
    assert re.search(r"install[^&]*\bmosquitto\b", runtime_runs)
    stage_name = last(build, "FROM").split()[-1]
    assert f"--from={stage_name} /src/broker/build/fleetgate_plugin.so" in " ".join(
        args for key, args in runtime if key == "COPY"
    )
