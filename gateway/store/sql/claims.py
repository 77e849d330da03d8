"""Claims of one-time claim tokens: a message is claimed once, whichever process asks first."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.domain.claims import Claim, ClaimResult
from gateway.store.schema import claims, messages
from gateway.store.sql.common import Room, dialect_insert


def claim_once(conn: Connection, tenant_id: str, claim: Claim, now: float) -> ClaimResult:
    """VALID for the first claim of the message, CLAIMED (a refused replay, counted) after it, FORGED
    when this tenant has no such message of that campaign. The insert is conditional on the primary
    key, so of concurrent verifies in any number of processes exactly one inserts."""
    campaign = conn.execute(
        sa.select(messages.c.campaign).where(messages.c.id == claim.message_id, messages.c.tenant_id == tenant_id)
    ).first()
    if campaign is None or campaign[0] != claim.campaign:
        return ClaimResult.FORGED
    inserted = conn.execute(
        dialect_insert(conn, claims)
        .values(message_id=claim.message_id, tenant_id=tenant_id, campaign=claim.campaign, claimed_at=now)
        .on_conflict_do_nothing(index_elements=["message_id"])
        .returning(claims.c.message_id)
    ).first()
    if inserted is not None:
        return ClaimResult.VALID
    conn.execute(claims.update().where(claims.c.message_id == claim.message_id).values(refused=claims.c.refused + 1))
    return ClaimResult.CLAIMED


class ClaimsRoom(Room):
    async def claim_once(self, tenant_id: str, claim: Claim, now: float) -> ClaimResult:
        return await self.db.write(claim_once, tenant_id, claim, now)
