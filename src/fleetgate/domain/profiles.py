"""Device profiles (the seed's "Managing device profiles"): a firmware version, software
packages and configuration files to deploy together, as Cumulocity models them.

A profile is a managed object of type :data:`PROFILE_TYPE` with :data:`CONTENT`
``{"firmware": {name, version, url}, "software": [{name, version, url, action,
softwareType?}], "configuration": [{name, type, url}]}`` and :data:`FILTER` ``{}`` or
``{"type": "<device type>"}``. Applying it is an operation whose command is
:data:`CONTENT` (copied from the profile), with ``profileId`` and ``profileName`` beside
it; the device records :data:`STATE` ``{profileName, profileId, profileExecuted}``.

Pure rules: reading a profile's content (one firmware at most, bounded lists, every item
complete), which repository entries an item of a profile for a device type may be, whether
a profile applies to a device, a duplicate, the operation that applies one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from fleetgate.domain.errors import ValidationFailed

PROFILE_TYPE = "c8y_Profile"
#: The profile's content, and the command fragment of the operation that applies it.
CONTENT = "c8y_DeviceProfile"
FILTER = "c8y_Filter"
#: The fragment of a device that records the profile applied to it.
STATE = "c8y_Profile"
#: Most software packages and configuration files in one profile.
MAX_SOFTWARE = 200
MAX_CONFIGURATIONS = 100
#: Longest name, version, type or URL of an item.
MAX_TEXT = 2000

Step = Literal["firmware", "software", "configuration"]


@dataclass(frozen=True, slots=True)
class Item:
    """One thing a profile installs: ``step`` says where; ``version`` is a firmware or
    software version, ``config_type`` a configuration's type."""

    step: Step
    name: str
    url: str | None
    version: str | None = None
    action: str = "install"
    config_type: str | None = None

    @property
    def label(self) -> str:
        """How a failure names it: ``software 'agent' 2.1``, ``configuration 'ssh'``."""
        version = f" {self.version}" if self.version else ""
        return f"{self.step} {self.name!r}{version}"


@dataclass(frozen=True, slots=True)
class ProfileContent:
    firmware: Item | None
    software: tuple[Item, ...]
    configuration: tuple[Item, ...]

    @property
    def items(self) -> tuple[Item, ...]:
        """In the order a device installs them: firmware, software, configuration."""
        return (*([self.firmware] if self.firmware else []), *self.software, *self.configuration)


def _invalid(message: str, code: str | None) -> ValidationFailed:
    return ValidationFailed(message, code=code)


def _text(
    obj: dict[str, Any], key: str, where: str, code: str | None, *, required: bool
) -> str | None:
    value = obj.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
        raise _invalid(
            f"{where}.{key} must be a non-empty string of at most {MAX_TEXT} characters", code
        )
    return value


