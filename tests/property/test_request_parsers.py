"""The strict parsers of what requests carry: every string either parses to a value in
range or is refused with ValidationFailed (the signature parser: None), never another
exception. ``str.isdigit`` said yes to ``³``, ``int()`` then raised: that was a 500."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from fleetgate.api.paging import MAX_CURRENT_PAGE, MAX_PAGE_SIZE, parse_page
from fleetgate.domain import signing
from fleetgate.domain.errors import ValidationFailed
from fleetgate.domain.ids import MAX_ID, parse_id

T = TypeVar("T")


def outcome(parse: Callable[..., T], *raw: object) -> T | ValidationFailed:
    """What ``parse`` makes of ``raw``: its value or its refusal; anything else raises."""
    try:
        return parse(*raw)
    except ValidationFailed as refused:
        return refused


#: Text that looks like numbers more often than random text does.
numberish = st.one_of(
    st.text(),
    st.text(alphabet="0123456789"),
    st.text(alphabet="0123456789\u00b2\u00b3\u0660\u0661\uff11 +-_.e"),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
)


@given(numberish)
@example("\u00b3")
@example("9223372036854775807")
@example("9223372036854775808")
@example("0")
@example("0" * 40 + "7")
def test_an_id_is_ascii_digits_from_1_to_2_63_minus_1(raw: str) -> None:
    valid = raw.isascii() and raw.isdigit() and 1 <= int(raw) <= MAX_ID
    result = outcome(parse_id, raw)
    if valid:
        assert result == int(raw)
    else:
        assert isinstance(result, ValidationFailed)
        assert result.status == 422


@given(st.one_of(st.integers(), st.floats(), st.booleans(), st.none(), st.lists(st.integers())))
def test_a_json_id_is_an_integer_in_range(raw: object) -> None:
    result = outcome(parse_id, raw)
    if type(raw) is int and 1 <= raw <= MAX_ID:
        assert result == raw
    else:
        assert isinstance(result, ValidationFailed)


optional_numberish = st.one_of(st.none(), numberish)


optional_flag = st.one_of(st.none(), st.sampled_from(["true", "FALSE", "True"]), st.text())


@given(optional_numberish, optional_numberish, optional_flag, optional_flag)
@example(None, "9223372036854775807", None, None)
@example("2000", str(MAX_CURRENT_PAGE), "TRUE", None)
def test_a_page_always_fits_postgresql_offsets(
    size: str | None, current: str | None, total: str | None, elements: str | None
) -> None:
    page = outcome(parse_page, size, current, total, elements)
    if isinstance(page, ValidationFailed):
        assert page.status == 422
        return
    assert 1 <= page.size <= MAX_PAGE_SIZE
    assert 1 <= page.current <= MAX_CURRENT_PAGE
    assert page.offset >= 0
    assert page.offset + page.size <= MAX_ID
    assert page.with_total_pages == (total is not None and total.lower() == "true")
    assert page.with_total_elements == (elements is not None and elements.lower() == "true")
    assert page.counts == (page.with_total_pages or page.with_total_elements)


def test_paging_defaults_and_bounds() -> None:
    assert parse_page(None, None, None) == parse_page("5", "1", "false")
    for size, current in (("0", "1"), ("2001", "1"), ("5", "0"), ("5", str(MAX_CURRENT_PAGE + 1))):
        with pytest.raises(ValidationFailed):
            parse_page(size, current, None)
    with pytest.raises(ValidationFailed):
        parse_page(None, None, "yes")
    with pytest.raises(ValidationFailed, match="withTotalElements"):
        parse_page(None, None, None, "1")


@given(st.text(), st.text(), st.one_of(st.none(), st.text()), st.one_of(st.none(), numberish))
def test_a_signed_url_check_only_ever_says_yes_or_no(
    device: str, signature: str, maybe_expires: str | None, path: str | None
) -> None:
    verdict = signing.verify(
        b"k" * 32, "GET", f"/files/{path}", device, maybe_expires, signature, now=0
    )
    assert verdict is False
