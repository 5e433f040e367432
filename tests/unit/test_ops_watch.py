"""``ops watch`` without a server: the table model, the renderer, the command's pieces."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fleetgate.domain.errors import ConfigurationError
from fleetgate.watch import add_parser
from fleetgate.watch.command import LiveScreen, PlainLog, endpoint_from
from fleetgate.watch.render import cell_width, fit, inert, plain_line, render_table, summary
from fleetgate.watch.table import ChangeKind, OperationRow, OperationTable, command_fragment

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def op(
    op_id: str | int,
    status: str = "PENDING",
    *,
    at: int = 0,
    device: str = "sim-0001",
    reason: str | None = None,
    fragment: str = "c8y_Firmware",
    **extra: Any,
) -> dict[str, Any]:
    """Cumulocity's operation JSON; ``at`` is the status time in seconds after T0."""
    body: dict[str, Any] = {
        "id": str(op_id),
        "deviceId": "1234",
        "deviceName": device,
        "status": status,
        "creationTime": T0.isoformat().replace("+00:00", "Z"),
        "statusTime": (T0 + timedelta(seconds=at)).isoformat().replace("+00:00", "Z"),
        fragment: {"name": "fw", "version": "1.0"},
        **extra,
    }
    if reason is not None:
        body["failureReason"] = reason
    return body


def row(*args: Any, **kwargs: Any) -> OperationRow:
    return OperationRow.from_json(op(*args, **kwargs))


def table_of(*rows: OperationRow, statuses: tuple[str, ...] = ()) -> OperationTable:
    table = OperationTable(statuses)
    for r in rows:
        table.apply(r)
    return table


# --- reading an operation ---------------------------------------------------------------


def test_an_operation_is_read_from_cumulocitys_json() -> None:
    r = OperationRow.from_json(
        {
            "id": "42",
            "self": "http://x/devicecontrol/operations/42",
            "deviceId": "1234",
            "deviceName": "sim-0001",
            "status": "FAILED",
            "failureReason": "disk full",
            "creationTime": "2026-03-01T12:00:00.000Z",
            "statusTime": "2026-03-01T12:00:05.250+01:00",
            "description": "Update firmware",
            "bulkOperationId": "7",
            "c8y_Firmware": {"name": "fw", "version": "2.0"},
        }
    )
    assert (r.id, r.device, r.fragment, r.status, r.failure_reason) == (
        "42",
        "sim-0001",
        "c8y_Firmware",
        "FAILED",
        "disk full",
    )
    assert r.status_time == datetime(2026, 3, 1, 11, 0, 5, 250000, tzinfo=UTC)


def test_the_device_is_its_id_when_it_has_no_name() -> None:
    r = OperationRow.from_json({"id": 1, "deviceId": "1234", "status": "PENDING"})
    assert (r.id, r.device, r.status_time) == ("1", "1234", None)


@pytest.mark.parametrize("body", [{}, {"id": ""}, {"id": None}, {"id": True}, {"id": [1]}])
def test_something_without_an_id_is_not_an_operation(body: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="not an operation"):
        OperationRow.from_json(body)


def test_the_command_is_the_first_c8y_object_else_another_object() -> None:
    assert command_fragment({"id": "1", "c8y_Flag": True, "c8y_Restart": {}}) == "c8y_Restart"
    assert command_fragment({"id": "1", "delivery": {}, "acme_Reboot": {}}) == "acme_Reboot"
    assert command_fragment({"id": "1", "c8y_Flag": True}) == "c8y_Flag"
    assert command_fragment({"id": "1", "status": "PENDING"}) == ""


# --- merging: order, no going back, counts ----------------------------------------------


def test_applying_adds_updates_and_recognises_repeats() -> None:
    table = OperationTable()
    assert table.apply(row(1)).kind is ChangeKind.ADDED
    assert table.apply(row(1)).kind is ChangeKind.UNCHANGED
    change = table.apply(row(1, "EXECUTING", at=1))
    assert change.kind is ChangeKind.UPDATED
    assert change.previous is not None
    assert change.previous.status == "PENDING"
    assert table.get("1") == row(1, "EXECUTING", at=1)


