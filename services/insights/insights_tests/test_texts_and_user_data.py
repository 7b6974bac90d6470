"""Narratives and the coach (templates, and an OpenAI-compatible endpoint served locally), and the
data-subject rights of UserDataService."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, timedelta
from typing import Any

import grpc
import pytest

from vitalis.identity.v1 import consent_pb2, consent_service_pb2, consent_service_pb2_grpc
from vitalis.insights.v1 import (
    coach_service_pb2,
    coach_service_pb2_grpc,
    conversation_pb2,
    narrative_pb2,
    narrative_service_pb2,
    narrative_service_pb2_grpc,
    user_data_service_pb2,
    user_data_service_pb2_grpc,
)
from vitalis_runtime.auth import current_principal
from vitalis_runtime.errors import NotFound
from vitalis_runtime.service_auth import ServiceCredentials, ServiceTokenVerifier
from vitalis_runtime.testing_grpc import running_server

from .conftest import SERVICE_SECRET, Platform, bearer, eventually, running_insights
from .test_engine_acceptance import ldl_panel
from .test_goals_and_analysis import publish_nights

pytestmark = pytest.mark.timeout(90)

FRAGMENTS = ["Your resting ", "heart rate averaged ", "58 /min", " this week."]


class StandInConsents(consent_service_pb2_grpc.ConsentServiceServicer):
    """identity's ConsentService.GetConsent over the users a test lets consent."""

    def __init__(self, consenting: set[uuid.UUID]) -> None:
        self._consenting = consenting

    async def GetConsent(
        self, request: consent_service_pb2.GetConsentRequest, context: object
    ) -> consent_pb2.Consent:
        """Granted for consenting users, NOT_FOUND for the others (never given)."""
        user_id = current_principal().user_id
        if (
            request.name != f"users/{user_id}/consents/language-model-processing"
            or user_id not in self._consenting
        ):
            raise NotFound(f"{request.name!r} was not found")
        return consent_pb2.Consent(name=request.name, state=consent_pb2.CONSENT_STATE_GRANTED)


@pytest.fixture
async def identity() -> AsyncIterator[tuple[str, set[uuid.UUID]]]:
    consenting: set[uuid.UUID] = set()

    def register(server: grpc.aio.Server) -> None:
        consent_service_pb2_grpc.add_ConsentServiceServicer_to_server(StandInConsents(consenting), server)

    async with running_server(
        service_name="identity",
        register=register,
        service_names=["vitalis.identity.v1.ConsentService"],
        verifier=ServiceTokenVerifier(SERVICE_SECRET),
    ) as server:
        yield server.target, consenting


