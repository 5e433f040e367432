"""``fleetgate tenants``: where it finds the API and the management admin's credentials."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from fleetgate.admin.tenants import add_parser
from fleetgate.admin.tenants import endpoint_from as endpoint
from fleetgate.domain.errors import ConfigurationError


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["tenants", *argv])


def test_from_the_home_of_up(tmp_path: Path) -> None:
    (tmp_path / "stack.json").write_text(json.dumps({"api_url": "http://127.0.0.1:9"}))
    (tmp_path / "secrets.json").write_text(json.dumps({"management_admin_password": "pw"}))
    args = parse("--home", str(tmp_path), "list")
    assert endpoint(args) == ("http://127.0.0.1:9", "management/admin", "pw")


def test_from_the_flags_without_reading_any_file(tmp_path: Path) -> None:
    args = parse(
        "--home",
        str(tmp_path / "none"),
        "--url",
        "http://x",
        "--user",
        "m/a",
        "--password",
        "p",
        "suspend",
        "acme",
    )
    assert endpoint(args) == ("http://x", "m/a", "p")
    assert (args.tenants_command, args.tenant_id) == ("suspend", "acme")


def test_url_needs_user_and_password() -> None:
    with pytest.raises(ConfigurationError, match="--url needs --user"):
        endpoint(parse("--url", "http://x", "list"))


def test_a_home_without_a_running_up_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="is `fleetgate up` running"):
        endpoint(parse("--home", str(tmp_path), "list"))


def test_create_needs_company_domain_and_password() -> None:
    with pytest.raises(SystemExit):
        parse("create", "--company", "ACME")
    args = parse("create", "--company", "A", "--domain", "a.example", "--admin-pass", "pw-12345")
    assert (args.admin_name, args.id) == ("admin", None)
