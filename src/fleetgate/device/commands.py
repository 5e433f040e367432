"""Commands (operations) as a device receives them on ``fg/d/<id>/op/cmd``.

:func:`parse_command` validates the envelope and, for the four operations fleetgate
knows, the fragment; unknown fields anywhere are ignored, a command of another type is
passed on with its payload as it came. What is wrong is said in :class:`BadCommand`.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from fleetgate.device.errors import BadCommand
from fleetgate.domain import commands
from fleetgate.domain.operations import Status

__all__ = [
    "CONFIG_DOWNLOAD",
    "CONFIG_UPLOAD",
    "DEVICE_PROFILE",
    "FIRMWARE",
    "SOFTWARE_UPDATE",
    "Command",
    "ConfigDownload",
    "ConfigUpload",
    "DeviceProfile",
    "FileInfo",
    "FirmwareUpdate",
    "SoftwareChange",
    "Status",
    "UploadTarget",
    "parse_command",
]

# The service's own names for the four operations it knows, and its Status.
FIRMWARE = commands.FIRMWARE
SOFTWARE_UPDATE = commands.SOFTWARE_UPDATE
CONFIG_DOWNLOAD = commands.DOWNLOAD_CONFIG
CONFIG_UPLOAD = commands.UPLOAD_CONFIG
DEVICE_PROFILE = commands.DEVICE_PROFILE


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class FileInfo(_Message):
    """A file of fleetgate to download: a signed URL (no credentials), SHA-256, size."""

    url: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")
    size: int = Field(ge=0)


class UploadTarget(_Message):
    """Where the device sends a snapshot (``c8y_UploadConfigFile``)."""

    url: str = Field(min_length=1)
    method: Literal["PUT", "POST"] = "PUT"


class FirmwareUpdate(_Message):
    name: str
    version: str
    url: str | None = None
    file: FileInfo | None = None


class SoftwareChange(_Message):
    name: str
    version: str = ""
    action: Literal["install", "delete"]
    url: str | None = None
    software_type: str | None = Field(default=None, alias="softwareType")
    file: FileInfo | None = None


class ConfigDownload(_Message):
    config_type: str = Field(alias="type")
    url: str | None = None
    file: FileInfo | None = None
    #: The configuration file's name (a profile's configuration items have one).
    name: str | None = None


class ConfigUpload(_Message):
    config_type: str = Field(alias="type")


class DeviceProfile(_Message):
    """A device profile to apply (``c8y_DeviceProfile``): firmware, then software, then
    configuration files; :func:`fleetgate.device.profiles.apply_profile` runs it."""

    firmware: FirmwareUpdate | None = None
    software: tuple[SoftwareChange, ...] = ()
    configuration: tuple[ConfigDownload, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _install_by_default(cls, data: Any) -> Any:
        # Cumulocity's profile items may leave the action out: they are installed.
        if isinstance(data, dict) and isinstance(data.get("software"), list):
            software = [
                {"action": "install", **s} if isinstance(s, dict) else s for s in data["software"]
            ]
            return {**data, "software": software}
        return data

    @property
    def files(self) -> tuple[FileInfo, ...]:
        items = [self.firmware, *self.software, *self.configuration]
        return tuple(i.file for i in items if i is not None and i.file is not None)


Fragment = (
    FirmwareUpdate
    | tuple[SoftwareChange, ...]
    | ConfigDownload
    | ConfigUpload
    | DeviceProfile
    | None
)
_SOFTWARE_LIST = TypeAdapter(list[SoftwareChange])


class Command(_Message):
    """One operation: its id, command fragment (``type``) and that fragment's payload.

    For the four known types the payload is also available parsed: :attr:`firmware`,
    :attr:`software`, :attr:`config_download`, :attr:`config_upload` (None for another
    type). :attr:`files` lists every file to download, in payload order.
    """

    id: str = Field(min_length=1)
    type: str = Field(min_length=1)
    description: str = ""
    payload: Any = None
    upload: UploadTarget | None = None
    #: The profile applied (``c8y_DeviceProfile`` only): what the device records.
    profile_id: str | None = Field(default=None, alias="profileId")
    profile_name: str | None = Field(default=None, alias="profileName")
    _fragment: Fragment = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _known_fragment(self) -> Command:
        # The fragment is validated with the envelope: a bad command is refused as a whole.
        try:
            self._fragment = _parse_fragment(self.type, self.payload)
        except ValidationError as exc:
            raise ValueError(_describe(exc, "payload")) from None
        if self.type == CONFIG_UPLOAD and self.upload is None:
            raise ValueError("an 'upload' target is missing")
        return self

    @property
    def firmware(self) -> FirmwareUpdate | None:
        return self._fragment if isinstance(self._fragment, FirmwareUpdate) else None

    @property
    def software(self) -> tuple[SoftwareChange, ...] | None:
        return self._fragment if isinstance(self._fragment, tuple) else None

    @property
    def config_download(self) -> ConfigDownload | None:
        return self._fragment if isinstance(self._fragment, ConfigDownload) else None

    @property
    def config_upload(self) -> ConfigUpload | None:
        return self._fragment if isinstance(self._fragment, ConfigUpload) else None

    @property
    def device_profile(self) -> DeviceProfile | None:
        return self._fragment if isinstance(self._fragment, DeviceProfile) else None

    @property
    def files(self) -> tuple[FileInfo, ...]:
        fragment = self._fragment
        if isinstance(fragment, DeviceProfile):
            return fragment.files
        if isinstance(fragment, tuple):
            return tuple(change.file for change in fragment if change.file is not None)
        if isinstance(fragment, FirmwareUpdate | ConfigDownload) and fragment.file is not None:
            return (fragment.file,)
        return ()


def _parse_fragment(kind: str, payload: Any) -> Fragment:
    if kind == FIRMWARE:
        return FirmwareUpdate.model_validate(payload)
    if kind == SOFTWARE_UPDATE:
        return tuple(_SOFTWARE_LIST.validate_python(payload))
    if kind == CONFIG_DOWNLOAD:
        return ConfigDownload.model_validate(payload)
    if kind == CONFIG_UPLOAD:
        return ConfigUpload.model_validate(payload)
    if kind == DEVICE_PROFILE:
        return DeviceProfile.model_validate(payload)
    return None


def parse_command(data: bytes | str) -> Command:
    """The command in ``data`` (JSON), or :class:`BadCommand` saying what is wrong."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadCommand(f"Bad command: not JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise BadCommand("Bad command: not a JSON object")
    op_id = raw.get("id")
    known_id = op_id if isinstance(op_id, str) and op_id else None
    try:
        return Command.model_validate(raw)
    except ValidationError as exc:
        kind = raw.get("type")
        about = f" ({kind})" if isinstance(kind, str) else ""
        raise BadCommand(f"Bad command{about}: {_describe(exc)}", operation_id=known_id) from None


def _describe(error: ValidationError, within: str = "") -> str:
    """``where: what`` for each problem, joined with ``; ``."""
    problems = []
    for item in error.errors():
        where = ".".join([within] * bool(within) + [str(part) for part in item["loc"]])
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)
