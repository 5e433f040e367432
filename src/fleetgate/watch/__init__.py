"""``fleetgate ops watch``: operations followed live from the REST API.

``sse`` parses the event stream, ``table`` merges list pages and events into the latest
state of each operation, ``render`` turns that into text, ``client`` speaks HTTP (the
only module that imports httpx), ``command`` is the CLI. All but the last two are pure.
``devices_command`` is ``fleetgate devices`` (batch updates from a template), on the same
client and stack file.
"""

from fleetgate.watch.command import add_parser, watch_command

__all__ = ["add_parser", "watch_command"]
