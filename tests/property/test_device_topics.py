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
leaves = st.sampled_from(list(DeviceLeaf))


@given(device_id=levels, leaf=leaves)
def test_device_topics_round_trip(device_id: str, leaf: DeviceLeaf) -> None:
    topic = DeviceTopic(device_id, leaf)
    assert DeviceTopic.parse(str(topic)) == topic
    assert str(topic).startswith(f"fg/d/{device_id}/")


@given(text=st.text(max_size=80))
def test_parse_accepts_only_well_formed_device_topics(text: str) -> None:
    parsed = DeviceTopic.parse(text)
    if parsed is not None:
        assert str(parsed) == text
        assert is_level(parsed.device_id)


@given(tenant=levels, client_id=levels, leaf=levels)
def test_bootstrap_topics_are_not_device_topics(tenant: str, client_id: str, leaf: str) -> None:
    assert DeviceTopic.parse(str(BootstrapTopic(tenant, client_id, leaf))) is None


@given(gateway=levels, child=levels, leaf=leaves)
def test_a_sub_devices_topic_is_not_its_gateways(
    gateway: str, child: str, leaf: DeviceLeaf
) -> None:
    assert DeviceTopic.parse(f"fg/d/{gateway}/c/{child}/{leaf.value}") is None


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
