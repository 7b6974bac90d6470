"""vitalis.biomarkers.v1.PanelService and PanelInternalService."""

from __future__ import annotations

import grpc
from google.protobuf import empty_pb2

from vitalis.biomarkers.v1 import (
    panel_internal_service_pb2,
    panel_internal_service_pb2_grpc,
    panel_pb2,
    panel_service_pb2,
    panel_service_pb2_grpc,
)
from vitalis_biomarkers.api.common import (
    Pages,
    interval,
    interval_fingerprint,
    optional_duration,
    ordering,
    parse_id,
    required_moment,
    split_name,
    time_cursor,
    time_cursor_of,
)
from vitalis_biomarkers.api.dictionary import find_definition
from vitalis_biomarkers.api.panel_convert import (
    marker_draft_from_proto,
    marker_to_proto,
    panel_changes_from_proto,
    panel_fields_from_proto,
    panel_to_proto,
    parse_panel_name,
    provenance_from_proto,
)
from vitalis_biomarkers.app.access import Access, parse_user_segment
from vitalis_biomarkers.app.documents import DocumentMerge, DocumentResults
from vitalis_biomarkers.app.panels import PANEL_FIELDS, PanelBook
from vitalis_biomarkers.domain.flags import Flag
from vitalis_biomarkers.domain.panels import Fasting, panel_name
from vitalis_runtime.auth import current_principal
from vitalis_runtime.errors import InvalidArgument
from vitalis_runtime.pagination import resolve_page_size

Context = grpc.aio.ServicerContext[object, object]
MUTABLE_PATHS = (*PANEL_FIELDS, "markers")
MAX_UPSERTS = 500


def _update_paths(request: panel_service_pb2.UpdatePanelRequest) -> list[str]:
    if request.HasField("update_mask") and request.update_mask.paths:
        paths = list(request.update_mask.paths)
        for path in paths:
            if path not in MUTABLE_PATHS:
                raise InvalidArgument.for_field(
                    "update_mask", f"{path!r} cannot be updated; updatable: {', '.join(MUTABLE_PATHS)}"
                )
        return paths
    panel = request.panel
    present = [
        path
        for path in PANEL_FIELDS
        if (path in ("collection_time", "utc_offset", "report_time") and panel.HasField(path))  # type: ignore[arg-type]
        or (path not in ("collection_time", "utc_offset", "report_time") and getattr(panel, path))
    ]
    return present + (["markers"] if len(panel.markers) else [])


