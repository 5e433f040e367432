"""Reading request bodies: bounded in size, parsed with clear 4xx errors."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from fleetgate.domain.errors import ValidationFailed

MAX_BODY = 1024 * 1024


async def json_object(request: Request, limit: int = MAX_BODY) -> dict[str, Any]:
    """The request's JSON object body, read with a size limit; a clear 4xx otherwise."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ValidationFailed(f"request body larger than {limit} bytes")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise ValidationFailed(f"request body larger than {limit} bytes")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ValidationFailed("request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ValidationFailed("request body must be a JSON object")
    return body
