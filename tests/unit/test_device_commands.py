"""Commands as a device parses them: the four known fragments, files, upload targets;
unknown fields tolerated; bad commands refused with a reason an operator can read."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fleetgate.device import BadCommand, Command, FileInfo, Status, parse_command

SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
FILE = {"url": "http://fg.test/files/17?sig=abc", "sha256": SHA, "size": 4}


def command(**fields: Any) -> bytes:
    return json.dumps({"id": "42", **fields}).encode()


def test_firmware_command_with_its_file() -> None:
    parsed = parse_command(
        command(
            type="c8y_Firmware",
            description="Update firmware",
            payload={"name": "fw", "version": "1.2.0", "url": "http://x/17", "file": FILE},
        )
    )
    assert parsed.id == "42"
    assert parsed.firmware is not None
    assert (parsed.firmware.name, parsed.firmware.version) == ("fw", "1.2.0")
    assert parsed.files == (FileInfo(url=FILE["url"], sha256=SHA, size=4),)
    assert parsed.software is None
    assert parsed.config_download is None


def test_software_update_lists_every_file_in_order() -> None:
    other = {**FILE, "url": "http://fg.test/files/18"}
    parsed = parse_command(
        command(
            type="c8y_SoftwareUpdate",
            payload=[
                {"name": "a", "version": "1", "action": "install", "file": FILE},
                {"name": "b", "version": "2", "action": "delete"},
                {
                    "name": "c",
                    "version": "3",
                    "action": "install",
                    "softwareType": "apt",
                    "file": other,
                },
            ],
        )
    )
    assert parsed.software is not None
    assert [(s.name, s.action) for s in parsed.software] == [
        ("a", "install"),
        ("b", "delete"),
        ("c", "install"),
    ]
    assert parsed.software[2].software_type == "apt"
    assert [f.url for f in parsed.files] == [FILE["url"], other["url"]]


def test_configuration_download_and_upload() -> None:
    download = parse_command(
        command(type="c8y_DownloadConfigFile", payload={"type": "ssh", "url": "u", "file": FILE})
    )
    assert download.config_download is not None
    assert download.config_download.config_type == "ssh"
    assert len(download.files) == 1

    upload = parse_command(
        command(
            type="c8y_UploadConfigFile",
            payload={"type": "agent"},
            upload={"url": "http://fg.test/up/1?sig=x", "method": "PUT"},
        )
    )
    assert upload.config_upload is not None
    assert upload.config_upload.config_type == "agent"
    assert upload.upload is not None
    assert upload.upload.url == "http://fg.test/up/1?sig=x"
    assert upload.files == ()


def test_unknown_fields_are_ignored_everywhere() -> None:
    parsed = parse_command(
        command(
            type="c8y_Firmware",
            future="yes",
            payload={"name": "fw", "version": "1", "extra": 1, "file": {**FILE, "more": []}},
        )
    )
    assert parsed.files[0].size == 4


def test_other_fragments_pass_through_as_created() -> None:
    parsed = parse_command(command(type="c8y_Restart", payload={"delay": 3}))
    assert parsed.payload == {"delay": 3}
    assert parsed.files == ()
    assert parsed.firmware is None


@pytest.mark.parametrize(
    ("data", "reason", "op_id"),
    [
        (b"not json", "not JSON", None),
        (b"[1, 2]", "not a JSON object", None),
        (command(type="c8y_Firmware", id=None), "id", None),
        (command(type="c8y_Firmware", id=42), "id", None),
        (command(payload={}), "type: Field required", "42"),
        (command(type="c8y_Firmware", payload={"name": "fw"}), "payload.version", "42"),
        (
            command(
                type="c8y_Firmware",
                payload={"name": "f", "version": "1", "file": {**FILE, "sha256": "nothex"}},
            ),
            "payload.file.sha256",
            "42",
        ),
        (
            command(type="c8y_SoftwareUpdate", payload=[{"name": "a", "action": "upgrade"}]),
            "payload.0.action",
            "42",
        ),
        (command(type="c8y_SoftwareUpdate", payload={"name": "a"}), "payload", "42"),
        (command(type="c8y_UploadConfigFile", payload={"type": "ssh"}), "upload", "42"),
    ],
)
def test_bad_commands_are_refused_with_a_clear_reason(
    data: bytes, reason: str, op_id: str | None
) -> None:
    with pytest.raises(BadCommand) as caught:
        parse_command(data)
    assert str(caught.value).startswith("Bad command")
    assert reason in str(caught.value)
    assert caught.value.operation_id == op_id


def test_command_is_a_frozen_value() -> None:
    parsed = parse_command(command(type="c8y_Restart"))
    assert isinstance(parsed, Command)
    with pytest.raises(ValueError, match="frozen"):
        parsed.id = "43"  # type: ignore[misc]


def test_final_statuses() -> None:
    assert [s.value for s in Status if s.final] == ["SUCCESSFUL", "FAILED"]
