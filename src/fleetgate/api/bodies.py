"""Reading request bodies: bounded in size, parsed strictly, with clear 4xx errors.

:func:`parse_json` is the one JSON reader for everything a request carries (bodies, the
``object`` part of an upload). It refuses what Python's ``json`` would take but
PostgreSQL's ``jsonb``/``text`` would not, so nothing unstorable gets past the edge:

- 400 ``general/badRequest``: empty, not UTF-8 JSON, ``NaN``/``Infinity`` (not JSON
  numbers, though Python reads them), nested too deeply for the parser;
- 422 ``general/validationError``: a number too large to be a float (``1e400``), a
  string or key holding NUL or a lone surrogate (:mod:`fleetgate.domain.text`), nesting
  deeper than :data:`MAX_DEPTH`; the message names where (``$.c8y_Firmware.name``).

413 for a body over its limit (checked from Content-Length and while reading); 422 for
JSON that is not the object a route needs.
"""

from __future__ import annotations

import json
import math
from typing import Any

from fastapi import HTTPException, Request

from fleetgate.domain.errors import ValidationFailed
from fleetgate.domain.ids import is_ascii_digits
from fleetgate.domain.text import unstorable

MAX_BODY = 1024 * 1024
#: Deepest nesting accepted (objects and arrays); Cumulocity's fragments are shallow.
MAX_DEPTH = 64

#: A place in the body: None for the top, else (parent, key or index).
_Where = tuple["_Where", str | int] | None


def _not_a_number(name: str) -> Any:
    raise HTTPException(
        400, f"the request body is not valid JSON: {name} is not a JSON number (RFC 8259)"
    )


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValidationFailed(f"the number {text[:40]} is too large to be stored")
    return value


def parse_json(raw: bytes, what: str = "the request body") -> Any:
    """``raw`` as JSON, refused with 400/422 (see the module) unless it can be stored."""
    if not raw.strip():
        raise HTTPException(400, f"{what} is empty; send a JSON object")
    try:
        value = json.loads(raw, parse_constant=_not_a_number, parse_float=_finite)
    except RecursionError:
        raise HTTPException(400, f"{what} is JSON nested too deeply") from None
    except ValueError:
        raise HTTPException(400, f"{what} is not valid JSON (UTF-8)") from None
    _check_storable(value, what)
    return value


def _check_storable(value: Any, what: str) -> None:
    stack: list[tuple[Any, _Where, int]] = [(value, None, 0)]
    while stack:
        item, where, depth = stack.pop()  # depth: how many arrays/objects hold ``item``
        if depth >= MAX_DEPTH and isinstance(item, dict | list):
            raise ValidationFailed(
                f"{what} is nested deeper than {MAX_DEPTH} levels (at {_path(where)})"
            )
        if isinstance(item, str):
            problem = unstorable(item)
            if problem is not None:
                raise ValidationFailed(f"{_path(where)} {problem}")
        elif isinstance(item, dict):
            for key, child in item.items():
                problem = unstorable(key)
                if problem is not None:
                    raise ValidationFailed(f"the key {_path((where, key))} {problem}")
                stack.append((child, (where, key), depth + 1))
        elif isinstance(item, list):
            stack.extend((child, (where, index), depth + 1) for index, child in enumerate(item))


def _path(where: _Where) -> str:
    """``$.a.b[3]``, printable (a lone surrogate in a key is shown escaped)."""
    parts: list[str] = []
    while where is not None:
        where, key = where
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key}")
    text = "$" + "".join(reversed(parts))
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The whole request body, or 413 once it is larger than ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and is_ascii_digits(declared) and int(declared) > limit:
        raise HTTPException(413, f"the request body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"the request body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def json_object(request: Request, limit: int = MAX_BODY) -> dict[str, Any]:
    """The request body as a JSON object, read with a size limit and :func:`parse_json`."""
    body = parse_json(await read_body(request, limit))
    if not isinstance(body, dict):
        raise ValidationFailed("the request body must be a JSON object")
    return body
