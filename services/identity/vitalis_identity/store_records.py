"""SQL for consents, share grants and the audit log."""

# Like store.py: SQL is composed from constant column lists only; values are always bind parameters.
# ruff: noqa: S608

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg

from vitalis_identity.domain.audit import AuditAction, AuditEntry
from vitalis_identity.domain.consents import Consent, ConsentEvent, ConsentType
from vitalis_identity.domain.grants import ShareGrant, ShareScope
from vitalis_identity.listing import ListQuery

_CONSENT_COLUMNS = "user_id, consent_type, granted, version, grant_time, revoke_time, update_time, revision"
_EVENT_COLUMNS = "user_id, event_id, consent_type, action, version, occur_time, user_agent, client_ip"


def _consent(row: asyncpg.Record) -> Consent:
    return Consent(
        user_id=row["user_id"],
        type=ConsentType(row["consent_type"]),
        granted=row["granted"],
        version=row["version"],
        grant_time=row["grant_time"],
        revoke_time=row["revoke_time"],
        update_time=row["update_time"],
        revision=row["revision"],
    )


def _event(row: asyncpg.Record) -> ConsentEvent:
    return ConsentEvent(
        user_id=row["user_id"],
        event_id=row["event_id"],
        type=ConsentType(row["consent_type"]),
        action=row["action"],
        version=row["version"],
        occur_time=row["occur_time"],
        user_agent=row["user_agent"],
        client_ip=row["client_ip"],
    )


