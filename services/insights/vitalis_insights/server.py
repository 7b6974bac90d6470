"""The insights service's composition root: wires real dependencies once.

Beside the gRPC servicers it runs the per-user engine as an event consumer of ingestion's and
biomarkers' streams, the relay of its own outbox, and the listener that wakes watches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import grpc

from vitalis.identity.v1 import account_pb2
from vitalis.insights.v1 import (
    alert_service_pb2,
    alert_service_pb2_grpc,
    analysis_service_pb2,
    analysis_service_pb2_grpc,
    coach_service_pb2,
    coach_service_pb2_grpc,
    goal_service_pb2,
    goal_service_pb2_grpc,
    insight_service_pb2,
    insight_service_pb2_grpc,
    narrative_service_pb2,
    narrative_service_pb2_grpc,
    user_data_service_pb2,
    user_data_service_pb2_grpc,
)
from vitalis_client import create_channel
from vitalis_insights.adapters.allowance import DailyAllowance, GrpcTierReader
from vitalis_insights.adapters.readers import GrpcBiomarkerReader, GrpcIngestionReader
from vitalis_insights.adapters.text_provider import GrpcConsentChecker, TextProviders, model_from_settings
from vitalis_insights.api.alerts import AlertServicer
from vitalis_insights.api.analysis import AnalysisServicer
from vitalis_insights.api.coach import CoachServicer
from vitalis_insights.api.goals import GoalServicer
from vitalis_insights.api.insights import InsightServicer
from vitalis_insights.api.names import ReadAccess
from vitalis_insights.api.narratives import NarrativeServicer
from vitalis_insights.api.user_data import UserDataServicer
from vitalis_insights.engine import InsightsEngine
from vitalis_insights.narrator import Narrator
from vitalis_insights.notifier import ChangeNotifier
from vitalis_insights.settings import InsightsSettings
from vitalis_insights.store.insights import PRODUCER, SCHEMA
from vitalis_runtime.bootstrap import Dependencies, ServiceParts, create_service_server
from vitalis_runtime.consumer import EventConsumer
from vitalis_runtime.events import StreamNames
from vitalis_runtime.pagination import page_tokens_from
from vitalis_runtime.relay import OutboxRelay
from vitalis_runtime.server import service_full_names
from vitalis_runtime.service_auth import CallerVerifier, ServiceCredentials
from vitalis_runtime.sharing import RemoteShareGrantChecker

ENGINE_GROUP = "insights-engine"
CONSUMED_PRODUCERS = ("ingestion", "biomarkers")
SERVICE_NAMES = service_full_names(
    (insight_service_pb2, "InsightService"),
    (alert_service_pb2, "AlertService"),
    (goal_service_pb2, "GoalService"),
    (analysis_service_pb2, "AnalysisService"),
    (narrative_service_pb2, "NarrativeService"),
    (coach_service_pb2, "CoachService"),
    (user_data_service_pb2, "UserDataService"),
)


async def create_insights_server(
    settings: InsightsSettings, deps: Dependencies, *, verifier: CallerVerifier | None = None
) -> ServiceParts:
    """Build the insights server bound to ``settings.grpc_port`` (0 picks a free port)."""
    credentials = ServiceCredentials.of(settings)
    channels: list[grpc.aio.Channel] = []

    def channel_to(target: str | None) -> grpc.aio.Channel | None:
        if target is None or credentials is None:
            return None
        channel = create_channel(target)
        channels.append(channel)
        return channel

    ingestion_channel = channel_to(settings.ingestion_target)
    biomarkers_channel = channel_to(settings.biomarkers_target)
    identity_channel = channel_to(settings.identity_target)
    providers = TextProviders(
        model_from_settings(settings),
        GrpcConsentChecker(identity_channel, credentials)
        if identity_channel is not None and credentials is not None
        else None,
    )
    narrator = Narrator(providers)
    allowance = DailyAllowance(
        {
            account_pb2.ACCOUNT_TIER_FREE: settings.text_allowance_free,
            account_pb2.ACCOUNT_TIER_PREMIUM: settings.text_allowance_premium,
            account_pb2.ACCOUNT_TIER_PROFESSIONAL: settings.text_allowance_professional,
        },
        GrpcTierReader(identity_channel, credentials)
        if identity_channel is not None and credentials is not None
        else None,
    )
    engine = InsightsEngine(
        narrator=narrator,
        ingestion=(
            GrpcIngestionReader(ingestion_channel, credentials)
            if ingestion_channel is not None and credentials is not None
            else None
        ),
        biomarkers=(
            GrpcBiomarkerReader(biomarkers_channel, credentials)
            if biomarkers_channel is not None and credentials is not None
            else None
        ),
    )
    access = ReadAccess(
        RemoteShareGrantChecker(identity_channel, credentials)
        if identity_channel is not None and credentials is not None
        else None
    )
    tokens = page_tokens_from(settings)
    notifier = ChangeNotifier(deps.db)
    await notifier.start()

    def register(server: grpc.aio.Server) -> None:
        insight_service_pb2_grpc.add_InsightServiceServicer_to_server(
            InsightServicer(
                deps.db, tokens, notifier, access, heartbeat_seconds=settings.watch_heartbeat_seconds
            ),
            server,
        )
        alert_service_pb2_grpc.add_AlertServiceServicer_to_server(
            AlertServicer(deps.db, tokens, access), server
        )
        goal_service_pb2_grpc.add_GoalServiceServicer_to_server(
            GoalServicer(deps.db, tokens, engine, access), server
        )
        analysis_service_pb2_grpc.add_AnalysisServiceServicer_to_server(
            AnalysisServicer(deps.db, access, engine), server
        )
        narrative_service_pb2_grpc.add_NarrativeServiceServicer_to_server(
            NarrativeServicer(deps.db, tokens, narrator, access, allowance), server
        )
        coach_service_pb2_grpc.add_CoachServiceServicer_to_server(
            CoachServicer(deps.db, tokens, providers, allowance), server
        )
        user_data_service_pb2_grpc.add_UserDataServiceServicer_to_server(
            UserDataServicer(deps.db, deps.redis, notifier), server
        )

    parts = await create_service_server(
        settings, deps, register=register, service_names=SERVICE_NAMES, verifier=verifier
    )
    consumer = EventConsumer(
        deps.db,
        deps.redis,
        schema=SCHEMA,
        group=ENGINE_GROUP,
        consumer=settings.consumer_name,
        streams=[
            stream for producer in CONSUMED_PRODUCERS for stream in StreamNames.of(producer, settings).all()
        ],
        handler=engine.handle,
        supersede_key=engine.supersede_key,
        lease_ms=settings.event_lease_ms,
        block_ms=250,
    )
    relay = OutboxRelay(
        deps.db,
        deps.redis,
        schema=SCHEMA,
        streams=StreamNames.of(PRODUCER, settings),
    )
    closers: list[Callable[[], object]] = [notifier.stop, *(channel.close for channel in channels)]

    async def close() -> None:
        for closer in closers:
            await closer()  # type: ignore[misc]

    return replace(
        parts,
        background=[*parts.background, consumer.run, relay.run, notifier.run],
        on_stop=[*parts.on_stop, close],
    )
