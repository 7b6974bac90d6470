"""Writing events: into the outbox table, inside the transaction of the change they announce.

Because the event row commits or rolls back together with the change, there is no window in which
the change is visible but its event lost, or an event published for a change that never happened.
:class:`vitalis_runtime.relay.OutboxRelay` publishes committed rows to Redis Streams.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping

import asyncpg
from google.protobuf.message import Message
from opentelemetry import propagate

from vitalis_runtime.db import sql_identifier
from vitalis_runtime.events import Event


async def add_to_outbox(
    conn: asyncpg.Connection,
    *,
    schema: str,
    producer: str,
    message: Message,
    user_id: uuid.UUID | None,
    headers: Mapping[str, str] | None = None,
) -> Event:
    """Record ``message`` as an event of ``producer`` about ``user_id``; return the event.

    Must run inside the caller's transaction. The current trace context (when a span is
    active) is injected into the headers, so the consumer's work joins the producer's trace;
    explicit ``headers`` (such as the request id) win over injected ones.
    """
    if not conn.is_in_transaction():
        raise RuntimeError("add_to_outbox must run inside the transaction of the change it announces")
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    carrier.update(headers or {})
    event_id = uuid.uuid4()
    event_type = message.DESCRIPTOR.full_name
    payload = message.SerializeToString(deterministic=True)
    occur_time = await conn.fetchval(
        f"""INSERT INTO {sql_identifier(schema)}.outbox
                (event_id, event_type, producer, event_user_id, payload, headers, occur_time)
            VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, now())
            RETURNING occur_time""",  # noqa: S608
        event_id,
        event_type,
        producer,
        user_id,
        payload,
        json.dumps(carrier),
    )
    return Event(
        id=event_id,
        type=event_type,
        producer=producer,
        user_id=user_id,
        payload=payload,
        occur_time=occur_time,
        headers=carrier,
    )
