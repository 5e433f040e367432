"""Bad payloads for every device topic (docs/bad-input.md, "Device messages").

Each is something a device — broken, or hostile — may publish in its own namespace, and
each must be refused at the edge: answered on the device's ``error`` topic, kept as a
dead letter, acknowledged, and never in the way of anyone else's messages. The first
ones of each list are the payloads that once stopped every device's status processing.
"""

from __future__ import annotations

from fleetgate.domain.topics import DeviceLeaf


def _deep(levels: int, inner: bytes = b"1") -> bytes:
    return b"[" * levels + inner + b"]" * levels


def _status(**extra: str) -> bytes:
    fields = {"id": '"1"', "status": '"EXECUTING"', **extra}
    return ("{" + ",".join(f'"{k}":{v}' for k, v in fields.items()) + "}").encode()


_NOT_OBJECTS: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("not JSON", b"not json"),
    ("an array", b"[]"),
    ("a string", b'"x"'),
    ("null", b"null"),
    ("a number", b"1"),
    ("truncated", b'{"id":"1"'),
    ("trailing garbage", b'{"a":1} x'),
    ("two objects", b"{}{}"),
    ("a NUL byte", b"\x00"),
    ("not UTF-8", b'\xff\xfe{"a":1}'),
    ("a byte order mark", b'\xef\xbb\xbf{"a":1}'),
    ("single quotes", b"{'a':1}"),
    ("a bare key", b"{a:1}"),
    ("a trailing comma", b'{"a":[1,]}'),
    ("a bad escape", b'{"a":"\\x"}'),
    ("a raw control character", b'{"a":"tab\there"}'),
    ("a leading zero", b'{"a":01}'),
    ("undefined", b'{"a":undefined}'),
]

#: op/status: the operation id, status and failure reason, and JSON's edges.
OP_STATUS: list[tuple[str, bytes]] = [
    ("id past int64 by far", b'{"id":"1000000000000000000000000000000","status":"EXECUTING"}'),
    ("id just past int64", b'{"id":"9223372036854775808","status":"EXECUTING"}'),
    ("NUL in the failure reason", _status(status='"FAILED"', failureReason='"x\\u0000y"')),
    ("NaN beside the status", _status(x="NaN")),
    ("nested 50,000 deep", _status(x=_deep(50_000).decode())),
    ("id 0", b'{"id":"0","status":"EXECUTING"}'),
    ("negative id", b'{"id":"-1","status":"EXECUTING"}'),
    ("id with an exponent", b'{"id":"1e3","status":"EXECUTING"}'),
    ("id in Arabic-Indic digits", '{"id":"\u0663","status":"EXECUTING"}'.encode()),
    ("id a float", b'{"id":1.5,"status":"EXECUTING"}'),
    ("id a boolean", b'{"id":true,"status":"EXECUTING"}'),
    ("id null", b'{"id":null,"status":"EXECUTING"}'),
    ("no id", b'{"status":"EXECUTING"}'),
    ("an unknown status", b'{"id":"1","status":"DONE"}'),
    ("a lower-case status", b'{"id":"1","status":"executing"}'),
    ("no status", b'{"id":"1"}'),
    ("failure reason a number", _status(status='"FAILED"', failureReason="5")),
    ("failure reason too long", _status(status='"FAILED"', failureReason=f'"{"x" * 10_001}"')),
    ("lone surrogate in the reason", _status(status='"FAILED"', failureReason='"\\ud800"')),
    ("Infinity beside the status", _status(x="Infinity")),
    ("1e999 beside the status", _status(x="1e999")),
    ("nested 40 deep", _status(x=_deep(40).decode())),
    ("NUL in a key", _status(**{"\\u0000": "1"})),
    ("over 16 KiB", _status(x=f'"{"x" * 17_000}"')),
    *_NOT_OBJECTS,
]

#: op/sync: its body is not read, but it must be a JSON object all the same.
OP_SYNC: list[tuple[str, bytes]] = [
    *_NOT_OBJECTS,
    ("NaN", b'{"a":NaN}'),
    ("Infinity", b'{"a":Infinity}'),
    ("-Infinity", b'{"a":-Infinity}'),
    ("1e999", b'{"a":1e999}'),
    ("NUL in a string", b'{"a":"\\u0000"}'),
    ("NUL in a key", b'{"\\u0000":1}'),
    ("a lone surrogate", b'{"a":"\\udfff"}'),
    ("nested 40 deep", b'{"a":' + _deep(40) + b"}"),
    ("a 5,000-digit integer", b'{"a":' + b"9" * 5000 + b"}"),
    ("over 4 KiB", b'{"a":"' + b"x" * 5000 + b'"}'),
    ("nested 50,000 deep", _deep(50_000)),
]

