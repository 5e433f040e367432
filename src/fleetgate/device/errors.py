"""The errors of the device SDK, under fleetgate's one root.

::

    FleetgateError
    └── DeviceError                  the device SDK; also "the client is not running"
        ├── BadCommand               a command that cannot be understood
        ├── OperationFailed          raised by an operation handler: FAILED, with this reason
        ├── FileVerificationFailed   a download's size or SHA-256 is not the announced one
        ├── TransferFailed           an HTTP download or upload did not succeed
        └── IllegalStatus            a status that would move a finished operation

Every message is written to be shown to an operator as it is: the SDK reports an
operation that fails with one of these as FAILED with ``str(error)`` as ``failureReason``.
"""

from __future__ import annotations

from fleetgate.domain.errors import FleetgateError


class DeviceError(FleetgateError):
    code = "device/error"


class BadCommand(DeviceError):
    """A command from fleetgate that is not what the protocol says.

    ``operation_id`` is set when the command at least had a readable id, so that the
    operation can be reported FAILED instead of staying open.
    """

    code = "device/badCommand"

    def __init__(self, message: str, *, operation_id: str | None = None) -> None:
        super().__init__(message)
        self.operation_id = operation_id


class OperationFailed(DeviceError):
    """Raise from an operation handler to report the operation FAILED with this reason."""

    code = "device/operationFailed"


class FileVerificationFailed(DeviceError):
    code = "device/fileVerificationFailed"


class TransferFailed(DeviceError):
    code = "device/transferFailed"


class IllegalStatus(DeviceError):
    code = "device/illegalStatus"
