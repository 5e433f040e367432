"""Firmware, software and configuration repositories: managed objects of known types.

As Cumulocity models them:

- firmware ``type: c8y_Firmware`` (``name``, ``description``, ``c8y_Filter.type`` = device
  type); each version is a child addition ``type: c8y_FirmwareBinary`` with
  ``c8y_Firmware: {"version", "url"}`` (a patch adds ``c8y_Patch.dependency``);
- software ``type: c8y_Software`` (``name``, ``softwareType``, ``c8y_Filter``); versions
  ``type: c8y_SoftwareBinary`` with ``c8y_Software: {"version", "url"}``;
- configuration files ``type: c8y_ConfigurationDump`` with ``name``, ``description``,
  ``deviceType``, ``configurationType`` and ``url``.

A device can only install what it can download, so an entry without its version or URL
is refused when it is written rather than when an operation fails on a device.
"""

from __future__ import annotations

from typing import Any

from fleetgate.domain.errors import ValidationFailed

FIRMWARE = "c8y_Firmware"
FIRMWARE_BINARY = "c8y_FirmwareBinary"
SOFTWARE = "c8y_Software"
SOFTWARE_BINARY = "c8y_SoftwareBinary"
CONFIGURATION = "c8y_ConfigurationDump"

#: Version entries: (type, the fragment holding version and url).
_VERSIONS = {FIRMWARE_BINARY: FIRMWARE, SOFTWARE_BINARY: SOFTWARE}
#: Repository entries that an operator finds by name.
_NAMED = {FIRMWARE: "firmware", SOFTWARE: "software", CONFIGURATION: "configuration file"}


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def check_repository_object(
    type: str | None, name: str | None, fragments: dict[str, Any]
) -> str | None:
    """Refuse (:class:`ValidationFailed`) a repository entry that lacks what devices need.

    Returns the entry's download URL (a version's or a configuration file's), which the
    caller must check when it names one of our binaries; None for other objects.
    """
    if type in _NAMED and not _text(name):
        raise ValidationFailed(f"a {_NAMED[type]} ({type}) needs a name")
    if type in _VERSIONS:
        fragment = _VERSIONS[type]
        value = fragments.get(fragment)
        if not isinstance(value, dict):
            raise ValidationFailed(f"a {type} needs {fragment}: {{version, url}}")
        missing = [k for k in ("version", "url") if not _text(value.get(k))]
        if missing:
            raise ValidationFailed(
                f"a {type} needs {' and '.join(f'{fragment}.{k}' for k in missing)}"
                " (non-empty strings)"
            )
        return str(value["url"])
    if type == CONFIGURATION:
        url = fragments.get("url")
        if not _text(url):
            raise ValidationFailed(f"a {CONFIGURATION} needs url (a non-empty string)")
        return str(url)
    return None