#: inventory: the device's declaration, and what it may not declare.
INVENTORY: list[tuple[str, bytes]] = [
    ("NUL in a fragment name", b'{"c8y_\\u0000":1}'),
    ("NUL in a fragment value", b'{"c8y_X":"a\\u0000b"}'),
    ("NaN in a fragment", b'{"c8y_X":NaN}'),
    ("nested 50,000 deep", b'{"c8y_X":' + _deep(50_000) + b"}"),
    ("a binary of itself", b'{"c8y_IsBinary":{},"contentType":"x/y","length":5}'),
    ("c8y_IsDevice", b'{"c8y_IsDevice":{}}'),
    ("its connection", b'{"c8y_Connection":{"status":"CONNECTED"}}'),
    ("its availability", b'{"c8y_Availability":{"status":"AVAILABLE"}}'),
    ("its CA", b'{"fleetgate_CertificateAuthority":{"fingerprint":"x"}}'),
    ("a group of itself", b'{"c8y_IsDeviceGroup":{}}'),
    ("a firmware entry of itself", b'{"type":"c8y_Firmware"}'),
    ("a configuration entry of itself", b'{"type":"c8y_ConfigurationDump"}'),
    ("its id", b'{"id":"5"}'),
    ("its self", b'{"self":"http://x"}'),
    ("its owner", b'{"owner":"someone"}'),
    ("its time stamps", b'{"lastUpdated":"2020-01-01T00:00:00Z"}'),
    ("child devices", b'{"childDevices":[]}'),
    ("a name that is a number", b'{"name":5}'),
    ("a type that is a list", b'{"type":["a"]}'),
    ("a name too long", b'{"name":"' + b"n" * 1001 + b'"}'),
    ("supported operations a string", b'{"c8y_SupportedOperations":"c8y_Restart"}'),
    ("supported operations numbers", b'{"c8y_SupportedOperations":[1,2]}'),
    ("a lone surrogate", b'{"c8y_X":"\\ud800"}'),
    ("Infinity in a fragment", b'{"c8y_X":Infinity}'),
    ("a key too long", b'{"' + b"k" * 1001 + b'":1}'),
    ("nested 40 deep", b'{"c8y_X":' + _deep(40) + b"}"),
    ("over 256 KiB", b'{"c8y_X":"' + b"x" * 300_000 + b'"}'),
    *_NOT_OBJECTS,
]

#: connection (a gateway about one of its children): the status and the reason.
CONNECTION: list[tuple[str, bytes]] = [
    ("no status", b"{}"),
    ("an unknown status", b'{"status":"ONLINE"}'),
    ("a lower-case status", b'{"status":"connected"}'),
    ("a status that is a number", b'{"status":1}'),
    ("a status that is null", b'{"status":null}'),
    ("a reason that is a number", b'{"status":"DISCONNECTED","reason":5}'),
    ("a reason that is an object", b'{"status":"DISCONNECTED","reason":{}}'),
    ("a reason too long", b'{"status":"DISCONNECTED","reason":"' + b"r" * 1001 + b'"}'),
    ("NUL in the reason", b'{"status":"DISCONNECTED","reason":"a\\u0000b"}'),
    ("a lone surrogate in the reason", b'{"status":"DISCONNECTED","reason":"\\ud800"}'),
    ("NaN beside the status", b'{"status":"CONNECTED","x":NaN}'),
    ("nested 40 deep", b'{"status":"CONNECTED","x":' + _deep(40) + b"}"),
    ("over 4 KiB", b'{"status":"CONNECTED","x":"' + b"x" * 5000 + b'"}'),
    *_NOT_OBJECTS,
]

#: Every leaf of a device's own topics.
BY_LEAF: dict[DeviceLeaf, list[tuple[str, bytes]]] = {
    DeviceLeaf.OP_STATUS: OP_STATUS,
    DeviceLeaf.OP_SYNC: OP_SYNC,
    DeviceLeaf.INVENTORY: INVENTORY,
}
#: Every leaf of a gateway's topics about one of its children.
CHILD_BY_LEAF: dict[DeviceLeaf, list[tuple[str, bytes]]] = {
    **BY_LEAF,
    DeviceLeaf.CONNECTION: CONNECTION,
}

#: Good payloads of each topic, beside which the bad ones are sent.
GOOD: dict[DeviceLeaf, bytes] = {
    DeviceLeaf.OP_STATUS: b'{"id":"1","status":"EXECUTING","extra":{"ignored":[1,2.5,null]}}',
    DeviceLeaf.OP_SYNC: b"{}",
    DeviceLeaf.INVENTORY: (
        b'{"name":"boiler","type":"thermo","c8y_SupportedOperations":["c8y_Restart"],'
        b'"c8y_Hardware":{"serialNumber":"\\u00e9t\\u00e9"},"c8y_Old":null}'
    ),
}
