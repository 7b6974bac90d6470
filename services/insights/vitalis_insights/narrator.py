"""Writing narratives: facts first, then words (templates or the configured model), then one row.

Used by NarrativeService on request and by the engine, which writes each user's weekly summary
when the first data of a new week arrives.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Final

import asyncpg
from google.protobuf import json_format

from vitalis.insights.v1 import events_pb2, narrative_pb2
from vitalis_insights.adapters.text_provider import TextProviders
from vitalis_insights.facts import facts_text
from vitalis_insights.store.insights import PRODUCER, SCHEMA
from vitalis_runtime.outbox import add_to_outbox

PROMPT_VERSION: Final = "summary-v1"
INSTRUCTIONS: Final = (
    "You write short, friendly health summaries in Markdown. Quote only the numbers given to you, "
    "exactly as given; do not diagnose; suggest talking to a clinician for anything worrying."
)
TITLES: Final = {
    narrative_pb2.NARRATIVE_KIND_WEEKLY_SUMMARY: "Your week",
    narrative_pb2.NARRATIVE_KIND_MONTHLY_SUMMARY: "Your month",
    narrative_pb2.NARRATIVE_KIND_PANEL_SUMMARY: "Your blood panel",
}


class Narrator:
    """Words a set of facts with the configured provider and stores the narrative."""

    def __init__(self, providers: TextProviders) -> None:
        self._providers = providers

    async def compose(
        self,
        user_id: uuid.UUID,
        kind: int,
        start: datetime,
        end: datetime,
        facts: list[narrative_pb2.GroundedFact],
    ) -> tuple[str, str, narrative_pb2.TextGenerator]:
        """Title, Markdown body and generator of a narrative about ``facts``."""
        provider = await self._providers.for_user(user_id)
        title = f"{TITLES[kind]}: {start.date().isoformat()} to {end.date().isoformat()}"  # type: ignore[index]
        template = f"## {title}\n\n{facts_text(facts)}"
        body = "".join(
            [fragment async for fragment in provider.stream(INSTRUCTIONS, facts_text(facts), template)]
        )
        generator = narrative_pb2.TextGenerator(
            provider=provider.name, model=provider.model, prompt_version=PROMPT_VERSION
        )
        return title, body, generator

    @staticmethod
    async def store(
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        *,
        kind: int,
        start: datetime,
        end: datetime,
        text: tuple[str, str, narrative_pb2.TextGenerator],
        facts: list[narrative_pb2.GroundedFact],
        request_id: uuid.UUID | None = None,
        automatic: bool = False,
    ) -> asyncpg.Record | None:
        """Insert the narrative and its event; None when one with the same request id or (automatic)
        period exists already."""
        title, body, generator = text
        row: asyncpg.Record | None = await conn.fetchrow(
            """INSERT INTO narratives (user_id, narrative_id, kind, period_start, period_end, title, body,
                                       facts, generator, language_code, request_id, automatic)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'en', $10, $11)
               ON CONFLICT DO NOTHING RETURNING *""",
            user_id,
            uuid.uuid4(),
            kind,
            start,
            end,
            title,
            body,
            [json_format.MessageToDict(fact) for fact in facts],
            json_format.MessageToDict(generator),
            request_id,
            automatic,
        )
        if row is None:
            return None
        event = events_pb2.NarrativeGenerated(
            user=f"users/{user_id}",
            narrative=f"users/{user_id}/narratives/{row['narrative_id']}",
            kind=kind,  # type: ignore[arg-type]
        )
        event.occur_time.FromDatetime(row["create_time"])
        await add_to_outbox(conn, schema=SCHEMA, producer=PRODUCER, user_id=user_id, message=event)
        return row