def _object(value: Any, where: str, code: str | None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _invalid(f"{where} must be an object", code)
    return value


def read_content(value: Any, where: str = CONTENT, code: str | None = None) -> ProfileContent:
    """The content of a profile (or of the operation applying one), or
    :class:`ValidationFailed` naming the item and the rule; ``code``: the error code."""
    if value is None:
        return ProfileContent(None, (), ())
    body = _object(value, where, code)
    unknown = sorted(set(body) - {"firmware", "software", "configuration"})
    if unknown:
        raise _invalid(
            f"{where} holds firmware, software and configuration, not {', '.join(unknown)}", code
        )
    firmware = None
    if body.get("firmware") is not None:
        if isinstance(body["firmware"], list):
            raise _invalid(
                f"a profile holds one firmware only: {where}.firmware is an object", code
            )
        fw = _object(body["firmware"], f"{where}.firmware", code)
        at = f"{where}.firmware"
        firmware = Item(
            "firmware",
            str(_text(fw, "name", at, code, required=True)),
            _text(fw, "url", at, code, required=True),
            _text(fw, "version", at, code, required=True),
        )
    software = tuple(
        _software(i, s, where, code)
        for i, s in enumerate(_list(body, "software", where, MAX_SOFTWARE, code))
    )
    configuration = tuple(
        _configuration(i, c, where, code)
        for i, c in enumerate(_list(body, "configuration", where, MAX_CONFIGURATIONS, code))
    )
    return ProfileContent(firmware, software, configuration)


def _list(body: dict[str, Any], key: str, where: str, limit: int, code: str | None) -> list[Any]:
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _invalid(f"{where}.{key} must be a list", code)
    if len(value) > limit:
        raise _invalid(f"{where}.{key} holds at most {limit} entries", code)
    return value


def _software(i: int, value: Any, where: str, code: str | None) -> Item:
    at = f"{where}.software[{i}]"
    item = _object(value, at, code)
    action = item.get("action", "install")
    if action not in ("install", "delete"):
        raise _invalid(f'{at}.action must be "install" or "delete"', code)
    install = action == "install"
    name = str(_text(item, "name", at, code, required=True))
    return Item(
        "software",
        name,
        _text(item, "url", at, code, required=install),
        _text(item, "version", at, code, required=install),
        action,
    )


def _configuration(i: int, value: Any, where: str, code: str | None) -> Item:
    at = f"{where}.configuration[{i}]"
    item = _object(value, at, code)
    config_type = str(_text(item, "type", at, code, required=True))
    name = _text(item, "name", at, code, required=False) or config_type
    return Item(
        "configuration", name, _text(item, "url", at, code, required=True), config_type=config_type
    )


def device_type_of(fragments: dict[str, Any]) -> str | None:
    """The device type a profile is for (:data:`FILTER` ``.type``; None: every type)."""
    found = fragments.get(FILTER)
    if found is None:
        return None
    if not isinstance(found, dict) or set(found) - {"type"}:
        raise ValidationFailed(f'{FILTER} is {{}} or {{"type": "<device type>"}}')
    device_type = found.get("type")
    if device_type is None or device_type == "":
        return None
    if not isinstance(device_type, str) or len(device_type) > MAX_TEXT:
        raise ValidationFailed(f"{FILTER}.type must be a device type (a string)")
    return device_type


def check_profile(name: str | None, fragments: dict[str, Any]) -> ProfileContent:
    """A profile as it would be stored: a name, a filter, its content read."""
    if not isinstance(name, str) or not name.strip():
        raise ValidationFailed(f"a device profile ({PROFILE_TYPE}) needs a name")
    device_type_of(fragments)
    return read_content(fragments.get(CONTENT))


# --- repository entries an item may be -------------------------------------------------


def mismatch(item: Item, device_type: str, entry_types: Sequence[str | None]) -> str | None:
    """Why ``item`` cannot be in a profile for ``device_type``, or None.

    ``entry_types``: the device types of the repository entries the item is (a firmware
    or software by name, a configuration file by URL; None: an entry for every type). The
    seed's rule: with a device type set, only entries matching that type can be added.
    """
    if not entry_types:
        kind = (
            "configuration repository"
            if item.step == "configuration"
            else f"{item.step} repository"
        )
        return (
            f"{item.label} is not in the {kind}; a profile for device type"
            f" {device_type!r} takes its entries only"
        )
    if any(t is None or t == device_type for t in entry_types):
        return None
    others = ", ".join(sorted({repr(t) for t in entry_types}))
    return f"{item.label} is for device type {others}, not {device_type!r}"


# --- applying ----------------------------------------------------------------------------


def profile_mismatch(
    profile_name: str | None, profile_type: str | None, device_type: str | None
) -> str | None:
    """Why a profile for ``profile_type`` (None: any) does not apply to a device of
    ``device_type``, or None when it applies. Single operations are refused with this
    reason (422); bulk operations skip the device with it."""
    if profile_type is None or profile_type == device_type:
        return None
    shown = repr(device_type) if device_type else "no type"
    return (
        f"Profile {profile_name!r} is for devices of type {profile_type!r}; this device has {shown}"
    )


def applies_to(
    profile_name: str | None, profile_fragments: dict[str, Any], device_type: str | None
) -> str | None:
    """:func:`profile_mismatch` for a stored profile's fragments."""
    return profile_mismatch(profile_name, device_type_of(profile_fragments), device_type)


def apply_operation(
    profile_id: int, profile_name: str | None, content: Any, device_id: int
) -> dict[str, Any]:
    """The body of the operation that applies a profile to one device (as Cumulocity's
    UI and thin-edge's tests create it), for ``POST /devicecontrol/operations`` or a bulk
    operation's prototype (without ``deviceId``)."""
    return {
        "deviceId": str(device_id),
        "description": f"Assign device profile {profile_name} to device",
        "profileId": str(profile_id),
        "profileName": profile_name,
        CONTENT: content if content is not None else {},
    }


def duplicate_name(name: str | None) -> str:
    """The seed's name of a duplicate: "Copy of <name>"."""
    return f"Copy of {name or ''}".rstrip()


def applied_state(profile_id: str, profile_name: str, *, executed: bool) -> dict[str, Any]:
    """The :data:`STATE` fragment a device records."""
    return {"profileName": profile_name, "profileId": profile_id, "profileExecuted": executed}
