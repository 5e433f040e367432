"""The broker plugin's C and the service's Python name the same things: the control,
response and events topics, the device and bootstrap namespaces, a device account's
username, the "no CA" field, CA fingerprints, the longest topic level, and the words of the
control protocol. Each has one owner in Python (``fleetgate.domain.broker_control``,
``fleetgate.domain.topics``, ``fleetgate.domain.devices``, ``fleetgate.domain.trust``);
the C is read from ``broker/`` and checked against it — by value where Python has a
constant, by behaviour where it has a builder or a parser — so that neither side can
change alone."""

from __future__ import annotations

import re

import pytest

from fleetgate.domain import broker_control as control
from fleetgate.domain import broker_trace, devices, topics
from fleetgate.domain.certificates import parse_trusted_certificate
from fleetgate.pki import generate_ca

from fakes import CERTIFICATE_CLOCK
from plugin_source import defines, source

C = defines()


def test_the_control_response_and_events_topics() -> None:
    assert C["FG_CONTROL_TOPIC"] == control.CONTROL_TOPIC
    assert C["FG_RESPONSE_TOPIC"] == control.RESPONSE_TOPIC
    assert C["FG_EVENTS_TOPIC"] == control.EVENTS_TOPIC


def test_every_device_topic_lies_in_the_namespace_the_plugin_grants() -> None:
    # The ACL lets device "dev-1" use exactly the topics that start with this.
    granted = f"{C['FG_DEVICE_ROOT']}dev-1/"
    assert topics.device_namespace("dev-1") == granted
    for leaf in topics.DeviceLeaf:
        if leaf is not topics.DeviceLeaf.CONNECTION:
            topic = topics.DeviceTopic("dev-1", leaf)
            assert str(topic).startswith(granted)
            assert topics.DeviceTopic.parse(granted + leaf.value) == topic
        # A gateway's children live inside its namespace: the same grant covers them.
        child = topics.DeviceTopic("child-1", leaf, gateway="dev-1")
        assert str(child).startswith(granted)
    for pattern in topics.DEVICE_SUBSCRIPTIONS:
        assert pattern.startswith(str(C["FG_DEVICE_ROOT"]))


def test_every_bootstrap_topic_lies_in_the_namespace_the_plugin_grants() -> None:
    # A bootstrap client "dev-1" of the account "t100/<name>".
    granted = f"{C['FG_BOOTSTRAP_ROOT']}t100/dev-1/"
    leaves = (
        topics.BootstrapTopic.REQUEST,
        topics.BootstrapTopic.CREDENTIALS,
        topics.BootstrapTopic.ERROR,
    )
    for leaf in leaves:
        topic = topics.BootstrapTopic("t100", "dev-1", leaf)
        assert str(topic) == granted + leaf
        assert topics.BootstrapTopic.parse(granted + leaf) == topic
    assert topics.BOOTSTRAP_REQUESTS.endswith(
        f"/{C['FG_BOOTSTRAP_ROOT']}+/+/{topics.BootstrapTopic.REQUEST}"
    )


def test_a_device_accounts_username() -> None:
    prefix = C["FG_DEVICE_USER_PREFIX"]
    assert prefix == devices.DEVICE_USER_PREFIX
    assert control.device_username("t100", "dev-1") == f"t100/{prefix}dev-1"
    assert devices.device_username("dev-1") == f"{prefix}dev-1"


def test_a_password_session_has_no_ca() -> None:
    no_ca = C["FG_NO_CA"]
    connected = control.Connected("dev-1", "t100", control.NO_CA, False, "e-1")
    assert control.encode_event(connected) == f"connected dev-1 t100 {no_ca} 0 e-1".encode()
    assert control.parse_event(f"connected dev-1 t100 {no_ca} 0 e-1".encode()) == connected
    response = control.parse_response(f"client dev-1 t100 {no_ca} e-1\n".encode())
    assert response.clients == (control.LiveClient("dev-1", "t100", control.NO_CA, "e-1"),)


def test_a_ca_fingerprint_is_the_one_the_trust_store_computes() -> None:
    facts = parse_trusted_certificate(generate_ca("Constants CA").cert_pem(), CERTIFICATE_CLOCK)
    assert len(facts.fingerprint) == C["FG_FINGERPRINT_LEN"]
    assert re.fullmatch("[0-9a-f]+", facts.fingerprint)
    line = control.ca(facts.fingerprint, "t100", True, False, facts.der)
    assert line.split(" ")[1] == facts.fingerprint


def test_the_longest_topic_level() -> None:
    assert C["FG_MAX_CLIENT_ID"] == control.MAX_TOPIC_LEVEL_BYTES


