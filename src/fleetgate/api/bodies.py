"""Reading request bodies and path ids: bounded in size, parsed with clear 4xx errors.

413 for a body over the limit (checked from Content-Length and while reading), 400 for
an empty body or one that is not JSON, 422 for JSON that is not an object.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import HTTPException, Request

from fleetgate.domain.errors import ValidationFailed

MAX_BODY = 1024 * 1024


async def json_object(request: Request, limit: int = MAX_BODY) -> dict[str, Any]:
    """The request body as a JSON object, read with a size limit."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"the request body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"the request body is larger than {limit} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise HTTPException(400, "the request body is empty; send a JSON object")
    try:
        body = json.loads(raw)
    except ValueError:
        raise HTTPException(400, "the request body is not valid JSON (UTF-8)") from None
    except RecursionError:
        raise HTTPException(400, "the request body is JSON nested too deeply") from None
    if not isinstance(body, dict):
        raise ValidationFailed("the request body must be a JSON object")
    return body
