"""The strict JSON reader: whatever the bytes, a storable value or ValidationFailed."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from fleetgate.domain.errors import ValidationFailed
from fleetgate.domain.json_input import JsonLimits, parse_json, storable_text

LIMITS = JsonLimits(max_bytes=4096, max_depth=8, max_key=50)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


def _storable(value: Any, depth: int = 0) -> None:
    """Asserts what parse_json promises of a value it returns."""
    if isinstance(value, dict):
        assert depth < LIMITS.max_depth
        for key, child in value.items():
            assert storable_text(key)
            assert len(key) <= LIMITS.max_key
            _storable(child, depth + 1)
    elif isinstance(value, list):
        assert depth < LIMITS.max_depth
        for child in value:
            _storable(child, depth + 1)
    elif isinstance(value, str):
        assert storable_text(value)
        value.encode("utf-8")
    elif isinstance(value, float):
        assert math.isfinite(value)


@given(raw=st.binary(max_size=300))
def test_any_bytes_give_a_storable_value_or_validation_failed(raw: bytes) -> None:
    try:
        value = parse_json(raw, LIMITS)
    except ValidationFailed:
        return
    _storable(value)


@given(value=json_values)
def test_python_json_output_gives_a_storable_value_or_validation_failed(value: Any) -> None:
    raw = json.dumps(value).encode()
    try:
        parsed = parse_json(raw, LIMITS)
    except ValidationFailed:
        return
    _storable(parsed)
    assert json.loads(json.dumps(parsed, allow_nan=False)) == parsed


@given(value=json_values)
def test_storable_documents_are_read_back_unchanged(value: Any) -> None:
    try:
        raw = json.dumps(value, allow_nan=False).encode()
    except ValueError:
        return
    try:
        _storable(json.loads(raw))
    except AssertionError:
        return  # too deep, NUL, surrogate: refused, as the other tests show
    assert parse_json(raw, LIMITS) == json.loads(raw)