# fg_apply_command: `strcmp(f[0], "<command>") == 0){ if(count != <fields>) ...`
_COMMAND = re.compile(r'strcmp\(f\[0\], "([a-z-]+)"\) == 0\)\{\s*if\(count != (\d+)\)')
_ACCOUNT_KIND = re.compile(r'strcmp\(f\[1\], "([a-z]+)"\) == 0\) kind = FG_KIND_')


def _plugin_commands() -> set[tuple[str, int]]:
    """(command, number of fields) for every command fg_apply_command knows."""
    text = source("control.c") + source("trace.c")
    found = {(name, int(count)) for name, count in _COMMAND.findall(text)}
    # Every command is in the shape above, or this test would miss one.
    assert len(found) == text.count('strcmp(f[0], "') > 0
    return found


def _service_commands() -> set[tuple[str, int]]:
    """(command, number of fields) of every line the service's builders write."""
    fingerprint = "0" * 40
    lines = [
        control.reset(),
        control.account("bootstrap", "t100/devicebootstrap", "scrypt:hash"),
        control.device_account("t100", "dev-1", "scrypt:hash"),
        control.account_remove("t100/devicebootstrap"),
        control.ca(fingerprint, "t100", True, True, b"\x30\x00"),
        control.ca_remove(fingerprint),
        control.device("dev-1", "t100", True),
        control.device_remove("dev-1"),
        control.child("child-1", "gw-1"),
        control.child_remove("child-1"),
        control.tenant("t100", False),
        control.clients("token"),
        control.sync("token"),
        control.trace("dev-1", True),
        control.trace_stats("token"),
    ]
    return {(line.split(" ")[0], len(line.split(" "))) for line in lines}


def test_the_plugin_knows_exactly_the_commands_the_service_writes() -> None:
    assert _plugin_commands() == _service_commands()


def test_account_kinds() -> None:
    assert set(_ACCOUNT_KIND.findall(source("control.c"))) == control.ACCOUNT_KINDS


def test_the_service_parses_the_events_the_plugin_publishes() -> None:
    published = set(re.findall(r'fg_text_field\(&text, "([a-z]+)"\)', source("sessions.c")))
    events = (
        control.Connected("dev-1", "t100", "ab" * 20, True, "e-1"),
        control.Disconnected("dev-1", "t100", "e-1"),
    )
    assert published == {control.encode_event(event).split(b" ")[0].decode() for event in events}


# A reply line's first word is what says what follows it; each of these tails goes with
# exactly one first word (sync's "ok", a clients line, an error).
_REPLY_TAILS = ("token", "dev-1 t100 - e-1", "3 unknown command")


@pytest.mark.parametrize(
    "word",
    sorted(
        set(re.findall(r'fg_text_field\(reply, "([a-z]+)"\)', source("control.c")))
        | set(re.findall(r'fg_text_append\(&reply, "([a-z]+) ', source("control.c")))
    ),
)
def test_the_service_parses_every_reply_the_plugin_writes(word: str) -> None:
    parsed = []
    for tail in _REPLY_TAILS:
        try:
            parsed.append(control.parse_response(f"{word} {tail}\n".encode()))
        except ValueError:
            continue
    assert len(parsed) == 1, f"the service does not parse the plugin's {word!r} lines"


def test_the_trace_topic_preview_and_reply() -> None:
    assert C["FG_TRACE_TOPIC"] == broker_trace.TRACE_TOPIC
    assert C["FG_TRACE_PREVIEW"] == broker_trace.PREVIEW_BYTES
    words = set(re.findall(r'fg_text_field\(reply, "([a-z]+)"\)', source("trace.c")))
    assert words == {"tracing", "ok"}
    assert control.parse_response(b"tracing 2 17\nok t\n").tracing == (2, 17)


def test_the_service_parses_every_trace_event_the_plugin_publishes() -> None:
    published = set(re.findall(r'fg_text_field\(&text, "([a-z]+)"\)', source("trace.c")))
    events = (
        broker_trace.ConnectAttempt("dev-1", None, "wrong password"),
        broker_trace.Disconnect("dev-1", "connection lost"),
        broker_trace.Kick("dev-1", "device removed"),
        broker_trace.Publish("dev-1", "in", True, 1, False, 3, "fg/d/dev-1/x", b"abc"),
        broker_trace.Subscribe("dev-1", False, "#"),
    )
    verbs = {broker_trace.encode_trace_event(e).split(b" ")[0].decode() for e in events}
    # "in"/"out" are fields of publish lines, not verbs.
    assert published - {"in", "out"} == verbs