@asynccontextmanager
async def openai_compatible_server(requests: list[dict[str, Any]]) -> AsyncIterator[str]:
    """A tiny HTTP server answering /v1/chat/completions with a server-sent event stream."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        body = json.loads(await reader.readexactly(length))
        requests.append({"path": head.split(b" ")[1].decode(), "body": body, "head": head.decode()})
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n")
        for fragment in FRAGMENTS:
            chunk = {"choices": [{"delta": {"content": fragment}}]}
            writer.write(f"data: {json.dumps(chunk)}\n\n".encode())
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.write(b"data: [DONE]\n\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.close()


async def test_weekly_narrative_from_templates_quotes_the_users_numbers(platform: Platform) -> None:
    user_id = uuid.uuid4()
    async with running_insights(platform, platform.settings()) as insights:
        stub = narrative_service_pb2_grpc.NarrativeServiceStub(insights.channel)
        me = bearer(platform, user_id)
        with pytest.raises(grpc.aio.AioRpcError) as empty:
            await stub.GenerateNarrative(
                narrative_service_pb2.GenerateNarrativeRequest(
                    parent="users/me", kind=narrative_pb2.NARRATIVE_KIND_WEEKLY_SUMMARY
                ),
                metadata=me,
            )
        assert empty.value.code() == grpc.StatusCode.FAILED_PRECONDITION

        await publish_nights(
            platform, user_id, [56, 58, 60, 58, 57, 59, 58], [480, 420, 450, 470, 480, 460, 440]
        )
        request_id = str(uuid.uuid4())
        narrative = await stub.GenerateNarrative(
            narrative_service_pb2.GenerateNarrativeRequest(
                parent="users/me", kind=narrative_pb2.NARRATIVE_KIND_WEEKLY_SUMMARY, request_id=request_id
            ),
            metadata=me,
        )
        facts = {fact.label: fact for fact in narrative.facts}
        heart = facts["Average resting heart rate"]
        assert heart.value.value == pytest.approx(58.0)
        assert len(heart.evidence) == 7
        assert heart.evidence[0].resource.startswith(f"users/{user_id}/dailySummaries/")
        assert "58 /min" in narrative.body
        assert narrative.generator.provider == "template"
        again = await stub.GenerateNarrative(
            narrative_service_pb2.GenerateNarrativeRequest(
                parent="users/me", kind=narrative_pb2.NARRATIVE_KIND_WEEKLY_SUMMARY, request_id=request_id
            ),
            metadata=me,
        )
        assert again.name == narrative.name
        listed = await stub.ListNarratives(
            narrative_service_pb2.ListNarrativesRequest(parent="users/me"), metadata=me
        )
        assert narrative.name in [item.name for item in listed.narratives]


async def test_coach_streams_an_answer_from_an_openai_compatible_endpoint(
    platform: Platform, identity: tuple[str, set[uuid.UUID]]
) -> None:
    user_id = uuid.uuid4()
    identity[1].add(user_id)
    requests: list[dict[str, Any]] = []
    async with openai_compatible_server(requests) as base_url:
        settings = platform.settings(
            llm_base_url=base_url,
            llm_api_key="sk-local",
            llm_model="local-model",
            identity_target=identity[0],
        )
        async with running_insights(platform, settings) as insights:
            me = bearer(platform, user_id)
            await publish_nights(platform, user_id, [58, 58, 58], [480, 480, 480])
            stub = coach_service_pb2_grpc.CoachServiceStub(insights.channel)
            conversation = await stub.CreateConversation(
                coach_service_pb2.CreateConversationRequest(parent="users/me"), metadata=me
            )
            stream = stub.SendMessage(
                coach_service_pb2.SendMessageRequest(parent=conversation.name, text="How is my heart?"),
                metadata=me,
            )
            messages = [message async for message in stream]

            assert messages[0].WhichOneof("event") == "user_message"
            assert messages[0].user_message.text == "How is my heart?"
            deltas = [message.reply_text_delta for message in messages[1:-1]]
            assert deltas == FRAGMENTS
            reply = messages[-1].reply
            assert reply.text == "".join(FRAGMENTS)
            assert reply.role == conversation_pb2.MESSAGE_ROLE_COACH
            assert reply.state == conversation_pb2.MESSAGE_STATE_COMPLETE
            assert reply.generator.model == "local-model"
            assert reply.facts[0].value.value == pytest.approx(58.0)
            sent = requests[0]
            assert sent["path"] == "/v1/chat/completions"
            assert "authorization: Bearer sk-local" in sent["head"].lower().replace("bearer", "Bearer")
            assert "Average resting heart rate: 58 /min" in sent["body"]["messages"][1]["content"]

            listed = await stub.ListMessages(
                coach_service_pb2.ListMessagesRequest(parent=conversation.name), metadata=me
            )
            assert [message.role for message in listed.messages] == [
                conversation_pb2.MESSAGE_ROLE_USER,
                conversation_pb2.MESSAGE_ROLE_COACH,
            ]
            got = await stub.GetConversation(
                coach_service_pb2.GetConversationRequest(name=conversation.name), metadata=me
            )
            assert got.message_count == 2
            assert got.title == "How is my heart?"
            with pytest.raises(grpc.aio.AioRpcError) as private:
                await stub.GetConversation(
                    coach_service_pb2.GetConversationRequest(name=conversation.name),
                    metadata=bearer(platform, uuid.uuid4()),
                )
            assert private.value.code() == grpc.StatusCode.NOT_FOUND


async def test_coach_provider_unreachable_is_unavailable(
    platform: Platform, identity: tuple[str, set[uuid.UUID]]
) -> None:
    user_id = uuid.uuid4()
    identity[1].add(user_id)
    settings = platform.settings(llm_base_url="http://127.0.0.1:9/v1", identity_target=identity[0])
    async with running_insights(platform, settings) as insights:
        me = bearer(platform, user_id)
        stub = coach_service_pb2_grpc.CoachServiceStub(insights.channel)
        conversation = await stub.CreateConversation(
            coach_service_pb2.CreateConversationRequest(parent="users/me"), metadata=me
        )
        with pytest.raises(grpc.aio.AioRpcError) as unreachable:
            async for _ in stub.SendMessage(
                coach_service_pb2.SendMessageRequest(parent=conversation.name, text="Hello?"), metadata=me
            ):
                pass
        assert unreachable.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_export_and_erase_a_users_data_with_service_credentials_only(platform: Platform) -> None:
    user_id = uuid.uuid4()
    service = ServiceCredentials(SERVICE_SECRET, "identity").metadata(user_id)
    async with running_insights(platform, platform.settings()) as insights:
        await platform.publish("biomarkers", user_id, ldl_panel(user_id))
        stub = user_data_service_pb2_grpc.UserDataServiceStub(insights.channel)
        with pytest.raises(grpc.aio.AioRpcError) as user_token:
            await stub.EraseUserData(
                user_data_service_pb2.EraseUserDataRequest(user=f"users/{user_id}"),
                metadata=bearer(platform, user_id),
            )
        assert user_token.value.code() == grpc.StatusCode.PERMISSION_DENIED

        async def exported() -> dict[str, bytes]:
            entries: dict[str, bytes] = {}
            async for chunk in stub.ExportUserData(
                user_data_service_pb2.ExportUserDataRequest(user=f"users/{user_id}"), metadata=service
            ):
                entries[chunk.entry_path] = entries.get(chunk.entry_path, b"") + chunk.data
            return entries

        for _ in range(100):
            entries = await exported()
            if entries["insights.jsonl"]:
                break
            await asyncio.sleep(0.05)
        assert set(entries) == {
            "insights.jsonl",
            "alerts.jsonl",
            "goals.jsonl",
            "narratives.jsonl",
            "conversations.jsonl",
            "messages.jsonl",
        }
        insight = json.loads(entries["insights.jsonl"].splitlines()[0])
        assert insight["rule"] == "rules/biomarker-out-of-range"

        erased = await stub.EraseUserData(
            user_data_service_pb2.EraseUserDataRequest(user=f"users/{user_id}"), metadata=service
        )
        assert erased.erased_item_count >= 2
        assert not (await exported())["insights.jsonl"]
        again = await stub.EraseUserData(
            user_data_service_pb2.EraseUserDataRequest(user=f"users/{user_id}"), metadata=service
        )
        assert again.erased_item_count == 0
        with pytest.raises(grpc.aio.AioRpcError) as malformed:
            await stub.EraseUserData(
                user_data_service_pb2.EraseUserDataRequest(user="users/me"), metadata=service
            )
        assert malformed.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_the_first_data_of_a_new_week_writes_last_weeks_summary_once(platform: Platform) -> None:
    user_id = uuid.uuid4()
    today = date.today()
    monday = today - timedelta(days=today.weekday())
    async with running_insights(platform, platform.settings()) as insights:
        stub = narrative_service_pb2_grpc.NarrativeServiceStub(insights.channel)
        me = bearer(platform, user_id)
        for offset in range(7):
            await platform.publish_night(
                user_id, monday - timedelta(days=7 - offset), resting_hr=55 + offset % 2
            )
        await platform.publish_night(user_id, monday, resting_hr=56)
        await platform.publish_night(user_id, monday, resting_hr=57)

        async def weekly() -> list[narrative_pb2.Narrative]:
            listed = await stub.ListNarratives(
                narrative_service_pb2.ListNarrativesRequest(
                    parent="users/me", filter="kind = NARRATIVE_KIND_WEEKLY_SUMMARY"
                ),
                metadata=me,
            )
            return list(listed.narratives)

        found = await eventually(weekly)
        await asyncio.sleep(0.5)
        assert len(await weekly()) == 1
        narrative = found[0]
        assert narrative.period.start_time.ToDatetime().date() == monday - timedelta(days=7)
        heart = next(fact for fact in narrative.facts if fact.label == "Average resting heart rate")
        assert len(heart.evidence) == 7


async def test_without_consent_the_model_is_never_sent_the_users_data(
    platform: Platform, identity: tuple[str, set[uuid.UUID]]
) -> None:
    user_id = uuid.uuid4()
    requests: list[dict[str, Any]] = []
    async with openai_compatible_server(requests) as base_url:
        settings = platform.settings(llm_base_url=base_url, identity_target=identity[0])
        async with running_insights(platform, settings) as insights:
            await publish_nights(platform, user_id, [58, 59, 60], [480, 470, 460])
            narrative = await narrative_service_pb2_grpc.NarrativeServiceStub(
                insights.channel
            ).GenerateNarrative(
                narrative_service_pb2.GenerateNarrativeRequest(
                    parent="users/me", kind=narrative_pb2.NARRATIVE_KIND_WEEKLY_SUMMARY
                ),
                metadata=bearer(platform, user_id),
            )
    assert narrative.generator.provider == "template"
    assert "59 /min" in narrative.body
    assert requests == []


async def test_texts_beyond_the_daily_allowance_are_refused(platform: Platform) -> None:
    user_id = uuid.uuid4()
    async with running_insights(platform, platform.settings(text_allowance_free=1)) as insights:
        stub = narrative_service_pb2_grpc.NarrativeServiceStub(insights.channel)
        me = bearer(platform, user_id)
        await publish_nights(platform, user_id, [58, 59, 60], [480, 470, 460])
        request = narrative_service_pb2.GenerateNarrativeRequest(
            parent="users/me", kind=narrative_pb2.NARRATIVE_KIND_WEEKLY_SUMMARY, request_id=str(uuid.uuid4())
        )
        first = await stub.GenerateNarrative(request, metadata=me)
        assert (await stub.GenerateNarrative(request, metadata=me)).name == first.name
        with pytest.raises(grpc.aio.AioRpcError) as exhausted:
            await stub.GenerateNarrative(
                narrative_service_pb2.GenerateNarrativeRequest(
                    parent="users/me", kind=narrative_pb2.NARRATIVE_KIND_WEEKLY_SUMMARY
                ),
                metadata=me,
            )
        assert exhausted.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
