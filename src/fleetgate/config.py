"""One typed settings tree, loaded once at start-up.

Every value can come from the environment with the prefix ``FLEETGATE_`` and ``_``
between section and field: ``FLEETGATE_DATABASE_URL``, ``FLEETGATE_API_PORT``,
``FLEETGATE_MQTT_CERT_PORT``, ``FLEETGATE_MQTT_SERVICE_PASSWORD`` … Command-line flags
of ``fleetgate up`` override the environment. Each component receives only its own
section (``settings.api``, ``settings.mqtt`` …), never the whole tree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from fleetgate.domain.devices import is_device_id

Port = int


def reveal(value: SecretStr | None) -> str | None:
    """The plain value of an optional secret setting."""
    return value.get_secret_value() if value is not None else None


class DatabaseSettings(BaseModel):
    """PostgreSQL. ``url`` is required by ``serve``; ``up`` fills it from its private cluster."""

    url: SecretStr | None = None
    pool_min_size: int = Field(default=1, ge=1)
    pool_max_size: int = Field(default=10, ge=1)
    #: Seconds the service waits on PostgreSQL before it answers 503: for a new
    #: connection, for a connection of the pool, for each SQL command (see
    #: ``fleetgate.db.pool.Timeouts``).
    connect_timeout: float = Field(default=5.0, gt=0)
    acquire_timeout: float = Field(default=10.0, gt=0)
    command_timeout: float = Field(default=10.0, gt=0)


class MqttSettings(BaseModel):
    """The broker as the service sees it, and the listeners devices use."""

    #: Where the service connects (the loopback-only service listener).
    host: str = "127.0.0.1"
    service_port: Port = Field(default=18830, ge=1, le=65535)
    service_username: str = "fleetgate-service"
    service_password: SecretStr | None = None
    #: Client id of the service's device-traffic connection. Its broker session is
    #: persistent (device reports wait there while the service is down): keep it stable,
    #: and give each service instance on one broker its own. It must not be a device id
    #: (it holds a ``:``), or a device of that id could take the session over.
    device_link_client_id: str = "fleetgate:devices"
    #: Listeners for devices: X.509 client certificates, and username/password.
    cert_port: Port = Field(default=8883, ge=1, le=65535)
    password_port: Port = Field(default=8884, ge=1, le=65535)
    #: The directory of trusted device CAs that mosquitto's certificate listener reads
    #: (OpenSSL hashed-directory form); the service writes it from the trust store.
    #: ``up`` uses ``<home>/mosquitto/trusted``; ``serve`` needs it set.
    capath: Path | None = None
    #: Address the device listeners bind to, and the host name devices are told to use.
    bind_address: str = "0.0.0.0"
    public_host: str = "localhost"
    #: The PEM file of the CA that signs the broker's server certificate: what a device
    #: must trust (shown in a device's credentials view). ``up`` uses its own PKI's.
    broker_ca_file: Path | None = None
    #: Seconds to wait between reconnect attempts (doubles up to ``reconnect_max``).
    reconnect_min: float = Field(default=0.5, gt=0)
    reconnect_max: float = Field(default=10.0, gt=0)

    @field_validator("device_link_client_id")
    @classmethod
    def _not_a_device_id(cls, value: str) -> str:
        if is_device_id(value):
            raise ValueError(
                f"{value!r} could be a device's id (a device could take the service's session"
                " over): use a client id with a ':' in it, such as 'fleetgate:devices'"
            )
        return value


class ApiSettings(BaseModel):
    host: str = "127.0.0.1"
    port: Port = Field(default=8080, ge=1, le=65535)
    #: Base URL written into ``self`` links; derived from host and port when unset.
    public_url: str | None = None
    #: Who may read ``GET /metrics`` (FLEETGATE_API_METRICS_AUTH): "management", a user
    #: of the management tenant with ROLE_TENANT_MANAGEMENT_READ or _ADMIN; or "none".
    metrics_auth: Literal["management", "none"] = "management"

    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        return f"http://{self.host}:{self.port}"


class SeedSettings(BaseModel):
    """What exists after the first start: the management tenant and one ordinary tenant.

    Passwords have no defaults: ``up`` generates them per home; ``serve`` needs them
    set for its very first start (later starts ignore them, the database wins).
    """

    management_tenant: str = "management"
    tenant: str = "t100"
    admin_username: str = "admin"
    admin_password: SecretStr | None = None
    management_admin_password: SecretStr | None = None
    bootstrap_username: str = "devicebootstrap"
    bootstrap_password: SecretStr | None = None


class FilesSettings(BaseModel):
    """Files of ``/inventory/binaries`` and the signed URLs devices download them with."""

    #: The content-addressed store (``<sha256[:2]>/<sha256>``); ``up`` uses ``<home>/files``.
    store: Path = Path("files")
    #: Key of the signed download/upload URLs in commands. ``up`` generates one per home;
    #: without it ``serve`` makes one per process (URLs then die with the process).
    url_secret: SecretStr | None = None
    #: Seconds a signed URL in a command stays valid.
    url_ttl: float = Field(default=3600.0, gt=0)


class OperationsSettings(BaseModel):
    """Server-side limits of device operations."""

    #: Seconds an operation may stay PENDING (device offline …) before it FAILS.
    pending_timeout: float = Field(default=7 * 24 * 3600.0, gt=0)
    #: Seconds an operation may stay EXECUTING before it FAILS.
    executing_timeout: float = Field(default=3600.0, gt=0)
    #: Seconds between two sweeps for timed-out operations.
    sweep_interval: float = Field(default=10.0, gt=0)
    #: Seconds the bulk operation scheduler waits when no bulk operation is due.
    bulk_interval: float = Field(default=0.2, gt=0)


class MigrationsSettings(BaseModel):
    """Device migrations between tenants (decision 0014)."""

    #: Seconds a migration request and its verification code stay valid (10 minutes;
    #: shorter only to test expiry end to end).
    code_ttl: float = Field(default=600.0, gt=0, le=86400)


class TraceSettings(BaseModel):
    """Message tracing (docs/decisions/0016)."""

    #: Seconds between two sweeps that end expired traces (any instance may sweep).
    sweep_interval: float = Field(default=5.0, gt=0)
    #: Seconds between two reloads of the traced devices from the database (what another
    #: instance started or stopped is known here after at most this).
    refresh_interval: float = Field(default=2.0, gt=0)


class StackSettings(BaseModel):
    """``fleetgate up`` only: where the embedded stack lives and what it runs on."""

    home: Path = Path(".fleetgate")
    certs_dir: Path = Path("certs")
    postgres_port: Port = Field(default=15432, ge=1, le=65535)
    #: Service processes ``up`` runs (decision 0018): 1 runs the service inside ``up``;
    #: more run ``fleetgate serve`` children on API ports ``api.port``, ``api.port + 1`` …
    instances: int = Field(default=1, ge=1, le=64)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FLEETGATE_",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="ignore",
    )

    database: DatabaseSettings = DatabaseSettings()
    mqtt: MqttSettings = MqttSettings()
    api: ApiSettings = ApiSettings()
    seed: SeedSettings = SeedSettings()
    files: FilesSettings = FilesSettings()
    operations: OperationsSettings = OperationsSettings()
    migrations: MigrationsSettings = MigrationsSettings()
    trace: TraceSettings = TraceSettings()
    stack: StackSettings = StackSettings()
    log_level: str = "INFO"
    #: "text" (one line a record, for people) or "json" (one JSON object a line, for
    #: log collectors): FLEETGATE_LOG_FORMAT or ``--log-format``.
    log_format: Literal["text", "json"] = "text"
