"""Cumulocity media types and the JSON response that carries them."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

_PREFIX = "application/vnd.com.nsn.cumulocity."

ERROR = f"{_PREFIX}error+json"
CURRENT_USER = f"{_PREFIX}currentUser+json"
CURRENT_TENANT = f"{_PREFIX}currentTenant+json"


def c8y_json(body: Any, media_type: str, status_code: int = 200) -> JSONResponse:
    """A JSON response whose Content-Type is the Cumulocity media type given."""
    return JSONResponse(body, status_code=status_code, media_type=f"{media_type};charset=UTF-8")


MANAGED_OBJECT = f"{_PREFIX}managedObject+json"
MANAGED_OBJECT_COLLECTION = f"{_PREFIX}managedObjectCollection+json"
EXTERNAL_ID = f"{_PREFIX}externalId+json"
EXTERNAL_ID_COLLECTION = f"{_PREFIX}externalIdCollection+json"
USER = f"{_PREFIX}user+json"
USER_COLLECTION = f"{_PREFIX}userCollection+json"
ROLE = f"{_PREFIX}role+json"
ROLE_COLLECTION = f"{_PREFIX}roleCollection+json"
ROLE_REFERENCE = f"{_PREFIX}roleReference+json"
ROLE_REFERENCE_COLLECTION = f"{_PREFIX}roleReferenceCollection+json"
NEW_DEVICE_REQUEST = f"{_PREFIX}newDeviceRequest+json"
NEW_DEVICE_REQUEST_COLLECTION = f"{_PREFIX}newDeviceRequestCollection+json"
DEVICE_CREDENTIALS = f"{_PREFIX}deviceCredentials+json"
BULK_NEW_DEVICE_REQUEST = f"{_PREFIX}bulkNewDeviceRequest+json"
OPERATION = f"{_PREFIX}operation+json"
OPERATION_COLLECTION = f"{_PREFIX}operationCollection+json"
BULK_OPERATION = f"{_PREFIX}bulkoperation+json"
BULK_OPERATION_COLLECTION = f"{_PREFIX}bulkoperationcollection+json"
TENANT = f"{_PREFIX}tenant+json"
TENANT_COLLECTION = f"{_PREFIX}tenantCollection+json"
OPTION = f"{_PREFIX}option+json"
OPTION_COLLECTION = f"{_PREFIX}optionCollection+json"
#: fleetgate's own resources (no Cumulocity counterpart) keep Cumulocity's style.
DEAD_LETTER = "application/vnd.fleetgate.deadLetter+json"
DEAD_LETTER_COLLECTION = "application/vnd.fleetgate.deadLetterCollection+json"
BATCH_UPDATE = "application/vnd.fleetgate.batchUpdate+json"
DEVICE_CREDENTIALS_VIEW = "application/vnd.fleetgate.deviceCredentialsView+json"
DEVICE_SECRET = "application/vnd.fleetgate.deviceSecret+json"  # noqa: S105 — a media type
TRACE = "application/vnd.fleetgate.trace+json"
BULK_TARGET_COLLECTION = "application/vnd.fleetgate.bulkOperationTargetCollection+json"
MIGRATION = "application/vnd.fleetgate.migration+json"
MIGRATION_COLLECTION = "application/vnd.fleetgate.migrationCollection+json"
MIGRATION_CODE = "application/vnd.fleetgate.migrationCode+json"
