"""Console session cookies: any session round-trips through its cookie, and no change
to a cookie (one character anywhere) is accepted."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fleetgate.domain import sessions
from fleetgate.domain.sessions import Session

KEY = sessions.session_key(b"property secret")
NOW = 1_800_000_000

texts = st.text(min_size=1, max_size=60)
session_values = st.builds(
    Session,
    tenant_id=texts,
    username=texts,
    stamp=st.text(alphabet="0123456789abcdef", min_size=16, max_size=16),
    issued=st.integers(NOW - sessions.MAX_AGE + 1, NOW),
    nonce=st.text(min_size=1, max_size=30),
)


@given(session_values)
def test_every_session_round_trips(session: Session) -> None:
    assert sessions.unseal(KEY, sessions.seal(KEY, session), NOW) == session


@given(session_values, st.data())
def test_a_cookie_changed_in_one_place_is_refused(session: Session, data: st.DataObject) -> None:
    token = sessions.seal(KEY, session)
    at = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(st.characters(codec="utf-8").filter(lambda c: c != token[at]))
    changed = token[:at] + replacement + token[at + 1 :]
    assert sessions.unseal(KEY, changed, NOW) is None


@given(st.text(max_size=300))
def test_arbitrary_text_is_never_a_session_and_never_an_error(token: str) -> None:
    assert sessions.unseal(KEY, token, NOW) is None
