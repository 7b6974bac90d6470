"""The biomarkers service's composition root: wires real dependencies once."""

from __future__ import annotations

from dataclasses import dataclass, replace

import grpc

from vitalis.biomarkers.v1 import (
    body_composition_service_pb2,
    body_composition_service_pb2_grpc,
    dictionary_internal_service_pb2,
    dictionary_internal_service_pb2_grpc,
    dictionary_service_pb2,
    dictionary_service_pb2_grpc,
    epigenetic_test_service_pb2,
    epigenetic_test_service_pb2_grpc,
    fhir_service_pb2,
    fhir_service_pb2_grpc,
    panel_internal_service_pb2,
    panel_internal_service_pb2_grpc,
    panel_service_pb2,
    panel_service_pb2_grpc,
    score_service_pb2,
    score_service_pb2_grpc,
    user_data_service_pb2,
    user_data_service_pb2_grpc,
)
from vitalis_biomarkers.api.common import Pages
from vitalis_biomarkers.api.dictionary import DictionaryInternalServicer, DictionaryServicer
from vitalis_biomarkers.api.fhir import FhirServicer
from vitalis_biomarkers.api.panels import PanelInternalServicer, PanelServicer
from vitalis_biomarkers.api.records import (
    BodyCompositionServicer,
    EpigeneticTestServicer,
    body_composition_scan_event,
    epigenetic_test_event,
)
from vitalis_biomarkers.api.scores import ScoreServicer
from vitalis_biomarkers.api.user_data import UserDataServicer
from vitalis_biomarkers.app.access import Access
from vitalis_biomarkers.app.documents import DocumentMerge
from vitalis_biomarkers.app.events import SCHEMA
from vitalis_biomarkers.app.fhir import FhirExchange
from vitalis_biomarkers.app.panels import PanelBook
from vitalis_biomarkers.app.people import IdentityPersonDirectory, PersonDirectory
from vitalis_biomarkers.app.records import RecordBook
from vitalis_biomarkers.app.score_book import ScoreBook
from vitalis_biomarkers.dictionary.loader import load_packaged_dictionary
from vitalis_biomarkers.dictionary.model import Dictionary
from vitalis_biomarkers.dictionary.units import Units
from vitalis_biomarkers.settings import BiomarkersSettings
from vitalis_biomarkers.store.records import BODY_COMPOSITION_SCANS, EPIGENETIC_TESTS
from vitalis_runtime.bootstrap import Dependencies, ServiceParts, create_service_server
from vitalis_runtime.db import Database
from vitalis_runtime.events import StreamNames
from vitalis_runtime.pagination import PageTokens, page_tokens_from
from vitalis_runtime.relay import OutboxRelay
from vitalis_runtime.server import service_full_names
from vitalis_runtime.service_auth import ServiceCredentials
from vitalis_runtime.sharing import RemoteShareGrantChecker, ShareGrantChecker

SERVICE_NAMES = service_full_names(
    (dictionary_service_pb2, "DictionaryService"),
    (dictionary_internal_service_pb2, "DictionaryInternalService"),
    (panel_service_pb2, "PanelService"),
    (panel_internal_service_pb2, "PanelInternalService"),
    (score_service_pb2, "ScoreService"),
    (body_composition_service_pb2, "BodyCompositionService"),
    (epigenetic_test_service_pb2, "EpigeneticTestService"),
    (fhir_service_pb2, "FhirService"),
    (user_data_service_pb2, "UserDataService"),
)


@dataclass
class BiomarkersApp:
    """Everything the servicers share, built once per process."""

    db: Database
    dictionary: Dictionary
    units: Units
    pages: Pages
    access: Access
    people: PersonDirectory
    panels: PanelBook
    scores: ScoreBook
    scans: RecordBook
    tests: RecordBook
    fhir: FhirExchange

    @classmethod
    def assemble(
        cls,
        db: Database,
        *,
        page_tokens: PageTokens,
        people: PersonDirectory,
        checker: ShareGrantChecker | None = None,
        units: Units | None = None,
    ) -> BiomarkersApp:
        """Load the dictionary and wire the use cases over one database pool."""
        units = units or Units()
        dictionary = load_packaged_dictionary(units)
        panels = PanelBook(db, dictionary, people)
        return cls(
            db=db,
            dictionary=dictionary,
            units=units,
            pages=Pages(page_tokens),
            access=Access(checker),
            people=people,
            panels=panels,
            scores=ScoreBook(db, panels),
            scans=RecordBook(
                db, BODY_COMPOSITION_SCANS, noun="body composition scan", event=body_composition_scan_event
            ),
            tests=RecordBook(db, EPIGENETIC_TESTS, noun="epigenetic test", event=epigenetic_test_event),
            fhir=FhirExchange(panels, units),
        )

    def register(self, server: grpc.aio.Server) -> None:
        """Add every servicer of the biomarkers contract to ``server``."""
        scans = BodyCompositionServicer(self.scans, self.access, self.pages)
        tests = EpigeneticTestServicer(self.tests, self.access, self.pages, self.people, self.units)
        dictionary_service_pb2_grpc.add_DictionaryServiceServicer_to_server(
            DictionaryServicer(self.dictionary, self.units, self.pages), server
        )
        dictionary_internal_service_pb2_grpc.add_DictionaryInternalServiceServicer_to_server(
            DictionaryInternalServicer(self.dictionary, self.units), server
        )
        panel_service_pb2_grpc.add_PanelServiceServicer_to_server(
            PanelServicer(self.panels, self.access, self.pages), server
        )
        panel_internal_service_pb2_grpc.add_PanelInternalServiceServicer_to_server(
            PanelInternalServicer(DocumentMerge(self.db, self.panels)), server
        )
        score_service_pb2_grpc.add_ScoreServiceServicer_to_server(
            ScoreServicer(self.scores, self.dictionary, self.units, self.access, self.pages), server
        )
        body_composition_service_pb2_grpc.add_BodyCompositionServiceServicer_to_server(scans, server)
        epigenetic_test_service_pb2_grpc.add_EpigeneticTestServiceServicer_to_server(tests, server)
        fhir_service_pb2_grpc.add_FhirServiceServicer_to_server(
            FhirServicer(self.fhir, self.access, self.db), server
        )
        user_data_service_pb2_grpc.add_UserDataServiceServicer_to_server(
            UserDataServicer(self.db, self.panels, self.fhir, (self.scans, scans), (self.tests, tests)),
            server,
        )


async def create_biomarkers_server(settings: BiomarkersSettings, deps: Dependencies) -> ServiceParts:
    """Build the biomarkers server bound to ``settings.grpc_port`` (0 → a free port)."""
    from vitalis_client import create_channel

    if not settings.identity_target:
        raise ValueError(
            "VITALIS_IDENTITY_TARGET is required: people's sex and birth date come from identity"
        )
    identity = create_channel(settings.identity_target)
    credentials = ServiceCredentials.of(settings)
    checker = RemoteShareGrantChecker(identity, credentials) if credentials is not None else None
    app = BiomarkersApp.assemble(
        deps.db,
        page_tokens=page_tokens_from(settings),
        people=IdentityPersonDirectory(identity, credentials),
        checker=checker,
    )
    parts = await create_service_server(settings, deps, register=app.register, service_names=SERVICE_NAMES)
    relay = OutboxRelay(deps.db, deps.redis, schema=SCHEMA, streams=StreamNames.of("biomarkers", settings))

    async def close() -> None:
        await app.panels.close()
        await app.scans.close()
        await app.tests.close()
        await identity.close()

    return replace(parts, background=[*parts.background, relay.run], on_stop=[*parts.on_stop, close])