class PanelServicer(panel_service_pb2_grpc.PanelServiceServicer):
    """Panels and markers of a user."""

    def __init__(self, book: PanelBook, access: Access, pages: Pages) -> None:
        """Serve ``book``; check callers with ``access``."""
        self._book = book
        self._access = access
        self._pages = pages

    async def CreatePanel(
        self, request: panel_service_pb2.CreatePanelRequest, context: Context
    ) -> panel_pb2.Panel:
        """Create a panel with its markers."""
        user_id = self._access.owner(split_name(request.parent, ("users",), "parent")[0], "parent")
        if not request.HasField("panel"):
            raise InvalidArgument.for_field("panel", "is required")
        fields = panel_fields_from_proto(request.panel)
        provenance = provenance_from_proto(request.panel.provenance, "panel.provenance")
        drafts = [
            marker_draft_from_proto(marker, f"panel.markers[{index}]")
            for index, marker in enumerate(request.panel.markers)
        ]
        if request.request_id:
            parse_id(request.request_id, "request_id")
        panel, _ = await self._book.create(user_id, fields, provenance, drafts, request_id=request.request_id)
        return panel_to_proto(panel)

    async def GetPanel(self, request: panel_service_pb2.GetPanelRequest, context: Context) -> panel_pb2.Panel:
        """One panel."""
        segment, panel_id = parse_panel_name(request.name, "name")
        user_id = await self._access.reader(segment, "name")
        return panel_to_proto(await self._book.get(user_id, panel_id))

    async def ListPanels(
        self, request: panel_service_pb2.ListPanelsRequest, context: Context
    ) -> panel_service_pb2.ListPanelsResponse:
        """Panels, most recent collection first unless asked otherwise."""
        user_id = await self._access.reader(split_name(request.parent, ("users",), "parent")[0], "parent")
        size = resolve_page_size(request.page_size, default=20, maximum=100)
        ascending = ordering(request.order_by, "collection_time")
        window = interval(request, "collection_interval")
        fingerprint = {
            "method": "ListPanels",
            "user": str(user_id),
            "interval": interval_fingerprint(window),
            "ascending": ascending,
        }
        after = time_cursor(self._pages.cursor(request.page_token, fingerprint))
        panels = await self._book.list_panels(
            user_id, interval=window, ascending=ascending, after=after, limit=size + 1
        )
        token = ""
        if len(panels) > size:
            panels = panels[:size]
            token = self._pages.token(
                time_cursor_of(panels[-1].fields.collection_time, panels[-1].id), fingerprint
            )
        return panel_service_pb2.ListPanelsResponse(
            panels=[panel_to_proto(panel) for panel in panels], next_page_token=token
        )

    async def UpdatePanel(
        self, request: panel_service_pb2.UpdatePanelRequest, context: Context
    ) -> panel_pb2.Panel:
        """Change the masked fields; ``markers`` replaces the set."""
        if not request.HasField("panel"):
            raise InvalidArgument.for_field("panel", "is required")
        segment, panel_id = parse_panel_name(request.panel.name, "panel.name")
        user_id = self._access.owner(segment, "panel.name")
        paths = _update_paths(request)
        if not paths:
            raise InvalidArgument.for_field("update_mask", "names no field to update")
        changes = panel_changes_from_proto(request.panel, paths)
        name = panel_name(user_id, panel_id)
        drafts = None
        if "markers" in paths:
            drafts = [
                marker_draft_from_proto(marker, f"panel.markers[{index}]", panel_name=name)
                for index, marker in enumerate(request.panel.markers)
            ]
        panel = await self._book.update(user_id, panel_id, changes, drafts, paths, etag=request.panel.etag)
        return panel_to_proto(panel)

    async def DeletePanel(
        self, request: panel_service_pb2.DeletePanelRequest, context: Context
    ) -> empty_pb2.Empty:
        """Delete a panel; its scores are kept, outdated."""
        segment, panel_id = parse_panel_name(request.name, "name")
        user_id = self._access.owner(segment, "name")
        await self._book.delete(user_id, panel_id, etag=request.etag)
        return empty_pb2.Empty()

    async def GetMarker(
        self, request: panel_service_pb2.GetMarkerRequest, context: Context
    ) -> panel_pb2.Marker:
        """One marker."""
        segment, panel, marker = split_name(request.name, ("users", "panels", "markers"), "name")
        user_id = await self._access.reader(segment, "name")
        panel_id, marker_id = parse_id(panel, "name"), parse_id(marker, "name")
        found, collection_time = await self._book.get_marker(user_id, panel_id, marker_id)
        return marker_to_proto(panel_name(user_id, panel_id), collection_time, found)

    async def ListMarkers(
        self, request: panel_service_pb2.ListMarkersRequest, context: Context
    ) -> panel_service_pb2.ListMarkersResponse:
        """Markers of one panel, or of every panel with ``-`` (a biomarker's history)."""
        segment, panel = split_name(request.parent, ("users", "panels"), "parent")
        user_id = await self._access.reader(segment, "parent")
        panel_id = None if panel == "-" else parse_id(panel, "parent")
        biomarker_id = None
        if request.biomarker:
            biomarker_id = find_definition(self._book.dictionary, request.biomarker, "biomarker").id
        try:
            flags = [Flag(flag) for flag in request.flags]
        except ValueError:
            raise InvalidArgument.for_field("flags", "holds an unknown flag") from None
        size = resolve_page_size(request.page_size, default=100, maximum=1000)
        ascending = ordering(request.order_by, "collection_time")
        window = interval(request, "collection_interval")
        fingerprint = {
            "method": "ListMarkers",
            "user": str(user_id),
            "panel": str(panel_id),
            "biomarker": biomarker_id,
            "flags": sorted(flag.value for flag in flags),
            "interval": interval_fingerprint(window),
            "ascending": ascending,
        }
        after = time_cursor(self._pages.cursor(request.page_token, fingerprint))
        items = await self._book.list_markers(
            user_id,
            panel_id=panel_id,
            biomarker_id=biomarker_id,
            interval=window,
            flags=flags,
            ascending=ascending,
            after=after,
            limit=size + 1,
        )
        token = ""
        if len(items) > size:
            items = items[:size]
            _, last_time, last = items[-1]
            token = self._pages.token(time_cursor_of(last_time, last.id), fingerprint)
        owner = str(user_id)
        return panel_service_pb2.ListMarkersResponse(
            markers=[
                marker_to_proto(panel_name(owner, owner_panel), collection_time, marker)
                for owner_panel, collection_time, marker in items
            ],
            next_page_token=token,
        )


class PanelInternalServicer(panel_internal_service_pb2_grpc.PanelInternalServiceServicer):
    """Results extracted by the documents service, merged into the document's panel."""

    def __init__(self, merge: DocumentMerge) -> None:
        """Merge with ``merge``."""
        self._merge = merge

    async def MergeDocumentMarkers(
        self, request: panel_internal_service_pb2.MergeDocumentMarkersRequest, context: Context
    ) -> panel_internal_service_pb2.MergeDocumentMarkersResponse:
        """Add, replace or remove a document's markers."""
        segment = split_name(request.user, ("users",), "user")[0]
        user_id = parse_user_segment(segment, "user")
        if user_id is None or user_id != current_principal().user_id:
            raise InvalidArgument.for_field("user", "must be the UUID of the user the call acts for")
        if len(request.upserts) > MAX_UPSERTS:
            raise InvalidArgument.for_field("upserts", f"at most {MAX_UPSERTS} results per call")
        try:
            fasting = Fasting(request.fasting)
        except ValueError:
            raise InvalidArgument.for_field("fasting", f"unknown value {request.fasting}") from None
        upserts = []
        for index, upsert in enumerate(request.upserts):
            draft = marker_draft_from_proto(upsert.marker, f"upserts[{index}].marker")
            upserts.append((upsert.extracted_marker, draft))
        outcome = await self._merge.merge(
            user_id,
            DocumentResults(
                document=request.document,
                collection_time=required_moment(request, "collection_time", "collection_time"),
                utc_offset=optional_duration(request, "utc_offset"),
                lab_name=request.lab_name,
                fasting=fasting,
                upserts=upserts,
                removals=list(request.removals),
            ),
        )
        response = panel_internal_service_pb2.MergeDocumentMarkersResponse(
            links=[
                panel_internal_service_pb2.MarkerLink(extracted_marker=extracted, marker=marker)
                for extracted, marker in outcome.links
            ],
            created=outcome.created,
        )
        if outcome.panel is not None:
            response.panel.CopyFrom(panel_to_proto(outcome.panel))
        return response
