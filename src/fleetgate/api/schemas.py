"""Request body schemas for the OpenAPI document (``/openapi.json``).

Routes read their bodies by hand (:func:`fleetgate.api.bodies.json_object`), so FastAPI
cannot describe them; each route names its body here with ``openapi_extra``. The schemas
say what a well-formed request looks like (clients and the schemathesis run use them);
they do not validate anything: the routes and the domain do.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import WithJsonSchema

_STRING = {"type": "string"}
_FRAGMENTS = {"type": "object", "additionalProperties": True}


def json_body(schema: dict[str, Any], *media_types: str) -> dict[str, Any]:
    """``openapi_extra`` for a route whose body is JSON of ``schema``."""
    content = {m: {"schema": schema} for m in (*media_types, "application/json")}
    return {"requestBody": {"required": True, "content": content}}


def multipart_body(parts: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema = {"type": "object", "properties": parts, "required": required}
    return {
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}
    }


def raw_body() -> dict[str, Any]:
    """Any bytes (a file's new content, a configuration snapshot)."""
    schema = {"type": "string", "format": "binary"}
    return {
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": schema}},
        }
    }


MANAGED_OBJECT: dict[str, Any] = {
    "type": "object",
    "properties": {"name": _STRING, "type": _STRING, "owner": _STRING},
    "additionalProperties": True,
}
REFERENCE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "managedObject": {"type": "object", "properties": {"id": _STRING}, "required": ["id"]}
    },
    "required": ["managedObject"],
}
TENANT_OPTION: dict[str, Any] = {
    "type": "object",
    "properties": {"category": _STRING, "key": _STRING, "value": _STRING},
    "required": ["category", "key", "value"],
}
TENANT_OPTION_UPDATE: dict[str, Any] = {
    "type": "object",
    "properties": {"value": _STRING},
    "required": ["value"],
}
EXTERNAL_ID: dict[str, Any] = {
    "type": "object",
    "properties": {"type": _STRING, "externalId": _STRING},
    "required": ["type", "externalId"],
}
_USER_FIELDS: dict[str, Any] = {
    "userName": _STRING,
    "password": _STRING,
    "enabled": {"type": "boolean"},
    "email": _STRING,
    "firstName": _STRING,
    "lastName": _STRING,
}
USER_CREATE: dict[str, Any] = {
    "type": "object",
    "properties": _USER_FIELDS,
    "required": ["userName", "password"],
}
USER_UPDATE: dict[str, Any] = {"type": "object", "properties": _USER_FIELDS}
ROLE_REFERENCE: dict[str, Any] = {
    "type": "object",
    "properties": {"role": {"type": "object", "properties": {"id": _STRING, "self": _STRING}}},
    "required": ["role"],
}
DEVICE_REQUEST: dict[str, Any] = {
    "type": "object",
    "properties": {"id": _STRING},
    "required": ["id"],
}
DEVICE_REQUEST_UPDATE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "status": {"enum": ["WAITING_FOR_CONNECTION", "PENDING_ACCEPTANCE", "ACCEPTED"]}
    },
    "required": ["status"],
}
_OPERATION_STATUS = {"enum": ["PENDING", "EXECUTING", "SUCCESSFUL", "FAILED"]}
OPERATION: dict[str, Any] = {
    "type": "object",
    "properties": {
        "deviceId": _STRING,
        "description": _STRING,
        "c8y_Restart": _FRAGMENTS,
        "c8y_Firmware": {
            "type": "object",
            "properties": {"name": _STRING, "version": _STRING, "url": _STRING},
        },
    },
    "required": ["deviceId"],
    "additionalProperties": True,
}
OPERATION_UPDATE: dict[str, Any] = {
    "type": "object",
    "properties": {"status": _OPERATION_STATUS, "failureReason": _STRING, "description": _STRING},
    "additionalProperties": True,
}
TRACE_START: dict[str, Any] = {
    "type": "object",
    "properties": {"durationSeconds": {"type": "integer", "minimum": 1, "maximum": 259200}},
    "required": ["durationSeconds"],
    "additionalProperties": True,
}
_TRUST_STATUS = {"enum": ["ENABLED", "DISABLED"]}
TRUSTED_CERTIFICATE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": _STRING,
        "certInPemFormat": _STRING,
        "status": _TRUST_STATUS,
        "autoRegistrationEnabled": {"type": "boolean"},
    },
    "required": ["certInPemFormat", "status"],
}
TRUSTED_CERTIFICATE_UPDATE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": _STRING,
        "status": _TRUST_STATUS,
        "autoRegistrationEnabled": {"type": "boolean"},
    },
}
BINARY_UPLOAD = multipart_body(
    {"file": {"type": "string", "format": "binary"}, "object": _STRING}, ["file"]
)
CSV_UPLOAD = multipart_body({"file": {"type": "string", "format": "binary"}}, ["file"])

#: A numeric id in a path, read as text and parsed by :func:`fleetgate.domain.ids.parse_id`
#: (the schema says what it accepts: ASCII digits, at most 2^63-1).
IdPath = Annotated[
    str,
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^[0-9]{1,19}$",
            "description": "a whole number from 1 to 9223372036854775807",
        }
    ),
]


BULK_OPERATION: dict[str, Any] = {
    "type": "object",
    "properties": {
        "groupId": _STRING,
        "failedParentId": _STRING,
        "startDate": {"type": "string", "format": "date-time"},
        "creationRamp": {"type": "number", "minimum": 0},
        "operationPrototype": _FRAGMENTS,
        "note": _STRING,
        "fleetgate_Rollout": _FRAGMENTS,
        "fleetgate_Targets": {
            "type": "object",
            "properties": {"query": _STRING},
            "required": ["query"],
        },
    },
    "additionalProperties": True,
}


_TENANT_FIELDS: dict[str, Any] = {
    "id": _STRING,
    "company": _STRING,
    "domain": _STRING,
    "adminName": _STRING,
    "adminPass": _STRING,
    "adminEmail": _STRING,
    "contactName": _STRING,
    "contactPhone": _STRING,
    "status": {"enum": ["ACTIVE", "SUSPENDED"]},
}
TENANT_CREATE: dict[str, Any] = {
    "type": "object",
    "properties": _TENANT_FIELDS,
    "required": ["company", "domain", "adminName", "adminPass"],
}
TENANT_UPDATE: dict[str, Any] = {"type": "object", "properties": _TENANT_FIELDS}
MIGRATION: dict[str, Any] = {
    "type": "object",
    "properties": {
        "deviceId": _STRING,
        "targetTenant": _STRING,
        "withChildren": {"type": "boolean"},
    },
    "required": ["deviceId", "targetTenant"],
}
MIGRATION_CODE: dict[str, Any] = {
    "type": "object",
    "properties": {"code": {"type": "string", "pattern": "^[0-9]{8}$"}},
    "required": ["code"],
}
