"""The biomarkers port over gRPC: DictionaryInternalService and PanelInternalService with service tokens."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from vitalis.biomarkers.v1 import (
    dictionary_internal_service_pb2,
    dictionary_internal_service_pb2_grpc,
    panel_internal_service_pb2,
    panel_internal_service_pb2_grpc,
    panel_pb2,
)
from vitalis_documents.ports import (
    BiomarkerCandidate,
    BiomarkerQuery,
    PanelMarker,
    PanelMerge,
    PanelMergeResult,
)
from vitalis_runtime.service_auth import ServiceCredentials

MAX_QUERIES_PER_CALL = 500
CALL_TIMEOUT_SECONDS = 15.0


def _marker(marker: PanelMarker) -> panel_internal_service_pb2.DocumentMarker:
    lab_range = panel_pb2.LabRange(text=marker.reference_range.text)
    if marker.reference_range.low is not None:
        lab_range.low = marker.reference_range.low
    if marker.reference_range.high is not None:
        lab_range.high = marker.reference_range.high
    document = marker.extracted_marker.split("/extractedMarkers/")[0]
    return panel_internal_service_pb2.DocumentMarker(
        extracted_marker=marker.extracted_marker,
        marker=panel_pb2.Marker(
            biomarker=marker.biomarker,
            reported_name=marker.printed_name,
            value=marker.value,
            comparator=int(marker.comparator),  # type: ignore[arg-type]
            reported_value=marker.value_text,
            reported_unit=marker.unit,
            lab_range=lab_range,
            reported_flag=marker.flag_text,
            provenance=panel_pb2.Provenance(
                kind=panel_pb2.PROVENANCE_KIND_DOCUMENT,
                document=document,
                page=marker.page,
                confidence=marker.confidence,
                extracted_marker=marker.extracted_marker,
            ),
        ),
    )


class GrpcBiomarkerDirectory:
    """Calls the biomarkers service on behalf of the document's owner."""

    def __init__(self, channel: grpc.aio.Channel, credentials: ServiceCredentials) -> None:
        """Use ``channel`` (to biomarkers) and sign each call with ``credentials``."""
        self._dictionary = dictionary_internal_service_pb2_grpc.DictionaryInternalServiceStub(channel)
        self._panels = panel_internal_service_pb2_grpc.PanelInternalServiceStub(channel)
        self._credentials = credentials

    async def match(
        self, user_id: uuid.UUID, queries: Sequence[BiomarkerQuery]
    ) -> list[list[BiomarkerCandidate]]:
        """Candidates per query, best first, batched."""
        results: list[list[BiomarkerCandidate]] = []
        for start in range(0, len(queries), MAX_QUERIES_PER_CALL):
            batch = queries[start : start + MAX_QUERIES_PER_CALL]
            response = await self._dictionary.MatchBiomarkers(
                dictionary_internal_service_pb2.MatchBiomarkersRequest(
                    queries=[
                        dictionary_internal_service_pb2.BiomarkerQuery(label=q.label, unit=q.unit)
                        for q in batch
                    ],
                    max_candidates=3,
                ),
                metadata=self._credentials.metadata(user_id),
                timeout=CALL_TIMEOUT_SECONDS,
            )
            for result in response.results:
                results.append(
                    [
                        BiomarkerCandidate(
                            biomarker=match.biomarker,
                            matched_text=match.matched_text,
                            confidence=match.confidence,
                            normalized_unit=match.normalized_unit,
                            unit_accepted=match.unit_accepted,
                        )
                        for match in result.matches
                    ]
                )
        results += [[] for _ in range(len(queries) - len(results))]
        return results

    async def merge_markers(self, user_id: uuid.UUID, merge: PanelMerge) -> PanelMergeResult:
        """Upsert and remove the document's results in its panel."""
        collection_time = Timestamp()
        collection_time.FromDatetime(merge.collection_time)
        response = await self._panels.MergeDocumentMarkers(
            panel_internal_service_pb2.MergeDocumentMarkersRequest(
                user=f"users/{user_id}",
                document=merge.document,
                collection_time=collection_time,
                lab_name=merge.lab_name,
                upserts=[_marker(m) for m in merge.upserts],
                removals=list(merge.removals),
            ),
            metadata=self._credentials.metadata(user_id),
            timeout=CALL_TIMEOUT_SECONDS,
        )
        return PanelMergeResult(
            panel=response.panel.name if response.HasField("panel") else "",
            links={link.extracted_marker: link.marker for link in response.links},
        )
