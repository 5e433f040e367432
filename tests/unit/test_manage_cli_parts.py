"""The pure parts of the operator commands: the table printer, the exit status of each
error kind, and what the argument parser accepts."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetgate.cli import _parser, main
from fleetgate.domain.errors import (
    AccessDenied,
    AuthenticationFailed,
    ConfigurationError,
    Conflict,
    FleetgateError,
    NotFound,
    ServiceUnavailable,
    ValidationFailed,
)
from fleetgate.watch.client import ApiUnavailable
from fleetgate.watch.manage_command import operation_body
from fleetgate.watch.render import cell_width
from fleetgate.watch.text_table import PartlyFailed, exit_status, format_table, pick, text
from fleetgate.watch.upload import CHUNK, MultipartFile, bar


def test_columns_are_as_wide_as_their_widest_cell() -> None:
    lines = format_table(["ID", "NAME"], [["1", "gateway-one"], ["1234", "m"]])
    assert lines == ["ID    NAME", "1     gateway-one", "1234  m"]


def test_wide_characters_count_two_cells_and_control_characters_are_blanked() -> None:
    lines = format_table(["NAME", "TYPE"], [["計器", "a"], ["x\x1b[31m", "b"]])
    assert lines == ["NAME    TYPE", "計器    a", "x [31m  b"]


def test_missing_cells_are_empty_and_an_empty_list_is_its_header() -> None:
    assert format_table(["A", "B"], [["1"]]) == ["A  B", "1"]
    assert format_table(["A", "B"], []) == ["A  B"]


def test_json_values_as_cells() -> None:
    assert [text(None), text(True), text(False), text(3), text("a\nb")] == [
        "",
        "yes",
        "no",
        "3",
        "a b",
    ]
    body = {"fleetgate_Lifecycle": {"status": "ONLINE"}, "name": "x"}
    assert pick(body, "fleetgate_Lifecycle.status") == "ONLINE"
    assert pick(body, "name.first") is None
    assert pick(body, "absent.status") is None


cells = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)


def _from_cell(line: str, cells: int) -> str:
    """``line`` after its first ``cells`` terminal cells."""
    used = 0
    for index, ch in enumerate(line):
        if used >= cells:
            return line[index:]
        used += cell_width(ch)
    return ""


@given(st.lists(st.lists(cells, min_size=3, max_size=3), max_size=6))
def test_every_column_starts_at_the_same_cell(rows: list[list[str]]) -> None:
    headers = ["A", "BB", "C"]
    lines = format_table(headers, rows)
    assert len(lines) == len(rows) + 1
    widths = [max(cell_width(text(row[i])) for row in [headers, *rows]) for i in range(3)]
    starts = [0, widths[0] + 2, widths[0] + widths[1] + 4]
    for line, row in zip(lines, [headers, *rows], strict=True):
        assert line == line.rstrip()
        assert "\n" not in line
        assert "\x1b" not in line
        for start, cell in zip(starts, row, strict=True):
            assert _from_cell(line, start).startswith(text(cell).rstrip())


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ConfigurationError("no stack file"), 2),
        (NotFound("404"), 3),
        (AuthenticationFailed("401"), 4),
        (AccessDenied("403"), 4),
        (Conflict("409"), 5),
        (ApiUnavailable("503"), 6),
        (ServiceUnavailable("database away", retry_after=1), 6),
        (ValidationFailed("422"), 1),
        (FleetgateError("400"), 1),
        (PartlyFailed("1 of 3 rows failed"), 7),
    ],
)
def test_the_exit_status_of_each_kind_of_error(error: FleetgateError, status: int) -> None:
    assert exit_status(error) == status


def test_an_unreachable_api_exits_6(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["certs", "--url", "http://127.0.0.1:1", "--user", "t1/a", "--password", "p", "list"]
    assert main(argv) == 6
    assert "cannot reach http://127.0.0.1:1" in capsys.readouterr().err


def test_a_missing_stack_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["users", "--stack", f"{tmp_path}/none.json", "list"]) == 2
    assert "is `fleetgate up` running?" in capsys.readouterr().err


def test_the_parser_accepts_what_the_docs_show() -> None:
    args = _parser().parse_args(["devices", "list", "--lifecycle", "online", "--limit", "5"])
    assert (args.devices_command, args.lifecycle, args.limit, args.json) == (
        "list",
        "ONLINE",
        5,
        False,
    )
    args = _parser().parse_args(["certs", "add", "ca.pem", "--auto-registration", "--json"])
    assert (args.certs_command, args.auto_registration, args.disabled, args.json) == (
        "add",
        True,
        False,
        True,
    )
    args = _parser().parse_args(["users", "--json", "roles", "anna", "--add", "R1", "--add", "R2"])
    assert (args.add, args.remove, args.json) == (["R1", "R2"], [], True)
    argv = ["repo", "software", "upload", "a.deb", "--name", "agent", "--version", "1.0"]
    args = _parser().parse_args([*argv, "--software-type", "apt"])
    assert (args.repo_kind, args.repo_command, args.software_type, args.device_type) == (
        "software",
        "upload",
        "apt",
        None,
    )
    argv = ["repo", "configuration", "upload", "sshd_config", "--name", "ssh"]
    args = _parser().parse_args([*argv, "--configuration-type", "ssh", "--json"])
    assert (args.repo_kind, args.configuration_type, args.description, args.json) == (
        "configuration",
        "ssh",
        None,
        True,
    )
    args = _parser().parse_args(["repo", "configuration", "list", "--limit", "7"])
    assert (args.repo_kind, args.repo_command, args.limit) == ("configuration", "list", 7)


@pytest.mark.parametrize(
    "argv",
    [
        ["devices", "list", "--limit", "0"],
        ["devices", "list", "--lifecycle", "asleep"],
        ["users", "create", "anna"],  # no --new-password
        ["certs", "enable"],  # no fingerprint
        ["requests", "--user", "admin", "list"],  # not tenant/username
        ["repo", "software", "upload", "a.deb", "--name", "agent"],  # no --version
        ["repo", "configuration", "upload", "f", "--name", "c", "--version", "1"],  # no versions
        ["repo", "configuration", "upload", "f"],  # no --name
    ],
)
def test_usage_errors_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        _parser().parse_args(argv)
    assert caught.value.code == 2


def test_tenants_unreachable_exits_6_without_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["tenants", "--url", "http://127.0.0.1:1", "--user", "management/admin"]
    assert main([*argv, "--password", "p", "list"]) == 6
    assert "cannot reach http://127.0.0.1:1" in capsys.readouterr().err


def test_the_body_of_ops_create() -> None:
    args = _parser().parse_args(
        ["ops", "create", "--device", "7", "--firmware", "fw,1.2,https://x/fw.bin?a=1,2"]
    )
    assert operation_body(args) == {
        "description": "Update firmware to fw 1.2",
        "c8y_Firmware": {"name": "fw", "version": "1.2", "url": "https://x/fw.bin?a=1,2"},
        "deviceId": "7",
    }
    args = _parser().parse_args(
        ["ops", "create", "--device", "7", "--body", '{"c8y_Restart": {}}', "--description", "r"]
    )
    assert operation_body(args) == {"c8y_Restart": {}, "description": "r", "deviceId": "7"}


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--firmware", "fw,1.2"], "--firmware takes NAME,VERSION,URL"),
        (["--firmware", "fw,,https://x"], "--firmware takes NAME,VERSION,URL"),
        (["--body", "{not json"], "--body is not JSON"),
        (["--body", "[1]"], "--body must be a JSON object"),
    ],
)
def test_a_bad_operation_is_a_usage_error(flags: list[str], said: str) -> None:
    args = _parser().parse_args(["ops", "create", "--device", "7", *flags])
    with pytest.raises(ConfigurationError, match=said) as caught:
        operation_body(args)
    assert exit_status(caught.value) == 2


def test_the_progress_bar() -> None:
    assert bar(0, 1_000_000, width=10) == "[..........]   0 %  0.0/1.0 MB"
    assert bar(450_000, 1_000_000, width=10) == "[####......]  45 %  0.5/1.0 MB"
    assert bar(1_000_000, 1_000_000, width=10) == "[##########] 100 %  1.0/1.0 MB"
    assert bar(0, 0, width=4) == "[####] 100 %  0.0/0.0 MB"


async def test_a_multipart_upload_streams_the_file_and_tells_its_progress(tmp_path: Path) -> None:
    path = tmp_path / 'a "b".csv'
    data = b"x" * (CHUNK * 2 + 5)
    path.write_bytes(data)
    told: list[tuple[int, int]] = []
    upload = MultipartFile(path, on_progress=lambda sent, total: told.append((sent, total)))
    body = b"".join([chunk async for chunk in upload.chunks()])
    assert len(body) == upload.length
    assert told == [(CHUNK, len(data)), (CHUNK * 2, len(data)), (len(data), len(data))]
    boundary = upload.content_type.partition("boundary=")[2]
    head, _, rest = body.partition(b"\r\n\r\n")
    assert head.startswith(f"--{boundary}\r\n".encode())
    assert b'name="file"; filename="a _b_.csv"' in head
    assert rest == data + f"\r\n--{boundary}--\r\n".encode()
