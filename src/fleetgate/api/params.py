"""Path and query values: every one must be text PostgreSQL can store.

One check for all routes (an application-wide dependency, run before each route's own):
a NUL (``%00``) in ``?type=``, ``/identity/externalIds/{type}/{value}``, a user name or a
request id reached the database and was a 500. Decoding already turns bytes that are not
UTF-8 into U+FFFD, so NUL is what is left to refuse (:mod:`fleetgate.domain.text`).
"""

from __future__ import annotations

from fastapi import Request

from fleetgate.domain.errors import ValidationFailed
from fleetgate.domain.text import unstorable


def _shown(name: str) -> str:
    return repr(name.encode("utf-8", "backslashreplace").decode("utf-8")[:40])


async def storable_parameters(request: Request) -> None:
    """Refuse (422) a request whose path or query holds text that cannot be stored."""
    for name, value in request.path_params.items():
        problem = unstorable(value) if isinstance(value, str) else None
        if problem is not None:
            raise ValidationFailed(f"the path segment {name} {problem}")
    for name, value in request.query_params.multi_items():
        problem = unstorable(name) or unstorable(value)
        if problem is not None:
            raise ValidationFailed(f"the query parameter {_shown(name)} {problem}")
