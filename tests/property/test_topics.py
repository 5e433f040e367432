from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fleetgate.domain.topics import BootstrapTopic, is_level

levels = st.text(
    alphabet=st.characters(blacklist_characters="/+#\0", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=40,
)


@given(tenant=levels, client_id=levels, leaf=levels)
def test_bootstrap_topics_round_trip(tenant: str, client_id: str, leaf: str) -> None:
    topic = BootstrapTopic(tenant, client_id, leaf)
    assert BootstrapTopic.parse(str(topic)) == topic


@given(text=st.text(max_size=80))
def test_parse_accepts_only_well_formed_topics(text: str) -> None:
    parsed = BootstrapTopic.parse(text)
    if parsed is not None:
        assert str(parsed) == text
        assert all(is_level(p) for p in (parsed.tenant, parsed.client_id, parsed.leaf))


def test_wildcards_and_wrong_shapes_are_not_bootstrap_topics() -> None:
    for topic in (
        "fg/bootstrap/t1/+/request",
        "fg/bootstrap/t1/d1",
        "fg/d/x/request",
        "fg/bootstrap/t1/d1/request/extra",
        "fg/bootstrap//d1/request",
    ):
        assert BootstrapTopic.parse(topic) is None