class ConsentStore:
    """Current consents and their events."""

    async def get(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, consent_type: ConsentType
    ) -> Consent | None:
        """The current consent of one type, locked for the rest of the transaction."""
        row = await conn.fetchrow(
            f"SELECT {_CONSENT_COLUMNS} FROM consents WHERE user_id = $1 AND consent_type = $2 FOR UPDATE",
            user_id,
            consent_type.value,
        )
        return _consent(row) if row else None

    async def event_for_request(self, conn: asyncpg.Connection, user_id: uuid.UUID, request_id: str) -> bool:
        """Whether an event was already recorded for this request id."""
        found = await conn.fetchval(
            "SELECT true FROM consent_events WHERE user_id = $1 AND request_id = $2", user_id, request_id
        )
        return bool(found)

    async def record(
        self,
        conn: asyncpg.Connection,
        consent: Consent,
        *,
        action: str,
        user_agent: str,
        client_ip: str,
        request_id: str | None,
    ) -> Consent:
        """Upsert the current consent and append its event."""
        row = await conn.fetchrow(
            f"""INSERT INTO consents (user_id, consent_type, granted, version, grant_time, revoke_time)
                VALUES ($1, $2, $3, $4, $5, $6)
                ON CONFLICT (user_id, consent_type) DO UPDATE SET granted = EXCLUDED.granted,
                    version = EXCLUDED.version, grant_time = EXCLUDED.grant_time,
                    revoke_time = EXCLUDED.revoke_time, update_time = now(), revision = consents.revision + 1
                RETURNING {_CONSENT_COLUMNS}""",
            consent.user_id,
            consent.type.value,
            consent.granted,
            consent.version,
            consent.grant_time,
            consent.revoke_time,
        )
        await conn.execute(
            """INSERT INTO consent_events (user_id, event_id, consent_type, action, version, user_agent,
                                           client_ip, request_id)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
            consent.user_id,
            uuid.uuid4(),
            consent.type.value,
            action,
            consent.version,
            user_agent[:256],
            client_ip[:64],
            request_id,
        )
        assert row is not None
        return _consent(row)

    async def list_page(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, query: ListQuery, limit: int
    ) -> list[Consent]:
        """A page of current consents ordered by type."""
        query.where("user_id = {}", user_id)
        rows = await conn.fetch(
            query.sql(
                f"SELECT {_CONSENT_COLUMNS} FROM consents",
                "grant_time",
                "consent_type",
                descending=False,
                limit=limit,
            ),
            *query.params,
        )
        return [_consent(r) for r in rows]

    async def list_events(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, query: ListQuery, limit: int
    ) -> list[ConsentEvent]:
        """A page of consent events, newest first."""
        query.where("user_id = {}", user_id)
        rows = await conn.fetch(
            query.sql(
                f"SELECT {_EVENT_COLUMNS} FROM consent_events",
                "occur_time",
                "event_id",
                descending=True,
                limit=limit,
            ),
            *query.params,
        )
        return [_event(r) for r in rows]


_GRANT_COLUMNS = """user_id, grant_id, grantee_id, grantee_email, grantee_display_name, owner_display_name,
    scopes, expire_time, note, create_time, revoke_time, version"""
GRANT_STATE_SQL = """CASE WHEN revoke_time IS NOT NULL THEN 'revoked'
    WHEN expire_time <= now() THEN 'expired' ELSE 'active' END"""


def _grant(row: asyncpg.Record) -> ShareGrant:
    return ShareGrant(
        owner_id=row["user_id"],
        grant_id=row["grant_id"],
        grantee_id=row["grantee_id"],
        grantee_email=row["grantee_email"],
        grantee_display_name=row["grantee_display_name"],
        owner_display_name=row["owner_display_name"],
        scopes=tuple(ShareScope(s) for s in row["scopes"]),
        expire_time=row["expire_time"],
        note=row["note"],
        create_time=row["create_time"],
        revoke_time=row["revoke_time"],
        version=row["version"],
    )


class GrantStore:
    """Share grants, readable by owner and grantee, written by the owner."""

    async def create(self, conn: asyncpg.Connection, grant: ShareGrant, request_id: str | None) -> ShareGrant:
        """Insert a grant."""
        row = await conn.fetchrow(
            f"""INSERT INTO share_grants (user_id, grant_id, grantee_id, grantee_email, grantee_display_name,
                    owner_display_name, scopes, expire_time, note, request_id)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {_GRANT_COLUMNS}""",
            grant.owner_id,
            grant.grant_id,
            grant.grantee_id,
            grant.grantee_email,
            grant.grantee_display_name,
            grant.owner_display_name,
            [s.value for s in grant.scopes],
            grant.expire_time,
            grant.note,
            request_id,
        )
        assert row is not None
        return _grant(row)

    async def by_request(
        self, conn: asyncpg.Connection, owner_id: uuid.UUID, request_id: str
    ) -> ShareGrant | None:
        """The grant an earlier request with this id created."""
        row = await conn.fetchrow(
            f"SELECT {_GRANT_COLUMNS} FROM share_grants WHERE user_id = $1 AND request_id = $2",
            owner_id,
            request_id,
        )
        return _grant(row) if row else None

    async def get(
        self, conn: asyncpg.Connection, owner_id: uuid.UUID, grant_id: uuid.UUID
    ) -> ShareGrant | None:
        """One grant, if the unit of work's user is its owner or grantee."""
        row = await conn.fetchrow(
            f"SELECT {_GRANT_COLUMNS} FROM share_grants WHERE user_id = $1 AND grant_id = $2",
            owner_id,
            grant_id,
        )
        return _grant(row) if row else None

    async def revoke(self, conn: asyncpg.Connection, grant: ShareGrant) -> ShareGrant | None:
        """Revoke an active grant at its current version."""
        row = await conn.fetchrow(
            f"""UPDATE share_grants SET revoke_time = clock_timestamp(), version = version + 1
                WHERE user_id = $1 AND grant_id = $2 AND version = $3 RETURNING {_GRANT_COLUMNS}""",
            grant.owner_id,
            grant.grant_id,
            grant.version,
        )
        return _grant(row) if row else None

    async def list_page(self, conn: asyncpg.Connection, query: ListQuery, limit: int) -> list[ShareGrant]:
        """A page of grants matching ``query``, newest first."""
        rows = await conn.fetch(
            query.sql(
                f"SELECT {_GRANT_COLUMNS} FROM share_grants",
                "create_time",
                "grant_id",
                descending=True,
                limit=limit,
            ),
            *query.params,
        )
        return [_grant(r) for r in rows]

    async def live_grant(
        self, conn: asyncpg.Connection, owner_id: uuid.UUID, grantee_id: uuid.UUID, scope: ShareScope
    ) -> ShareGrant | None:
        """The live grant from owner to grantee covering ``scope`` that lasts longest, if any."""
        row = await conn.fetchrow(
            f"""SELECT {_GRANT_COLUMNS} FROM share_grants
                WHERE user_id = $1 AND grantee_id = $2 AND $3 = ANY(scopes)
                  AND revoke_time IS NULL AND expire_time > clock_timestamp()
                ORDER BY expire_time DESC LIMIT 1""",
            owner_id,
            grantee_id,
            scope.value,
        )
        return _grant(row) if row else None

    async def all_for(self, conn: asyncpg.Connection, user_id: uuid.UUID) -> list[ShareGrant]:
        """Every grant the user gave or received."""
        rows = await conn.fetch(
            f"""SELECT {_GRANT_COLUMNS} FROM share_grants WHERE user_id = $1 OR grantee_id = $1
                ORDER BY create_time""",
            user_id,
        )
        return [_grant(r) for r in rows]


_AUDIT_COLUMNS = """user_id, entry_id, insert_id, occur_time, actor, action, service, method, resource,
    share_grant, client_ip, user_agent, request_id, trace_id, status_code"""


def _audit(row: asyncpg.Record) -> AuditEntry:
    values = {key: row[key] for key in row.keys()}  # noqa: SIM118 - a Record, not a dict
    values["action"] = AuditAction(values["action"])
    return AuditEntry(**values)


class AuditStore:
    """The append-only audit log."""

    async def append(self, conn: asyncpg.Connection, entries: Sequence[AuditEntry]) -> int:
        """Insert entries of the unit of work's user in one statement; skip insert ids already recorded."""
        if not entries:
            return 0
        columns = [
            [e.user_id for e in entries],
            [e.entry_id for e in entries],
            [e.insert_id for e in entries],
            [e.occur_time for e in entries],
            [e.actor for e in entries],
            [e.action.value for e in entries],
            [e.service for e in entries],
            [e.method for e in entries],
            [e.resource for e in entries],
            [e.share_grant for e in entries],
            [e.client_ip[:64] for e in entries],
            [e.user_agent[:256] for e in entries],
            [e.request_id[:128] for e in entries],
            [e.trace_id[:64] for e in entries],
            [e.status_code for e in entries],
        ]
        status: str = await conn.execute(
            """INSERT INTO audit_log (user_id, entry_id, insert_id, occur_time, actor, action, service,
                    method,
                    resource, share_grant, client_ip, user_agent, request_id, trace_id, status_code)
               SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::text[],
                    $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
                    $13::text[], $14::text[], $15::int[])
               ON CONFLICT (user_id, insert_id) DO NOTHING""",
            *columns,
        )
        return int(status.rsplit(maxsplit=1)[-1])

    async def act_for(self, conn: asyncpg.Connection, user_id: uuid.UUID) -> None:
        """Switch the unit of work to another user (a batch about several users)."""
        await conn.execute("SELECT set_config('app.current_user_id', $1, true)", str(user_id))

    async def list_page(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, query: ListQuery, limit: int, *, descending: bool
    ) -> list[AuditEntry]:
        """A page of the user's entries."""
        query.where("user_id = {}", user_id)
        rows = await conn.fetch(
            query.sql(
                f"SELECT {_AUDIT_COLUMNS} FROM audit_log",
                "occur_time",
                "entry_id",
                descending=descending,
                limit=limit,
            ),
            *query.params,
        )
        return [_audit(r) for r in rows]
