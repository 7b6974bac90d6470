"""vitalis.insights.v1.CoachService: conversations whose answers are grounded in the user's data."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Final

import asyncpg
import grpc
from google.protobuf import empty_pb2, json_format
from google.protobuf.timestamp_pb2 import Timestamp

from vitalis.insights.v1 import coach_service_pb2, coach_service_pb2_grpc, conversation_pb2, narrative_pb2
from vitalis_insights.adapters.allowance import DailyAllowance
from vitalis_insights.adapters.text_provider import TextProvider, TextProviders
from vitalis_insights.api.names import not_found, parse_request_id, resolve_parent, resolve_uuid_child
from vitalis_insights.facts import facts_text, gather_facts
from vitalis_runtime.auth import current_principal
from vitalis_runtime.db import Database
from vitalis_runtime.errors import Aborted, FailedPrecondition, InvalidArgument
from vitalis_runtime.pagination import PageTokens, resolve_page_size

PROMPT_VERSION: Final = "coach-v1"
INSTRUCTIONS: Final = (
    "You are a health coach. Answer the user's question in a few sentences of Markdown, using only the "
    "numbers from their data given below, exactly as given. Do not diagnose."
)
USER: Final = conversation_pb2.MESSAGE_ROLE_USER
COACH: Final = conversation_pb2.MESSAGE_ROLE_COACH

Context = grpc.aio.ServicerContext[object, object]


def _stamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def conversation_to_proto(row: asyncpg.Record) -> conversation_pb2.Conversation:
    """The Conversation message of a row."""
    return conversation_pb2.Conversation(
        name=f"users/{row['user_id']}/conversations/{row['conversation_id']}",
        title=row["title"],
        message_count=row["message_count"],
        create_time=_stamp(row["create_time"]),
        update_time=_stamp(row["update_time"]),
        etag=str(row["version"]),
    )


def message_to_proto(row: asyncpg.Record) -> conversation_pb2.Message:
    """The Message message of a row; ids are zero-padded so they sort in conversation order."""
    message = conversation_pb2.Message(
        name=f"users/{row['user_id']}/conversations/{row['conversation_id']}/messages/{row['message_seq']:08d}",
        role=row["role"],
        text=row["text"],
        state=row["state"],
        create_time=_stamp(row["create_time"]),
    )
    for fact in row["facts"]:
        json_format.ParseDict(fact, message.facts.add())
    if row["generator"]:
        json_format.ParseDict(row["generator"], message.generator)
    return message


class CoachServicer(coach_service_pb2_grpc.CoachServiceServicer):
    """Private conversations with the coach."""

    def __init__(
        self, db: Database, tokens: PageTokens, providers: TextProviders, allowance: DailyAllowance
    ) -> None:
        self._db = db
        self._allowance = allowance
        self._tokens = tokens
        self._providers = providers
        self._queues: dict[asyncio.Task[asyncpg.Record], asyncio.Queue[str | None]] = {}

    async def CreateConversation(
        self, request: coach_service_pb2.CreateConversationRequest, context: Context
    ) -> conversation_pb2.Conversation:
        """Start a conversation."""
        user_id = resolve_parent(request.parent)
        title = request.conversation.title
        if len(title) > 200:
            raise InvalidArgument.for_field("conversation.title", "must be at most 200 characters")
        request_id = parse_request_id(request.request_id)
        async with self._db.transaction(user_id=user_id) as conn:
            row = await conn.fetchrow(
                """INSERT INTO conversations (user_id, conversation_id, title, request_id)
                   VALUES ($1, $2, $3, $4)
                   ON CONFLICT (user_id, request_id) WHERE request_id IS NOT NULL DO NOTHING RETURNING *""",
                user_id,
                uuid.uuid4(),
                title,
                request_id,
            )
            if row is None:
                row = await conn.fetchrow(
                    "SELECT * FROM conversations WHERE user_id = $1 AND request_id = $2", user_id, request_id
                )
        return conversation_to_proto(row)

    async def _get(self, conn: asyncpg.Connection, name: str) -> asyncpg.Record:
        user_id, conversation_id = resolve_uuid_child(name, "conversations", field="name")
        row = await conn.fetchrow(
            "SELECT * FROM conversations WHERE user_id = $1 AND conversation_id = $2",
            user_id,
            conversation_id,
        )
        if row is None:
            raise not_found(name)
        return row

    async def GetConversation(
        self, request: coach_service_pb2.GetConversationRequest, context: Context
    ) -> conversation_pb2.Conversation:
        """One conversation."""
        user_id, _ = resolve_uuid_child(request.name, "conversations")
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            return conversation_to_proto(await self._get(conn, request.name))

    async def ListConversations(
        self, request: coach_service_pb2.ListConversationsRequest, context: Context
    ) -> coach_service_pb2.ListConversationsResponse:
        """Conversations, most recently updated first."""
        user_id = resolve_parent(request.parent)
        size = resolve_page_size(request.page_size)
        fingerprint = {"parent": str(user_id)}
        offset = int(self._tokens.decode(request.page_token, request=fingerprint).get("offset", 0))
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            rows = await conn.fetch(
                """SELECT * FROM conversations WHERE user_id = $1
                   ORDER BY update_time DESC, conversation_id LIMIT $2 OFFSET $3""",
                user_id,
                size + 1,
                offset,
            )
        response = coach_service_pb2.ListConversationsResponse(
            conversations=[conversation_to_proto(row) for row in rows[:size]]
        )
        if len(rows) > size:
            response.next_page_token = self._tokens.encode({"offset": offset + size}, request=fingerprint)
        return response

    async def UpdateConversation(
        self, request: coach_service_pb2.UpdateConversationRequest, context: Context
    ) -> conversation_pb2.Conversation:
        """Rename a conversation."""
        paths = list(request.update_mask.paths) if request.HasField("update_mask") else ["title"]
        if any(path != "title" for path in paths):
            raise InvalidArgument.for_field("update_mask", "only title can be changed")
        if len(request.conversation.title) > 200:
            raise InvalidArgument.for_field("conversation.title", "must be at most 200 characters")
        user_id, conversation_id = resolve_uuid_child(
            request.conversation.name, "conversations", field="conversation.name"
        )
        async with self._db.transaction(user_id=user_id) as conn:
            row = await self._get(conn, request.conversation.name)
            if request.conversation.etag and request.conversation.etag != str(row["version"]):
                raise Aborted("the conversation changed since it was read", reason="ETAG_MISMATCH")
            row = await conn.fetchrow(
                """UPDATE conversations SET title = $3, update_time = now(), version = version + 1
                   WHERE user_id = $1 AND conversation_id = $2 RETURNING *""",
                user_id,
                conversation_id,
                request.conversation.title,
            )
        return conversation_to_proto(row)

    async def DeleteConversation(
        self, request: coach_service_pb2.DeleteConversationRequest, context: Context
    ) -> empty_pb2.Empty:
        """Delete a conversation and its messages."""
        user_id, conversation_id = resolve_uuid_child(request.name, "conversations")
        async with self._db.transaction(user_id=user_id) as conn:
            row = await self._get(conn, request.name)
            if request.etag and request.etag != str(row["version"]):
                raise Aborted("the conversation changed since it was read", reason="ETAG_MISMATCH")
            await conn.execute(
                "DELETE FROM conversations WHERE user_id = $1 AND conversation_id = $2",
                user_id,
                conversation_id,
            )
        return empty_pb2.Empty()

    async def ListMessages(
        self, request: coach_service_pb2.ListMessagesRequest, context: Context
    ) -> coach_service_pb2.ListMessagesResponse:
        """Messages, oldest first."""
        user_id, conversation_id = resolve_uuid_child(request.parent, "conversations", field="parent")
        size = resolve_page_size(request.page_size)
        fingerprint = {"parent": request.parent}
        after = int(self._tokens.decode(request.page_token, request=fingerprint).get("after", 0))
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            await self._get(conn, request.parent)
            rows = await conn.fetch(
                """SELECT * FROM messages WHERE user_id = $1 AND conversation_id = $2 AND message_seq > $3
                   ORDER BY message_seq LIMIT $4""",
                user_id,
                conversation_id,
                after,
                size + 1,
            )
        response = coach_service_pb2.ListMessagesResponse(
            messages=[message_to_proto(row) for row in rows[:size]]
        )
        if len(rows) > size:
            response.next_page_token = self._tokens.encode(
                {"after": rows[size - 1]["message_seq"]}, request=fingerprint
            )
        return response

    async def SendMessage(
        self, request: coach_service_pb2.SendMessageRequest, context: Context
    ) -> AsyncIterator[coach_service_pb2.SendMessageResponse]:
        """Store the question, stream the answer's fragments, then the stored answer."""
        user_id, conversation_id = resolve_uuid_child(request.parent, "conversations", field="parent")
        if not 1 <= len(request.text) <= 4000:
            raise InvalidArgument.for_field("text", "must be 1 to 4000 characters")
        request_id = parse_request_id(request.request_id)
        provider = await self._providers.for_user(user_id)
        async with self._db.transaction(user_id=user_id) as conn:
            conversation = await self._get(conn, request.parent)
            if request_id is not None:
                stored = await conn.fetch(
                    """SELECT * FROM messages WHERE user_id = $1 AND conversation_id = $2 AND request_id = $3
                       ORDER BY message_seq""",
                    user_id,
                    conversation_id,
                    request_id,
                )
                if stored:
                    yield coach_service_pb2.SendMessageResponse(user_message=message_to_proto(stored[0]))
                    if len(stored) > 1:
                        yield coach_service_pb2.SendMessageResponse(reply_text_delta=stored[1]["text"])
                        yield coach_service_pb2.SendMessageResponse(reply=message_to_proto(stored[1]))
                    return
            await self._allowance.check(conn, user_id, current_principal().account_id)
            if conversation["replying"]:
                raise FailedPrecondition(
                    "another answer of this conversation is being written", reason="REPLYING"
                )
            question = await self._append(
                conn, conversation, USER, request.text, facts=[], generator=None, request_id=request_id
            )
            await conn.execute(
                "UPDATE conversations SET replying = true,"
                " title = CASE WHEN title = '' THEN $3 ELSE title END "
                "WHERE user_id = $1 AND conversation_id = $2",
                user_id,
                conversation_id,
                request.text[:80],
            )
            now = datetime.now(UTC)
            facts = await gather_facts(conn, user_id, now - timedelta(days=14), now)
        yield coach_service_pb2.SendMessageResponse(user_message=message_to_proto(question))
        template = (
            f"Here is what your data from the last 14 days shows:\n\n{facts_text(facts)}"
            if facts
            else "I do not have enough of your data from the last 14 days to answer with numbers yet."
        )
        prompt = f"My data:\n{facts_text(facts)}\nMy question: {request.text}"
        # The answer is completed and stored even if the client goes away mid-stream.
        writer = asyncio.create_task(
            self._write_answer(
                user_id,
                conversation_id,
                provider=provider,
                prompt=prompt,
                template=template,
                facts=facts,
                request_id=request_id,
            )
        )
        queue = self._queues[writer] = asyncio.Queue()
        try:
            while True:
                item = await queue.get()
                if item is None:
                    break
                yield coach_service_pb2.SendMessageResponse(reply_text_delta=item)
            reply = await writer
        finally:
            self._queues.pop(writer, None)
        yield coach_service_pb2.SendMessageResponse(reply=message_to_proto(reply))

    async def _write_answer(
        self,
        user_id: uuid.UUID,
        conversation_id: uuid.UUID,
        *,
        provider: TextProvider,
        prompt: str,
        template: str,
        facts: list[narrative_pb2.GroundedFact],
        request_id: uuid.UUID | None,
    ) -> asyncpg.Record:
        task = asyncio.current_task()
        fragments: list[str] = []
        state = conversation_pb2.MESSAGE_STATE_COMPLETE
        try:
            async for fragment in provider.stream(INSTRUCTIONS, prompt, template):
                fragments.append(fragment)
                queue = self._queues.get(task)  # type: ignore[arg-type]
                if queue is not None:
                    queue.put_nowait(fragment)
        except Exception:
            state = conversation_pb2.MESSAGE_STATE_INCOMPLETE
            if not fragments:
                await self._release(user_id, conversation_id)
                raise
        finally:
            queue = self._queues.get(task)  # type: ignore[arg-type]
            if queue is not None:
                queue.put_nowait(None)
        generator = narrative_pb2.TextGenerator(
            provider=provider.name, model=provider.model, prompt_version=PROMPT_VERSION
        )
        async with self._db.transaction(user_id=user_id) as conn:
            conversation = await conn.fetchrow(
                "SELECT * FROM conversations WHERE user_id = $1 AND conversation_id = $2 FOR UPDATE",
                user_id,
                conversation_id,
            )
            reply = await self._append(
                conn,
                conversation,
                COACH,
                "".join(fragments),
                facts=facts,
                generator=generator,
                request_id=request_id,
                state=state,
            )
            await conn.execute(
                "UPDATE conversations SET replying = false WHERE user_id = $1 AND conversation_id = $2",
                user_id,
                conversation_id,
            )
        return reply

    async def _release(self, user_id: uuid.UUID, conversation_id: uuid.UUID) -> None:
        async with self._db.transaction(user_id=user_id) as conn:
            await conn.execute(
                "UPDATE conversations SET replying = false WHERE user_id = $1 AND conversation_id = $2",
                user_id,
                conversation_id,
            )

    @staticmethod
    async def _append(
        conn: asyncpg.Connection,
        conversation: asyncpg.Record,
        role: int,
        text: str,
        *,
        facts: list[narrative_pb2.GroundedFact],
        generator: narrative_pb2.TextGenerator | None,
        request_id: uuid.UUID | None,
        state: int = conversation_pb2.MESSAGE_STATE_COMPLETE,
    ) -> asyncpg.Record:
        row: asyncpg.Record = await conn.fetchrow(
            """WITH bumped AS (
                   UPDATE conversations SET message_count = message_count + 1, update_time = now(),
                          version = version + 1
                   WHERE user_id = $1 AND conversation_id = $2 RETURNING message_count)
               INSERT INTO messages (user_id, conversation_id, message_seq, role, text, facts, generator,
                                     state, request_id)
               SELECT $1, $2, message_count, $3, $4, $5, $6, $7, $8 FROM bumped RETURNING *""",
            conversation["user_id"],
            conversation["conversation_id"],
            role,
            text,
            [json_format.MessageToDict(fact) for fact in facts],
            json_format.MessageToDict(generator) if generator is not None else None,
            state,
            request_id,
        )
        return row
