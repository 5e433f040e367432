"""The one exception tree of fleetgate.

::

    FleetgateError                      root; every error we raise on purpose
    ├── ConfigurationError              settings or environment cannot work
    ├── InvalidPasswordHash             a stored hash string is malformed
    ├── AuthenticationFailed            credentials missing or wrong      (HTTP 401)
    ├── AccessDenied                    authenticated but lacks a role    (HTTP 403)
    ├── NotFound                        no such resource (in this tenant) (HTTP 404)
    ├── Conflict                        the resource already exists       (HTTP 409)
    ├── TooLarge                        a body or file over its limit     (HTTP 413)
    ├── UnsupportedMedia                a file of a kind we do not read    (HTTP 415)
    ├── ValidationFailed                well-formed but unacceptable input (HTTP 422)
    └── ServiceUnavailable              a part we depend on (the database) is away or
                                        does not answer in time; retry later (HTTP 503)

Each error carries an ``error`` code in Cumulocity's ``<domain>/<kind>`` form and a
human message; the REST layer turns them into Cumulocity's error body in one place.
Library errors (asyncpg, aiomqtt, OS) are translated at the adapter that meets them.
"""

from __future__ import annotations


class FleetgateError(Exception):
    """Root of every error fleetgate raises on purpose."""

    status = 500
    code = "general/internalError"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class ConfigurationError(FleetgateError):
    """The settings or the machine cannot run what was asked (a missing package, a busy port)."""


class InvalidPasswordHash(FleetgateError):
    """A stored password hash string cannot be parsed."""


class AuthenticationFailed(FleetgateError):
    status = 401
    code = "security/Unauthorized"


class AccessDenied(FleetgateError):
    status = 403
    code = "security/Forbidden"


class NotFound(FleetgateError):
    status = 404
    code = "general/notFound"


class Conflict(FleetgateError):
    status = 409
    code = "general/conflict"


class TooLarge(FleetgateError):
    status = 413
    code = "general/requestEntityTooLarge"


class UnsupportedMedia(FleetgateError):
    """An upload that is not of a kind we read (not a spreadsheet, a macro-enabled or
    encrypted workbook)."""

    status = 415
    code = "general/unsupportedMediaType"


class ValidationFailed(FleetgateError):
    status = 422
    code = "general/validationError"


class ServiceUnavailable(FleetgateError):
    """Not the request's fault: it can succeed later. ``retry_after``: seconds to wait."""

    status = 503
    code = "general/serviceUnavailable"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after
