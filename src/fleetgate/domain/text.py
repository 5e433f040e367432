"""Text that PostgreSQL can store, said as a reason: the phrase the edges put in a 422.

The rule itself (no NUL, no lone surrogate) is :func:`fleetgate.domain.json_input.storable_text`;
this names which part of it a string breaks, for requests checked outside JSON (path and
query values, CSV rows, multipart headers).
"""

from __future__ import annotations

from fleetgate.domain.json_input import storable_text


def unstorable(text: str) -> str | None:
    """Why ``text`` cannot be stored (a phrase to follow its name), or None when it can."""
    if storable_text(text):
        return None
    if "\x00" in text:
        return "holds a NUL character (\\u0000), which cannot be stored"
    return "is not valid Unicode: it holds a lone surrogate (\\ud800 to \\udfff)"
