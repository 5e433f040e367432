"""Numeric ids as requests carry them: the one parser every path, query and body id uses.

Managed objects, binaries and operations are numbered by PostgreSQL ``bigint`` identity
columns, so an id is 1 to 2^63-1. A request gives it as text (or, in a JSON body, as a
number); only ASCII digits are digits here. Python's ``str.isdigit`` also says yes to
``³`` and ``٣``, which ``int()`` then refuses or reads as another number, and anything
past 2^63-1 overflows the database's parameter: both were 500s.
"""

from __future__ import annotations

from fleetgate.domain.errors import ValidationFailed

#: The largest id PostgreSQL's bigint holds.
MAX_ID = 2**63 - 1
#: Digits of MAX_ID: a longer string (leading zeros aside) is out of range.
_MAX_DIGITS = len(str(MAX_ID))


def is_ascii_digits(text: str) -> bool:
    """True when ``text`` is one or more of the ASCII digits ``0`` to ``9``, nothing else."""
    return bool(text) and text.isascii() and text.isdigit()


def parse_id(raw: object, what: str = "managed object") -> int:
    """The id in ``raw`` (a string of ASCII digits, or a JSON integer), 1 to 2^63-1.

    Anything else is a :class:`ValidationFailed` (422) naming ``what`` (``"operation"``
    …); the message shows at most the first 40 characters of what was sent.
    """
    if isinstance(raw, bool):
        raise _not_an_id(raw, what)
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, str) and is_ascii_digits(raw):
        stripped = raw.lstrip("0")
        if len(stripped) > _MAX_DIGITS:
            raise _not_an_id(raw, what)
        value = int(stripped or "0")
    else:
        raise _not_an_id(raw, what)
    if not 1 <= value <= MAX_ID:
        raise _not_an_id(raw, what)
    return value


def _not_an_id(raw: object, what: str) -> ValidationFailed:
    shown = repr(raw) if not isinstance(raw, str) or len(raw) <= 40 else repr(raw[:40]) + "…"
    return ValidationFailed(
        f"{what} id {shown} is invalid: an id is a whole number from 1 to {MAX_ID}"
    )
