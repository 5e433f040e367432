from __future__ import annotations

import base64
import contextlib

from hypothesis import given
from hypothesis import strategies as st

from fleetgate.domain.errors import AuthenticationFailed
from fleetgate.domain.users import Login, parse_basic_authorization

names = st.text(
    alphabet=st.characters(blacklist_characters="/:", blacklist_categories=("Cs",)), min_size=1
)
passwords = st.text(alphabet=st.characters(blacklist_categories=("Cs",)))


@given(tenant=names, username=names, password=passwords)
def test_any_login_round_trips_through_the_header(
    tenant: str, username: str, password: str
) -> None:
    encoded = base64.b64encode(f"{tenant}/{username}:{password}".encode()).decode()
    assert parse_basic_authorization(f"Basic {encoded}") == Login(tenant, username, password)


@given(raw=st.binary())
def test_arbitrary_headers_never_crash_with_anything_but_auth_errors(raw: bytes) -> None:
    with contextlib.suppress(AuthenticationFailed):
        parse_basic_authorization("Basic " + base64.b64encode(raw).decode())
