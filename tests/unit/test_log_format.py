"""JSON log lines: one object a record, with the fields a collector indexes, the
traceback when there is one and the extra fields a call passed."""

from __future__ import annotations

import json
import logging
import sys

from fleetgate.log_format import JsonFormatter


def record(message: str, *args: object, exc: bool = False, **extra: object) -> logging.LogRecord:
    made = logging.getLogger("fleetgate.test").makeRecord(
        "fleetgate.test", logging.WARNING, __file__, 1, message, args,
        sys.exc_info() if exc else None, extra=extra,
    )  # fmt: skip
    return made


def test_a_record_is_one_json_object_on_one_line() -> None:
    line = JsonFormatter().format(record("device %s: %d messages\nrefused", "d1", 3, device="d1"))
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["level"] == "WARNING"
    assert parsed["logger"] == "fleetgate.test"
    assert parsed["message"] == "device d1: 3 messages\nrefused"
    assert parsed["device"] == "d1"
    assert parsed["time"].endswith("Z")
    assert "exception" not in parsed


def test_an_exception_and_unserialisable_extras_are_kept() -> None:
    try:
        raise ValueError("bad payload")
    except ValueError:
        made = record("failed", exc=True, payload=b"\xff", where=object())
    parsed = json.loads(JsonFormatter().format(made))
    assert "ValueError: bad payload" in parsed["exception"]
    assert parsed["payload"] == str(b"\xff")
    assert parsed["where"].startswith("<object object")
