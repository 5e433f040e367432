from __future__ import annotations

import base64

import pytest

from fleetgate.domain.errors import AuthenticationFailed
from fleetgate.domain.users import Login, parse_basic_authorization


def basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


def test_tenant_user_and_password_are_split() -> None:
    assert parse_basic_authorization(basic("t1/admin:pa:ss")) == Login("t1", "admin", "pa:ss")


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "Full authentication is required"),
        ("Bearer abc", "Only Basic"),
        ("Basic !!!", "Malformed"),
        (basic("no-colon"), "Malformed"),
        (basic("admin:pw"), "<tenant>/<username>"),
        (basic("/admin:pw"), "<tenant>/<username>"),
        (basic("t1/:pw"), "<tenant>/<username>"),
    ],
)
def test_bad_headers_say_what_is_wrong(header: str | None, message: str) -> None:
    with pytest.raises(AuthenticationFailed, match=message):
        parse_basic_authorization(header)
