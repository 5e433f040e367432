"""JSON from outside (devices, operators, files), read strictly and within bounds.

Python's ``json`` reads more than JSON and more than PostgreSQL stores: ``NaN`` and
``Infinity`` (and ``1e999``, which becomes infinity) are not JSON and ``jsonb`` refuses
them; ``\\u0000`` decodes to a NUL that ``text`` and ``jsonb`` refuse; a lone surrogate
(``\\ud800``) decodes to a string that cannot be encoded as UTF-8; and a deeply nested
document exhausts the interpreter's recursion. Each of these once stopped a whole batch
of device messages. :func:`parse_json` refuses all of them, with a message that says
which rule was broken, so that a value it returns can be stored as it is.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from fleetgate.domain.errors import ValidationFailed

#: NUL and the UTF-16 surrogates: never storable text.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class JsonLimits:
    """How much of a document is acceptable at one edge."""

    max_bytes: int
    #: Nesting of objects and arrays; a scalar document has depth 0, ``{}`` depth 1.
    max_depth: int = 32
    #: Longest object key, in characters.
    max_key: int = 1000


def _refuse_constant(name: str) -> Any:
    raise ValidationFailed(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValidationFailed(f"the number {text[:40]} is out of range")
    return value


def parse_json(raw: bytes, limits: JsonLimits, *, what: str = "the payload") -> Any:
    """The JSON document in ``raw`` (UTF-8), checked against ``limits``, or
    :class:`ValidationFailed` naming what is wrong; never another exception."""
    if len(raw) > limits.max_bytes:
        raise ValidationFailed(f"{what} is larger than {limits.max_bytes} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationFailed(f"{what} is not UTF-8") from None
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except ValidationFailed as exc:
        raise ValidationFailed(f"{what} is not JSON: {exc.message}") from None
    except RecursionError:
        raise ValidationFailed(f"{what} is nested deeper than {limits.max_depth} levels") from None
    except ValueError as exc:  # JSONDecodeError, or an integer of over 4,300 digits
        raise ValidationFailed(f"{what} is not JSON: {_first_line(exc)}") from None
    check_json_value(value, limits, what=what)
    return value


def check_json_value(value: Any, limits: JsonLimits, *, what: str = "the payload") -> None:
    """Refuse a parsed document that is too deep or holds unstorable text (NUL, lone
    surrogates) in a key or a string, or a non-finite number. Iterative: any depth."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if depth + 1 > limits.max_depth:
                raise ValidationFailed(f"{what} is nested deeper than {limits.max_depth} levels")
            for key, child in item.items():
                _check_text(key, what, key=True)
                if len(key) > limits.max_key:
                    raise ValidationFailed(
                        f"{what} has a key longer than {limits.max_key} characters"
                    )
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            if depth + 1 > limits.max_depth:
                raise ValidationFailed(f"{what} is nested deeper than {limits.max_depth} levels")
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            _check_text(item, what, key=False)
        elif isinstance(item, float) and not math.isfinite(item):
            raise ValidationFailed(f"{what} holds a number that is not finite")


def _check_text(text: str, what: str, *, key: bool) -> None:
    found = _UNSTORABLE.search(text)
    if found is None:
        return
    kind = "NUL character (\\u0000)" if found.group() == "\x00" else "lone surrogate"
    place = "a key" if key else "a string"
    raise ValidationFailed(f"{what} holds a {kind} in {place}")


def storable_text(text: str) -> bool:
    """True when ``text`` can be stored in PostgreSQL (no NUL, no lone surrogate)."""
    return _UNSTORABLE.search(text) is None


def _first_line(exc: ValueError) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
