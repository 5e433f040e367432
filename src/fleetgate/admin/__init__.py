"""``fleetgate tenants …``: the management tenant's administration over the REST API."""

from fleetgate.admin.tenants import add_parser, tenants_command

__all__ = ["add_parser", "tenants_command"]
