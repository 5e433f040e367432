"""Text that PostgreSQL can store: the one rule for every string a request carries.

PostgreSQL's ``text`` (and the strings inside ``jsonb``) refuse the NUL character, and a
string with a lone surrogate (JSON allows the escape ``\\ud800``) cannot even be encoded
as UTF-8 to be sent. Either one reaching the database was a 500; requests are checked
against this rule at the edge instead (JSON bodies, path and query values, CSV rows,
multipart headers, Basic credentials), and the answer says which value broke it.
"""

from __future__ import annotations

import re

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable(text: str) -> str | None:
    """Why ``text`` cannot be stored (a phrase to follow its name), or None when it can."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "holds a NUL character (\\u0000), which cannot be stored"
    return "is not valid Unicode: it holds a lone surrogate (\\ud800 to \\udfff)"
