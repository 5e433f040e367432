"""Reading request bodies: bounded in size, parsed strictly, with clear 4xx errors.

:func:`parse_json` is the one JSON reader for everything a request carries (bodies, the
``object`` part of an upload). What may be stored is the domain's rule
(:func:`fleetgate.domain.json_input.check_json_value`: no NUL or lone surrogate in any key
or string, finite numbers, bounded depth and keys); this module only adds what HTTP says:

- 400 ``general/badRequest``: empty, not UTF-8 JSON, ``NaN``/``Infinity`` (not JSON
  numbers, though Python reads them), nested too deeply for the parser;
- 422 ``general/validationError``: JSON that cannot be stored (``1e400``, ``\\u0000``,
  ``\\ud800``, more than :data:`MAX_DEPTH` levels, a key over 1,000 characters).

413 for a body over its limit (checked from Content-Length and while reading); 422 for
JSON that is not the object a route needs.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import HTTPException, Request

from fleetgate.domain.errors import ValidationFailed
from fleetgate.domain.ids import is_ascii_digits
from fleetgate.domain.json_input import JsonLimits, check_json_value

MAX_BODY = 1024 * 1024
#: Deepest nesting accepted (objects and arrays); Cumulocity's fragments are shallow.
MAX_DEPTH = 64


def _not_a_number(name: str) -> Any:
    raise HTTPException(
        400, f"the request body is not valid JSON: {name} is not a JSON number (RFC 8259)"
    )


def parse_json(raw: bytes, what: str = "the request body") -> Any:
    """``raw`` as JSON, refused with 400/422 (see the module) unless it can be stored."""
    if not raw.strip():
        raise HTTPException(400, f"{what} is empty; send a JSON object")
    try:
        value = json.loads(raw, parse_constant=_not_a_number)
    except RecursionError:
        raise HTTPException(400, f"{what} is JSON nested too deeply") from None
    except ValueError:
        raise HTTPException(400, f"{what} is not valid JSON (UTF-8)") from None
    check_json_value(value, JsonLimits(max_bytes=len(raw), max_depth=MAX_DEPTH), what=what)
    return value


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
