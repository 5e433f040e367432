from __future__ import annotations

import base64
import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetgate.domain.errors import AuthenticationFailed
from fleetgate.domain.users import Login, parse_basic_authorization

names = st.text(
    alphabet=st.characters(blacklist_characters="/:\x00", blacklist_categories=("Cs",)),
    min_size=1,
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


@given(tenant=names, username=names, password=passwords, at=st.integers(min_value=0))
def test_a_nul_in_the_tenant_or_user_name_is_malformed(
    tenant: str, username: str, password: str, at: int
) -> None:
    login = f"{tenant}/{username}"
    at %= len(login) + 1
    encoded = base64.b64encode(f"{login[:at]}\x00{login[at:]}:{password}".encode()).decode()
    with pytest.raises(AuthenticationFailed, match="Malformed"):
        parse_basic_authorization(f"Basic {encoded}")
