"""Binaries: files kept as managed objects (``c8y_IsBinary``), as Cumulocity keeps them.

A binary's managed object carries ``c8y_IsBinary``, ``contentType`` and ``length``; its
content lives in the content-addressed file store, named by its SHA-256. Those three
fragments describe the stored file, so they change only when the file does
(``PUT /inventory/binaries/{id}``), never through ``/inventory/managedObjects``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fleetgate.domain.devices import split_managed_object_body
from fleetgate.domain.errors import ValidationFailed
from fleetgate.domain.ids import parse_id
from fleetgate.domain.text import unstorable

IS_BINARY = "c8y_IsBinary"
#: Fragments that describe the stored file: set by the server, read-only for clients.
FILE_FRAGMENTS = frozenset({IS_BINARY, "contentType", "length"})
DEFAULT_CONTENT_TYPE = "application/octet-stream"

_BINARY_PATH = re.compile(r"/inventory/binaries/([0-9]+)/?", re.ASCII)


@dataclass(frozen=True, slots=True)
class BinaryFile:
    """Where a binary's bytes are and what they are."""

    id: int
    tenant_id: str
    name: str | None
    sha256: str
    length: int
    content_type: str


@dataclass(frozen=True, slots=True)
class NewContent:
    sha256: str
    length: int
    content_type: str


@dataclass(frozen=True, slots=True)
class StoredFile:
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class StagedFile:
    """A complete upload in a temporary file, not yet in the store."""

    path: Path
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class UploadMetadata:
    """What an upload's ``object`` part (and its ``file`` part's headers) say."""

    name: str
    type: str
    content_type: str
    #: The owner the client gave, if any (else the uploading user).
    owner: str | None
    fragments: dict[str, Any]


def upload_metadata(
    obj: dict[str, Any], filename: str | None, part_content_type: str | None
) -> UploadMetadata:
    """The binary described by the ``object`` part of ``POST /inventory/binaries``.

    Content type: ``contentType`` if given, else ``type`` when it is a media type (as
    Cumulocity's clients send it), else the ``file`` part's Content-Type, else
    ``application/octet-stream``. Name: ``name``, else the part's file name. The type of
    the managed object is ``type`` as given, else the content type. ``c8y_IsBinary``,
    ``contentType`` and ``length`` are the server's to set; other fragments are kept.
    """
    plain, fragments = split_managed_object_body(obj)
    # The part's headers come from the multipart body itself: checked like any request text.
    filename = storable("the file part's file name", filename)
    part_content_type = storable("the file part's Content-Type", part_content_type)
    declared = fragments.get("contentType")
    if declared is not None and not isinstance(declared, str):
        raise ValidationFailed("contentType must be a string")
    type_ = plain.get("type")
    content_type = (
        declared
        or (type_ if type_ and "/" in type_ else None)
        or part_content_type
        or DEFAULT_CONTENT_TYPE
    )
    name = plain.get("name") or filename
    if not name:
        raise ValidationFailed("a binary needs a name: give object.name or a file name")
    extra = {k: v for k, v in fragments.items() if k not in FILE_FRAGMENTS}
    return UploadMetadata(name, type_ or content_type, content_type, plain.get("owner"), extra)


def storable(what: str, value: str | None) -> str | None:
    """``value`` unless it cannot be stored (ValidationFailed naming ``what``)."""
    problem = unstorable(value) if value is not None else None
    if problem is not None:
        raise ValidationFailed(f"{what} {problem}")
    return value


def file_fragments(content_type: str, length: int) -> dict[str, Any]:
    """The fragments of a binary's managed object that describe its file."""
    return {IS_BINARY: {}, "contentType": content_type, "length": length}


def binary_id_of_url(url: str) -> int | None:
    """The binary id when ``url`` names one of ours (its path, after any scheme and host, is
    ``/inventory/binaries/<id>``); None for any other URL."""
    try:
        path = urlsplit(url.strip()).path
    except ValueError:
        return None
    found = _BINARY_PATH.fullmatch(path)
    if found is None:
        return None
    try:
        return parse_id(found.group(1), "binary")
    except ValidationFailed:
        return None


def check_not_binary_fields(fragments: dict[str, Any]) -> None:
    """A managed object created through ``/inventory/managedObjects`` cannot claim to be a
    binary: a binary without a file would break every download of it."""
    if fragments.get(IS_BINARY) is not None:
        raise ValidationFailed(
            f"{IS_BINARY} is set by the server: upload files with POST /inventory/binaries"
        )


def check_binary_update(current: dict[str, Any], changes: dict[str, Any]) -> None:
    """Refuse changes to the file fragments of a binary (and making an object a binary).

    Sending the current value again is accepted, so a managed object read with GET can be
    sent back with other changes.
    """
    if IS_BINARY not in current:
        check_not_binary_fields(changes)
        return
    changed = sorted(k for k in FILE_FRAGMENTS if k in changes and changes[k] != current.get(k))
    if changed:
        raise ValidationFailed(
            f"{', '.join(changed)} of a binary describe its file: replace the file with"
            " PUT /inventory/binaries/{id} instead"
        )
