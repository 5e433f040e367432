"""The strict JSON reader of request bodies: what Python's json takes but PostgreSQL's
jsonb and text refuse never gets past it."""

from __future__ import annotations

import json

import pytest
from fastapi import HTTPException
from hypothesis import given
from hypothesis import strategies as st

from fleetgate.api.bodies import MAX_DEPTH, parse_json
from fleetgate.domain.errors import ValidationFailed


def refused(raw: bytes) -> tuple[int, str]:
    with pytest.raises((HTTPException, ValidationFailed)) as caught:
        parse_json(raw)
    error = caught.value
    if isinstance(error, HTTPException):
        return error.status_code, str(error.detail)
    return error.status, error.message


@pytest.mark.parametrize(
    ("raw", "status", "words"),
    [
        (b"", 400, "empty"),
        (b"  \n", 400, "empty"),
        (b'{"a": NaN}', 400, "NaN is not a JSON number"),
        (b'{"a": [Infinity]}', 400, "Infinity is not a JSON number"),
        (b'{"a": -Infinity}', 400, "-Infinity is not a JSON number"),
        (b'{"a": 1e400}', 422, "not finite"),
        (b'{"a": -1.5e999}', 422, "not finite"),
        (b'{"name": "a\\u0000b"}', 422, "holds a NUL character (\\u0000) in a string"),
        (b'{"a\\u0000": 1}', 422, "holds a NUL character (\\u0000) in a key"),
        (b'{"a": {"b": ["x", "\\u0000"]}}', 422, "holds a NUL character"),
        (b'{"a": "\\ud800"}', 422, "lone surrogate in a string"),
        (b'{"\\udfff": 1}', 422, "lone surrogate in a key"),
        (b'{"a": "\x00"}', 400, "not valid JSON"),
        (b"\xff\xfe{}", 400, "not valid JSON"),
        (b'{"a": 1', 400, "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "nested too deeply"),
        (b'{"' + b"k" * 1001 + b'": 1}', 422, "key longer than 1000 characters"),
        (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), 422, "deeper than 64 levels"),
    ],
)
def test_what_is_refused_and_how(raw: bytes, status: int, words: str) -> None:
    got_status, message = refused(raw)
    assert got_status == status
    assert words in message
    message.encode("utf-8")  # printable: a lone surrogate in a key is shown escaped


def test_what_is_taken() -> None:
    nested: list[object] = []
    for _ in range(MAX_DEPTH - 1):
        nested = [nested]
    assert parse_json(json.dumps(nested).encode()) == nested
    assert parse_json(
        b'{"a": 1.5, "b": 10000000000000000000000, "c": "\\u00e9\\ud83d\\ude00"}'
    ) == {
        "a": 1.5,
        "b": 10**22,
        "c": "\u00e9\U0001f600",
    }


@given(st.binary() | st.text().map(str.encode))
def test_any_bytes_are_a_value_or_a_4xx(raw: bytes) -> None:
    outcome: int = 200
    try:
        parse_json(raw)
    except HTTPException as exc:
        outcome = exc.status_code
    except ValidationFailed as exc:
        outcome = exc.status
    assert outcome in (200, 400, 422)


json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(json_values)
def test_what_it_takes_postgresql_can_store(value: object) -> None:
    raw = json.dumps(value).encode()  # Python writes NaN and Infinity, and NUL escaped
    try:
        parsed = parse_json(raw)
    except (HTTPException, ValidationFailed):
        return
    stored = json.dumps(parsed, allow_nan=False)  # raises for NaN/Infinity
    assert "\\u0000" not in stored
    stored.encode("utf-8")  # raises for a lone surrogate
