"""The fleetgate device SDK: what a device needs to be managed by fleetgate.

A :class:`DeviceClient` keeps one MQTT connection to fleetgate's broker (X.509 or
password login), declares the device's :class:`Inventory`, hands each operation
(:class:`Command`) to the application once and reports its :class:`Status`;
:func:`download` and :func:`upload` move the files operations refer to. The protocol is
``docs/protocol.md``, "Inventory and operations"; a guide is ``docs/device-sdk.md``.
"""

from fleetgate.device.client import (
    BrokerAddress,
    CertificateLogin,
    DeviceClient,
    ErrorHandler,
    OperationHandler,
    PasswordLogin,
    ReconnectPolicy,
)
from fleetgate.device.commands import (
    Command,
    ConfigDownload,
    ConfigUpload,
    FileInfo,
    FirmwareUpdate,
    SoftwareChange,
    Status,
    UploadTarget,
    parse_command,
)
from fleetgate.device.errors import (
    BadCommand,
    DeviceError,
    FileVerificationFailed,
    IllegalStatus,
    OperationFailed,
    TransferFailed,
)
from fleetgate.device.files import download, upload, verify_file
from fleetgate.device.journal import OperationJournal
from fleetgate.device.messages import ErrorReport, Firmware, Inventory, Software

__all__ = [
    "BadCommand",
    "BrokerAddress",
    "CertificateLogin",
    "Command",
    "ConfigDownload",
    "ConfigUpload",
    "DeviceClient",
    "DeviceError",
    "ErrorHandler",
    "ErrorReport",
    "FileInfo",
    "FileVerificationFailed",
    "Firmware",
    "FirmwareUpdate",
    "IllegalStatus",
    "Inventory",
    "OperationFailed",
    "OperationHandler",
    "OperationJournal",
    "PasswordLogin",
    "ReconnectPolicy",
    "Software",
    "SoftwareChange",
    "Status",
    "TransferFailed",
    "UploadTarget",
    "download",
    "parse_command",
    "upload",
    "verify_file",
]