def test_an_older_event_never_overwrites_a_newer_status() -> None:
    table = table_of(row(1, "SUCCESSFUL", at=10))
    change = table.apply(row(1, "EXECUTING", at=5))
    assert change.kind is ChangeKind.STALE
    assert change.previous == row(1, "SUCCESSFUL", at=10)
    assert table.get("1") == row(1, "SUCCESSFUL", at=10)


def test_at_the_same_instant_an_operation_only_moves_forward() -> None:
    table = table_of(row(1, "EXECUTING", at=5))
    assert table.apply(row(1, "PENDING", at=5)).kind is ChangeKind.STALE
    assert table.apply(row(1, "FAILED", at=5, reason="no")).kind is ChangeKind.UPDATED
    assert table.apply(row(1, "EXECUTING", at=5)).kind is ChangeKind.STALE
    assert table.get("1") == row(1, "FAILED", at=5, reason="no")


def test_without_status_times_the_order_of_statuses_decides() -> None:
    def bare(status: str) -> OperationRow:
        return OperationRow.from_json({"id": "1", "status": status})

    table = table_of(bare("EXECUTING"))
    assert table.apply(bare("PENDING")).kind is ChangeKind.STALE
    assert table.apply(bare("SUCCESSFUL")).kind is ChangeKind.UPDATED


def test_a_later_status_time_wins_even_against_the_usual_order() -> None:
    # the server's clock is the authority: a re-run operation may be PENDING again
    table = table_of(row(1, "FAILED", at=5, reason="no"))
    assert table.apply(row(1, "PENDING", at=6)).kind is ChangeKind.UPDATED


def test_counts_follow_every_change_in_status_order() -> None:
    table = table_of(row(1), row(2), row(3, "EXECUTING", at=1), row(4, "SUCCESSFUL", at=2))
    table.apply(row(1, "FAILED", at=3, reason="x"))
    table.apply(row(2, "EXECUTING", at=1))
    table.apply(row(2, "PENDING", at=0))  # stale: changes nothing
    assert table.counts() == {"EXECUTING": 2, "SUCCESSFUL": 1, "FAILED": 1}
    assert list(table.counts()) == ["EXECUTING", "SUCCESSFUL", "FAILED"]
    assert len(table) == 4


def test_unknown_statuses_are_counted_after_the_known_ones() -> None:
    table = table_of(row(1, "WAITING"), row(2, "PENDING"))
    assert list(table.counts()) == ["PENDING", "WAITING"]


def test_the_latest_change_comes_first() -> None:
    table = table_of(row(1, at=1), row(2, at=3), row(3, at=2), row(10, at=2))
    assert [r.id for r in table.latest()] == ["2", "10", "3", "1"]
    table.apply(row(1, "EXECUTING", at=4))
    assert [r.id for r in table.latest(2)] == ["1", "2"]


def test_a_status_filter_shows_and_counts_only_those_statuses() -> None:
    table = table_of(row(1), row(2, "FAILED", at=1, reason="x"), statuses=("FAILED",))
    assert [r.id for r in table.latest()] == ["2"]
    assert table.counts() == {"FAILED": 1}
    table.apply(row(1, "FAILED", at=2, reason="y"))
    table.apply(row(2, "PENDING", at=3))  # retried: leaves the filter
    assert [r.id for r in table.latest()] == ["1"]
    assert table.apply(row(2, "FAILED", at=1, reason="x")).kind is ChangeKind.STALE
    assert [r.id for r in table.latest()] == ["1"]


# --- rendering ----------------------------------------------------------------------------


def busy_table(count: int = 30) -> OperationTable:
    statuses = ["PENDING", "EXECUTING", "SUCCESSFUL", "FAILED"]
    return table_of(
        *(
            row(
                100 + i,
                statuses[i % 4],
                at=i,
                device=f"simulated-device-with-a-long-name-{i:04d}",
                fragment="c8y_SoftwareUpdate" if i % 2 else "c8y_Firmware",
                reason="the download failed: connection reset by peer " * 3 if i % 4 == 3 else None,
            )
            for i in range(count)
        )
    )


