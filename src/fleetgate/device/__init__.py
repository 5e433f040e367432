"""The fleetgate device SDK: what a device needs to be managed by fleetgate.

A :class:`DeviceClient` keeps one MQTT connection to fleetgate's broker (X.509 or
password login), declares the device's :class:`Inventory`, hands each operation
(:class:`Command`) to the application once and reports its :class:`Status`;
:func:`download` and :func:`upload` move the files operations refer to. A
:class:`GatewayClient` is a device client that also speaks for children
(:class:`ChildDevice`: declared, their operations handled and reported, their
:class:`Connectivity` reported). The protocol is ``docs/protocol.md``, "Inventory and
operations" and "Gateways and their children"; a guide is ``docs/device-sdk.md``.
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
from fleetgate.device.files import download, fetch, upload, verify_file
from fleetgate.device.gateway import ChildDevice, ChildOperationHandler, GatewayClient
from fleetgate.device.journal import OperationJournal
from fleetgate.device.messages import Connectivity, ErrorReport, Firmware, Inventory, Software
from fleetgate.device.operations import Device

__all__ = [
    "BadCommand",
    "BrokerAddress",
    "CertificateLogin",
    "ChildDevice",
    "ChildOperationHandler",
    "Command",
    "ConfigDownload",
    "ConfigUpload",
    "Connectivity",
    "Device",
    "DeviceClient",
    "DeviceError",
    "ErrorHandler",
    "ErrorReport",
    "FileInfo",
    "FileVerificationFailed",
    "Firmware",
    "FirmwareUpdate",
    "GatewayClient",
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
    "fetch",
    "parse_command",
    "upload",
    "verify_file",
]
