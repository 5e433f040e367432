"""Bootstrap use cases: new device requests (operators) and credentials (devices).

The same decision serves HTTP (``POST /devicecontrol/deviceCredentials``) and MQTT
(``fg/bootstrap/<tenant>/<id>/request``): :func:`fleetgate.domain.bootstrap.device_asks`.
Issued passwords are 192 random bits, handed out once, stored only as a hash; being
random, they are hashed with cheaper scrypt parameters than operator-chosen passwords
(see docs/decisions/0003), so the broker's first check of each costs ~1 ms, not ~35 ms.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

from fleetgate.domain import broker_control as control
from fleetgate.domain.bootstrap import (
    Answer,
    NewDeviceRequest,
    RateLimit,
    check_request_id,
    device_asks,
    operator_moves,
    parse_status,
)
from fleetgate.domain.devices import device_username, is_device_id
from fleetgate.domain.errors import Conflict, ValidationFailed
from fleetgate.domain.json_input import JsonLimits, parse_json
from fleetgate.domain.passwords import generate_secret, hash_password
from fleetgate.domain.topics import BootstrapTopic
from fleetgate.services.ports import BrokerPush, NewDeviceRequests

log = logging.getLogger(__name__)

#: A bootstrap request is ``{}``; its content is not read, but it must be JSON.
_REQUEST_LIMITS = JsonLimits(max_bytes=4096)
#: scrypt cost for generated device passwords (random, ≥128 bits: no dictionary to resist).
GENERATED_LOG2_N = 10


@dataclass(frozen=True, slots=True)
class IssuedCredentials:
    id: str
    tenant_id: str
    username: str
    password: str


class Bootstrap:
    def __init__(
        self,
        requests: NewDeviceRequests,
        broker: BrokerPush,
        rate_limit: RateLimit | None = None,
    ) -> None:
        self._requests = requests
        self._broker = broker
        self._rate = rate_limit or RateLimit()

    # -- operators -----------------------------------------------------------------------

    async def register(self, tenant_id: str, body: dict[str, Any]) -> NewDeviceRequest:
        return await self._requests.create(tenant_id, check_request_id(body.get("id")))

    async def get(self, tenant_id: str, request_id: str) -> NewDeviceRequest:
        return await self._requests.get(tenant_id, request_id)

    async def page(
        self, tenant_id: str, offset: int, limit: int, *, count: bool
    ) -> tuple[list[NewDeviceRequest], int | None]:
        items = await self._requests.find(tenant_id, offset, limit)
        return items, (await self._requests.count(tenant_id) if count else None)

    async def update(
        self, tenant_id: str, request_id: str, body: dict[str, Any]
    ) -> NewDeviceRequest:
        if "status" not in body:
            raise ValidationFailed("status is required")
        if "id" in body and body["id"] != request_id:
            raise ValidationFailed("id cannot be changed")
        wanted = parse_status(body["status"])
        return await self._requests.move(
            tenant_id, request_id, lambda current: operator_moves(current, wanted)
        )

    async def delete(self, tenant_id: str, request_id: str) -> None:
        await self._requests.delete(tenant_id, request_id)

    # -- devices -------------------------------------------------------------------------

    async def ask(self, tenant_id: str, device_id: str) -> IssuedCredentials | Answer:
        """A device asks for its credentials: the credentials, or why not (yet)."""
        answer, _ = device_asks(await self._requests.status_of(tenant_id, device_id))
        if answer is Answer.PENDING:
            await self._requests.mark_pending(tenant_id, device_id)
            return answer
        if answer is Answer.NO_REQUEST:
            return answer
        password = generate_secret(24)
        password_hash = await asyncio.to_thread(hash_password, password, log2_n=GENERATED_LOG2_N)
        try:
            issued = await self._requests.issue(tenant_id, device_id, password_hash)
        except Conflict as taken:
            # Another tenant got the id between the operator's accept and this ask: the
            # request cannot be served, and says so to the operator (it stays ACCEPTED).
            log.warning("new device request %s of tenant %s: %s", device_id, tenant_id, taken)
            return Answer.NO_REQUEST
        if issued is None:
            return Answer.NO_REQUEST  # another ask was handed the credentials first
        if issued.enabled:
            lines = [
                control.device_account(tenant_id, device_id, password_hash),
                control.device(device_id, tenant_id, True),
            ]
        else:
            # An operator disabled this (existing) device: it gets its credentials, and
            # logs in with them once it is enabled (as services/broker.device_lines).
            lines = [
                control.device(device_id, tenant_id, False),
                control.account_remove(control.device_username(tenant_id, device_id)),
            ]
        await self._broker.push(lines)
        log.info("issued credentials to device %s of tenant %s", device_id, tenant_id)
        return IssuedCredentials(device_id, tenant_id, device_username(device_id), password)

    async def answer_mqtt_request(self, topic: str, payload: bytes) -> tuple[str, bytes] | None:
        """The broker bridge's handler of ``fg/bootstrap/<tenant>/<id>/request``: the reply
        to publish, or None for any other topic (the plugin admits only device ids as
        bootstrap client ids; anything else is not answered)."""
        parsed = BootstrapTopic.parse(topic)
        if (
            parsed is None
            or parsed.leaf != BootstrapTopic.REQUEST
            or not is_device_id(parsed.client_id)
        ):
            return None
        return await self.ask_over_mqtt(parsed, payload)

    async def ask_over_mqtt(self, topic: BootstrapTopic, payload: bytes) -> tuple[str, bytes]:
        """Answer one bootstrap request message: (reply topic, reply payload)."""
        if payload.strip():
            try:
                body = parse_json(payload, _REQUEST_LIMITS)
            except ValidationFailed:
                body = None
            if not isinstance(body, dict):
                return _reply(
                    topic,
                    BootstrapTopic.ERROR,
                    {
                        "error": "bootstrap/badRequest",
                        "message": "the request payload must be a JSON object (or empty)",
                    },
                )
        wait = self._rate.allow(f"{topic.tenant}/{topic.client_id}")
        if wait:
            return _reply(
                topic,
                BootstrapTopic.CREDENTIALS,
                {
                    "status": "RATE_LIMITED",
                    "retryAfter": round(wait, 1),
                },
            )
        result = await self.ask(topic.tenant, topic.client_id)
        if isinstance(result, IssuedCredentials):
            return _reply(
                topic,
                BootstrapTopic.CREDENTIALS,
                {
                    "status": "ACCEPTED",
                    "id": result.id,
                    "tenantId": result.tenant_id,
                    "username": result.username,
                    "password": result.password,
                    "mqttUsername": control.device_username(result.tenant_id, result.id),
                },
            )
        status = "PENDING_ACCEPTANCE" if result is Answer.PENDING else "NOT_FOUND"
        return _reply(topic, BootstrapTopic.CREDENTIALS, {"status": status})


def _reply(topic: BootstrapTopic, leaf: str, body: dict[str, Any]) -> tuple[str, bytes]:
    return str(topic.reply(leaf)), json.dumps(body).encode("utf-8")
