"""The device topics: built and parsed by one class, both ways."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetgate.domain.topics import BootstrapTopic, DeviceLeaf, DeviceTopic, is_level

levels = st.text(
    alphabet=st.characters(blacklist_characters="/+#\0", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=40,
)
leaves = st.sampled_from([leaf for leaf in DeviceLeaf if leaf is not DeviceLeaf.CONNECTION])
child_leaves = st.sampled_from(list(DeviceLeaf))


@given(device_id=levels, leaf=leaves)
def test_device_topics_round_trip(device_id: str, leaf: DeviceLeaf) -> None:
    topic = DeviceTopic(device_id, leaf)
    assert DeviceTopic.parse(str(topic)) == topic
    assert str(topic).startswith(f"fg/d/{device_id}/")
    assert topic.owner == device_id


@given(gateway=levels, child=levels, leaf=child_leaves)
def test_child_topics_round_trip_inside_the_gateways_namespace(
    gateway: str, child: str, leaf: DeviceLeaf
) -> None:
    topic = DeviceTopic(child, leaf, gateway)
    assert DeviceTopic.parse(str(topic)) == topic
    assert str(topic) == f"fg/d/{gateway}/c/{child}/{leaf.value}"
    assert topic.owner == gateway
    assert topic.with_leaf(DeviceLeaf.ERROR) == DeviceTopic(child, DeviceLeaf.ERROR, gateway)


@given(text=st.text(max_size=80))
def test_parse_accepts_only_well_formed_device_topics(text: str) -> None:
    parsed = DeviceTopic.parse(text)
    if parsed is not None:
        assert str(parsed) == text
        assert is_level(parsed.device_id)
        assert parsed.gateway is None or is_level(parsed.gateway)


@given(tenant=levels, client_id=levels, leaf=levels)
def test_bootstrap_topics_are_not_device_topics(tenant: str, client_id: str, leaf: str) -> None:
    assert DeviceTopic.parse(str(BootstrapTopic(tenant, client_id, leaf))) is None


@given(gateway=levels, child=levels, leaf=leaves)
def test_a_childs_topic_is_about_the_child_not_its_gateway(
    gateway: str, child: str, leaf: DeviceLeaf
) -> None:
    parsed = DeviceTopic.parse(f"fg/d/{gateway}/c/{child}/{leaf.value}")
    assert parsed == DeviceTopic(child, leaf, gateway)


@given(gateway=levels, child=levels, leaf=child_leaves)
def test_the_child_pattern_matches_every_child(gateway: str, child: str, leaf: DeviceLeaf) -> None:
    pattern = DeviceTopic.child_pattern(leaf)
    assert pattern.replace("+", gateway, 1).replace("+", child, 1) == str(
        DeviceTopic(child, leaf, gateway)
    )


@given(device_id=levels, leaf=leaves)
def test_the_pattern_matches_every_device(device_id: str, leaf: DeviceLeaf) -> None:
    prefix, _, suffix = DeviceTopic.pattern(leaf).partition("+")
    topic = str(DeviceTopic(device_id, leaf))
    assert topic == f"{prefix}{device_id}{suffix}"


def test_other_namespaces_wildcards_and_unknown_leaves_are_refused() -> None:
    for topic in (
        "fg/d/+/op/cmd",
        "fg/d/#",
        "fg/d//op/cmd",
        "fg/d/a/op",
        "fg/d/a/op/cmd/extra",
        "fg/d/a/status",
        "fg/d/a/connection",
        "fg/d/a/c/op/cmd",
        "fg/d/a/c//op/cmd",
        "fg/d/a/c/+/op/cmd",
        "fg/d/a/c/b/c/d/op/cmd",
        "fg/d/a/c/b/status",
        "fg/x/a/op/cmd",
        "xx/d/a/op/cmd",
        "fg/bootstrap/t1/a/request",
        "$CONTROL/fleetgate/v1",
    ):
        assert DeviceTopic.parse(topic) is None, topic


@pytest.mark.parametrize("bad", ["", "a/b", "+", "#", "a\0"])
def test_a_device_id_must_be_one_level(bad: str) -> None:
    with pytest.raises(ValueError, match="one topic level"):
        DeviceTopic(bad, DeviceLeaf.OP_CMD)


def test_a_connection_topic_is_only_a_childs() -> None:
    with pytest.raises(ValueError, match="child"):
        DeviceTopic("a", DeviceLeaf.CONNECTION)
    assert DeviceTopic.parse("fg/d/gw/c/ch/connection") == DeviceTopic(
        "ch", DeviceLeaf.CONNECTION, "gw"
    )
