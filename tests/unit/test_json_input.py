"""Each way a JSON document from outside is refused, with the reason."""

from __future__ import annotations

import pytest

from fleetgate.domain.errors import ValidationFailed
from fleetgate.domain.json_input import JsonLimits, check_json_value, parse_json

LIMITS = JsonLimits(max_bytes=1000, max_depth=4, max_key=10)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"a": NaN}', "NaN is not a JSON number"),
        (b'{"a": -Infinity}', "-Infinity is not a JSON number"),
        (b'{"a": Infinity}', "Infinity is not a JSON number"),
        (b'{"a": 1e999}', "out of range"),
        (b'{"a": -1e999}', "out of range"),
        (b'{"a": "x\\u0000y"}', "NUL character"),
        (b'{"\\u0000": 1}', "NUL character (\\u0000) in a key"),
        (b'{"a": "\\ud800"}', "lone surrogate"),
        (b'["\\udfff"]', "lone surrogate"),
        (b'{"a": [[[[1]]]]}', "nested deeper than 4"),
        (b"[" * 50_000 + b"]" * 50_000, "larger than 1000 bytes"),
        (b'{"abcdefghijk": 1}', "key longer than 10"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"{", "not JSON"),
        (b"", "not JSON"),
        (b'{"a": 1} x', "not JSON"),
    ],
)
def test_refused(raw: bytes, reason: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_json(raw, LIMITS)
    assert reason in caught.value.message


def test_recursion_is_refused_as_depth() -> None:
    deep = b"[" * 5_000 + b"]" * 5_000
    with pytest.raises(ValidationFailed, match="nested deeper than 4"):
        parse_json(deep, JsonLimits(max_bytes=20_000, max_depth=4))


def test_a_huge_integer_is_refused_not_raised() -> None:
    with pytest.raises(ValidationFailed, match="not JSON"):
        parse_json(b"9" * 5000, JsonLimits(max_bytes=10_000))


def test_what_names_the_document() -> None:
    with pytest.raises(ValidationFailed, match=r"^the request body is not JSON"):
        parse_json(b"{", LIMITS, what="the request body")


def test_valid_documents_pass() -> None:
    assert parse_json(b'{"a": [1, 2.5, "x", null, true], "b": {"c": {}}}', LIMITS) == {
        "a": [1, 2.5, "x", None, True],
        "b": {"c": {}},
    }
    assert parse_json(b'"plain"', LIMITS) == "plain"


def test_parsed_values_are_checked_too() -> None:
    with pytest.raises(ValidationFailed, match="not finite"):
        check_json_value({"a": float("nan")}, LIMITS)
    deep: list[object] = []
    for _ in range(10_000):  # deeper than any recursion limit: checked iteratively
        deep = [deep]
    with pytest.raises(ValidationFailed, match="nested deeper"):
        check_json_value(deep, LIMITS)
