"""The pure rules of binaries and repositories."""

from __future__ import annotations

import pytest

from fleetgate.api.file_responses import content_disposition
from fleetgate.domain.binaries import (
    binary_id_of_url,
    check_binary_update,
    check_not_binary_fields,
    upload_metadata,
)
from fleetgate.domain.errors import ValidationFailed
from fleetgate.domain.repositories import check_repository_object


def test_binary_urls_are_recognised_by_their_path() -> None:
    assert binary_id_of_url("https://t1.example.com/inventory/binaries/42") == 42
    assert binary_id_of_url("http://127.0.0.1:8080/inventory/binaries/42/") == 42
    assert binary_id_of_url("/inventory/binaries/7?x=1") == 7
    for other in (
        "https://example.com/firmware.bin",
        "/inventory/binaries/",
        "/inventory/binaries/abc",
        "/api/inventory/binaries/5",
        "/inventory/binaries/5/extra",
        "http://[::1/inventory/binaries/5",
    ):
        assert binary_id_of_url(other) is None, other


def test_upload_metadata() -> None:
    meta = upload_metadata({"name": "a", "type": "image/png", "x": {}}, None, None)
    assert (meta.name, meta.type, meta.content_type) == ("a", "image/png", "image/png")
    assert meta.fragments == {"x": {}}
    client = upload_metadata({"name": "a", "type": "c8y_upload"}, "f.png", "image/png")
    assert (client.type, client.content_type) == ("c8y_upload", "image/png")
    explicit = upload_metadata({"contentType": "text/csv", "c8y_IsBinary": ""}, "f", "a/b")
    assert (explicit.name, explicit.content_type, explicit.fragments) == ("f", "text/csv", {})
    bare = upload_metadata({}, "file.bin", None)
    assert (bare.type, bare.content_type) == ("application/octet-stream",) * 2
    with pytest.raises(ValidationFailed, match="needs a name"):
        upload_metadata({}, None, None)
    with pytest.raises(ValidationFailed, match="read-only"):
        upload_metadata({"id": "5", "name": "a"}, None, None)
    with pytest.raises(ValidationFailed, match="contentType"):
        upload_metadata({"name": "a", "contentType": 5}, None, None)


def test_binary_fields_are_read_only() -> None:
    binary = {"c8y_IsBinary": {}, "contentType": "a/b", "length": 3}
    check_binary_update(binary, {"length": 3, "name": "x", "other": 1})
    for change in ({"length": 4}, {"c8y_IsBinary": None}, {"contentType": "c/d"}):
        with pytest.raises(ValidationFailed, match="PUT /inventory/binaries"):
            check_binary_update(binary, change)
    check_binary_update({}, {"length": 4})
    with pytest.raises(ValidationFailed, match="POST /inventory/binaries"):
        check_binary_update({}, {"c8y_IsBinary": {}})
    with pytest.raises(ValidationFailed):
        check_not_binary_fields({"c8y_IsBinary": ""})
    check_not_binary_fields({"c8y_IsBinary": None})


def test_repository_objects() -> None:
    assert check_repository_object("c8y_MQTTDevice", None, {}) is None
    assert check_repository_object("c8y_Firmware", "fw", {}) is None
    version = {"c8y_Firmware": {"version": "1.0", "url": "http://x/fw"}}
    assert check_repository_object("c8y_FirmwareBinary", None, version) == "http://x/fw"
    software = {"c8y_Software": {"version": "2", "url": "/inventory/binaries/3"}}
    assert check_repository_object("c8y_SoftwareBinary", None, software) == "/inventory/binaries/3"
    assert check_repository_object("c8y_ConfigurationDump", "c", {"url": "u"}) == "u"
    for type_, name, fragments, words in (
        ("c8y_Firmware", None, {}, "needs a name"),
        ("c8y_Software", "  ", {}, "needs a name"),
        ("c8y_ConfigurationDump", "c", {}, "needs url"),
        ("c8y_ConfigurationDump", None, {"url": "u"}, "needs a name"),
        ("c8y_FirmwareBinary", None, {}, "needs c8y_Firmware"),
        ("c8y_FirmwareBinary", None, {"c8y_Firmware": "1.0"}, "needs c8y_Firmware"),
        (
            "c8y_FirmwareBinary",
            None,
            {"c8y_Firmware": {"version": 1, "url": ""}},
            "c8y_Firmware.version and c8y_Firmware.url",
        ),
        ("c8y_SoftwareBinary", None, {"c8y_Software": {"version": "1"}}, "c8y_Software.url"),
    ):
        with pytest.raises(ValidationFailed, match=words):
            check_repository_object(type_, name, fragments)


def test_content_disposition() -> None:
    assert content_disposition(None) == "attachment"
    assert content_disposition("a.bin") == 'attachment; filename="a.bin"'
    assert content_disposition('a"b\\c') == (
        "attachment; filename=\"a_b_c\"; filename*=UTF-8''a%22b%5Cc"
    )
    assert content_disposition("ü\r\n.txt") == (
        "attachment; filename=\"_.txt\"; filename*=UTF-8''%C3%BC.txt"
    )
