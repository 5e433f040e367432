"""Trusted certificates in PostgreSQL (table ``trusted_certificate``)."""

from __future__ import annotations

import asyncpg

from fleetgate.db.locks import lock_trusted_subject
from fleetgate.domain.certificates import CertificateFacts
from fleetgate.domain.errors import Conflict, NotFound
from fleetgate.domain.trust import (
    TrustedCertificate,
    TrustStatus,
    subject_key,
    subject_taken,
)

_ALREADY_UPLOADED = "certificate already uploaded"


def _certificate(row: asyncpg.Record) -> TrustedCertificate:
    return TrustedCertificate(
        tenant_id=row["tenant_id"],
        name=row["name"],
        status=TrustStatus(row["status"]),
        auto_registration=row["auto_registration"],
        facts=CertificateFacts(
            fingerprint=row["fingerprint"],
            subject=row["subject"],
            issuer=row["issuer"],
            serial_number=row["serial_number"],
            algorithm_name=row["algorithm_name"],
            version=3,
            not_before=row["not_before"],
            not_after=row["not_after"],
            der=bytes(row["der"]),
            pem=row["pem"],
        ),
    )


class PgTrustStore:
    """The :class:`fleetgate.services.ports.TrustStore` on PostgreSQL."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def add(self, cert: TrustedCertificate) -> TrustedCertificate:
        """Store a new certificate; :class:`Conflict` when its fingerprint is known, or
        when another stored certificate has its subject (:func:`subject_key`).

        Both are unique across tenants. The fingerprint's message is the same whichever
        tenant holds it, so that nobody learns another tenant's certificates; the subject's
        says that the name is taken, which the broker's TLS leaves no way around.
        """
        facts = cert.facts
        key = subject_key(facts.subject)
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await lock_trusted_subject(conn, key)
                if await conn.fetchval(
                    "SELECT 1 FROM trusted_certificate WHERE subject_key = $1"
                    " AND fingerprint <> $2 LIMIT 1",
                    key,
                    facts.fingerprint,
                ):
                    raise subject_taken(facts.subject)
                row = await conn.fetchrow(
                    """
                    INSERT INTO trusted_certificate
                        (fingerprint, tenant_id, name, status, auto_registration, der, pem,
                         subject, issuer, serial_number, algorithm_name, not_before,
                         not_after, subject_key)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
                    RETURNING *
                    """,
                    facts.fingerprint,
                    cert.tenant_id,
                    cert.name,
                    cert.status.value,
                    cert.auto_registration,
                    facts.der,
                    facts.pem,
                    facts.subject,
                    facts.issuer,
                    facts.serial_number,
                    facts.algorithm_name,
                    facts.not_before,
                    facts.not_after,
                    key,
                )
        except asyncpg.UniqueViolationError:
            raise Conflict(_ALREADY_UPLOADED) from None
        except asyncpg.ForeignKeyViolationError:
            raise NotFound(f"tenant {cert.tenant_id} not found") from None
        assert row is not None
        return _certificate(row)

    async def get(self, tenant_id: str, fingerprint: str) -> TrustedCertificate | None:
        row = await self._pool.fetchrow(
            "SELECT * FROM trusted_certificate WHERE tenant_id = $1 AND fingerprint = $2",
            tenant_id,
            fingerprint,
        )
        return None if row is None else _certificate(row)

    async def list_certificates(
        self, tenant_id: str, offset: int, limit: int
    ) -> list[TrustedCertificate]:
        """One page of the tenant's certificates, oldest first."""
        rows = await self._pool.fetch(
            """
            SELECT * FROM trusted_certificate WHERE tenant_id = $1
             ORDER BY created_at, fingerprint OFFSET $2 LIMIT $3
            """,
            tenant_id,
            offset,
            limit,
        )
        return [_certificate(r) for r in rows]

    async def count(self, tenant_id: str) -> int:
        value = await self._pool.fetchval(
            "SELECT count(*) FROM trusted_certificate WHERE tenant_id = $1", tenant_id
        )
        return int(value)

    async def update(self, cert: TrustedCertificate) -> TrustedCertificate | None:
        """Write the editable fields; None when the certificate is gone meanwhile."""
        row = await self._pool.fetchrow(
            """
            UPDATE trusted_certificate
               SET name = $3, status = $4, auto_registration = $5, updated_at = now()
             WHERE tenant_id = $1 AND fingerprint = $2
            RETURNING *
            """,
            cert.tenant_id,
            cert.fingerprint,
            cert.name,
            cert.status.value,
            cert.auto_registration,
        )
        return None if row is None else _certificate(row)

    async def delete(self, tenant_id: str, fingerprint: str) -> bool:
        """Remove the certificate; False when the tenant has no such certificate."""
        status = await self._pool.execute(
            "DELETE FROM trusted_certificate WHERE tenant_id = $1 AND fingerprint = $2",
            tenant_id,
            fingerprint,
        )
        return status == "DELETE 1"

    async def all_certificates(self) -> list[TrustedCertificate]:
        """Every tenant's certificates: the broker's full trust state."""
        rows = await self._pool.fetch(
            "SELECT * FROM trusted_certificate ORDER BY tenant_id, created_at, fingerprint"
        )
        return [_certificate(r) for r in rows]