@pytest.mark.parametrize("width", [20, 33, 40, 57, 64, 80, 101, 132, 250])
def test_no_line_is_wider_than_the_terminal(width: int) -> None:
    for colour in (False, True):
        lines = render_table(busy_table(), width=width, title="operations · live", colour=colour)
        for line in lines:
            assert cell_width(strip_colour(line)) <= width, line


def test_a_wide_terminal_shows_every_column_and_whole_times() -> None:
    lines = render_table(busy_table(), width=200)
    assert lines[1].split() == [
        "ID",
        "DEVICE",
        "TYPE",
        "STATUS",
        "FAILURE",
        "REASON",
        "STATUS",
        "TIME",
    ]
    assert lines[2].startswith("129  ")
    assert lines[2].endswith("2026-03-01 12:00:29Z")


def test_a_narrow_terminal_cuts_text_with_an_ellipsis_then_drops_the_reason() -> None:
    wide = render_table(busy_table(), width=132)
    assert wide[2].split()[1] == "simulated-device-with-a…"  # 24 cells at most
    medium = render_table(busy_table(), width=80)
    assert medium[1] == ("ID   DEVICE       TYPE          STATUS      FAILURE REASON  STATUS TIME")
    assert medium[4] == (
        "127  simulated-…  c8y_Softwar…  FAILED      the download …  2026-03-01 12:00:27Z"
    )
    short_time = render_table(busy_table(), width=60)
    assert short_time[4] == "127  simulat…  c8y_Sof…  FAILED      the downl…  12:00:27"
    narrow = render_table(busy_table(), width=45)
    assert narrow[1] == "ID   DEVICE  TYPE     STATUS      STATUS TIME"
    assert narrow[2] == "129  simul…  c8y_So…  EXECUTING   12:00:29"


def test_the_table_fills_at_most_the_screen_latest_first() -> None:
    lines = render_table(busy_table(), width=120, height=10, title="t")
    assert len(lines) == 10
    ids = [line.split()[0] for line in lines[3:]]
    assert ids == [str(129 - i) for i in range(7)]


def test_an_empty_table_says_so() -> None:
    assert render_table(OperationTable(), width=80) == [
        "total 0",
        "ID  DEVICE  TYPE    STATUS      FAILURE REASON  STATUS TIME",
        "(no operations yet)",
    ]


def test_the_summary_counts_per_status_and_in_total() -> None:
    table = busy_table(10)
    assert summary(table.counts(), width=80) == (
        "PENDING 3  EXECUTING 3  SUCCESSFUL 2  FAILED 2  total 10"
    )
    assert summary(table.counts(), width=20) == "PENDING 3  EXECUTIN…"


def test_plain_mode_has_no_escape_sequences_and_colour_marks_only_statuses() -> None:
    plain = "\n".join(render_table(busy_table(), width=120))
    assert "\x1b" not in plain
    coloured = render_table(busy_table(), width=120, colour=True)
    failed = next(line for line in coloured if "FAILED" in line and "download" in line)
    assert "\x1b[1;31mFAILED" in failed
    assert strip_colour("\n".join(coloured)) == plain


def test_text_from_devices_cannot_drive_the_terminal() -> None:
    evil = row(1, "FAILED", reason="\x1b[2J\x1b[31mgotcha\r\nline two\u202e\ud800")
    lines = render_table(table_of(evil), width=120)
    assert all(ch.isprintable() for line in lines for ch in line)
    assert "[2J [31mgotcha  line two" in lines[2]
    assert inert("tab\there") == "tab here"


def test_wide_characters_take_two_cells() -> None:
    assert cell_width("設備") == 4
    assert cell_width("e\u0301") == 1
    assert fit("設備設備", 5) == "設備…"
    assert fit("設備設備", 4) == "設… "  # a wide character does not fit in one cell
    assert fit("abc", 5) == "abc  "
    table = table_of(row(1, device="工場の温度センサー第一号機の制御装置"))
    for line in render_table(table, width=60):
        assert cell_width(line) <= 60


