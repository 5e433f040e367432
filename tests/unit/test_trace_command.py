"""`fleetgate trace`: an entry is one tab-separated line; an unreachable API or a refused
request is a clear error (exit status 2), never a traceback."""

from __future__ import annotations

import argparse
import io

import pytest

from fleetgate.cli import main
from fleetgate.domain.errors import ConfigurationError
from fleetgate.watch.trace_command import entry_line, trace_command

from conftest import free_port


def test_an_entry_is_one_tab_separated_line() -> None:
    entry = {"time": "2026-12-02T00:00:00.000Z", "kind": "connect", "summary": "a\tb\nc  d"}
    assert entry_line(entry) == "2026-12-02T00:00:00.000Z\tconnect\ta b c d"


async def test_an_unreachable_api_is_a_clear_error() -> None:
    args = argparse.Namespace(
        device="dev-1",
        url=f"http://127.0.0.1:{free_port()}",
        user="t1/admin",
        password="x",
        stack=None,
        start=None,
        stop=False,
        once=True,
    )
    with pytest.raises(ConfigurationError, match="cannot reach"):
        await trace_command(args, io.StringIO())


def test_the_command_needs_credentials_with_url(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "dev-1", "--url", "http://127.0.0.1:1"]) == 2
    assert "--url needs --user" in capsys.readouterr().err