def test_a_plain_line_is_tab_separated_for_scripts() -> None:
    assert plain_line(row(42, "FAILED", at=5, reason="no\tspace")) == (
        "2026-03-01 12:00:05Z\t42\tsim-0001\tc8y_Firmware\tFAILED\tno space"
    )
    assert plain_line(row(43, "PENDING")) == (
        "2026-03-01 12:00:00Z\t43\tsim-0001\tc8y_Firmware\tPENDING"
    )


def strip_colour(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)


# --- the command's pieces ----------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fleetgate")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["ops", "watch", *argv])


def test_the_command_line_takes_filters_and_several_statuses() -> None:
    args = parse("--device", "1234", "--bulk", "7", "--status", "failed,pending", "EXECUTING")
    assert (args.command, args.ops_command, args.device, args.bulk) == ("ops", "watch", "1234", "7")
    assert args.status == [["FAILED", "PENDING"], ["EXECUTING"]]
    assert args.stack == Path(".fleetgate/stack.json")
    assert not args.once


@pytest.mark.parametrize("argv", [["--status", "DONE"], ["--user", "admin"]])
def test_bad_flags_are_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse(*argv)
    assert "fleetgate ops watch: error" in capsys.readouterr().err


def write_stack(path: Path) -> Path:
    path.write_text(
        json.dumps(
            {
                "api_url": "http://127.0.0.1:8080",
                "admin": {"tenant": "t1", "username": "admin", "password": "secret"},
            }
        )
    )
    return path


def test_the_endpoint_comes_from_the_stack_file(tmp_path: Path) -> None:
    stack = str(write_stack(tmp_path / "stack.json"))
    endpoint = endpoint_from(parse("--stack", stack))
    assert (endpoint.url, endpoint.user, endpoint.password) == (
        "http://127.0.0.1:8080",
        "t1/admin",
        "secret",
    )
    assert "secret" not in repr(endpoint)
    other = endpoint_from(parse("--stack", stack, "--user", "t1/ops", "--password", "pw"))
    assert (other.user, other.password) == ("t1/ops", "pw")


def test_another_url_never_gets_the_stacks_password(tmp_path: Path) -> None:
    stack = str(write_stack(tmp_path / "stack.json"))
    with pytest.raises(ConfigurationError, match="--url needs"):
        endpoint_from(parse("--stack", stack, "--url", "http://elsewhere"))
    endpoint = endpoint_from(parse("--url", "http://x", "--user", "t/u", "--password", "p"))
    assert (endpoint.url, endpoint.user, endpoint.password) == ("http://x", "t/u", "p")


@pytest.mark.parametrize("content", [None, "{", "[]", '{"api_url": "http://x"}'])
def test_a_missing_or_damaged_stack_file_is_a_clear_error(
    tmp_path: Path, content: str | None
) -> None:
    path = tmp_path / "stack.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigurationError, match=str(path)):
        endpoint_from(parse("--stack", str(path)))


def test_plain_log_prints_applied_changes_of_shown_operations_only() -> None:
    out = io.StringIO()
    table = OperationTable(["FAILED", "SUCCESSFUL"])
    log = PlainLog(out, table)
    for r in (row(1), row(1, "SUCCESSFUL", at=2), row(1, "EXECUTING", at=1), row(2, "FAILED")):
        log.changed(table.apply(r))
    assert [line.split("\t")[1:5:3] for line in out.getvalue().splitlines()] == [
        ["1", "SUCCESSFUL"],
        ["2", "FAILED"],
    ]


async def test_the_live_screen_redraws_at_most_ten_times_a_second() -> None:
    out = io.StringIO()
    table = OperationTable()
    screen = LiveScreen(out, table, "operations", colour=False)
    task = asyncio.create_task(screen.run())
    for i in range(200):  # 200 changes in about 0.3 s
        screen.changed(table.apply(row(i)))
        await asyncio.sleep(0.0015)
    screen.connection("live")
    await asyncio.sleep(0.25)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    text = out.getvalue()
    draws = text.count("\x1b[H")
    assert 2 <= draws <= 8  # the first at once, then every 0.1 s, and one at the end
    last = text.rsplit("\x1b[H", 1)[1]
    assert "live · operations" in last
    assert "total 200" in last
    assert text.startswith("\x1b[?25l\x1b[2J")
    assert text.endswith("\x1b[?25h\n")
