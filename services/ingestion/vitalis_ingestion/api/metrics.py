"""vitalis.ingestion.v1.MetricService."""

from __future__ import annotations

import grpc

from vitalis.ingestion.v1 import metric_pb2, metric_service_pb2, metric_service_pb2_grpc
from vitalis_ingestion.domain.metrics import METRICS, METRICS_BY_SLUG, Metric
from vitalis_runtime.errors import InvalidArgument, NotFound
from vitalis_runtime.pagination import PageTokens, resolve_page_size

Context = grpc.aio.ServicerContext[object, object]


def descriptor_to_proto(metric: Metric) -> metric_pb2.MetricDescriptor:
    """A MetricDescriptor message."""
    return metric_pb2.MetricDescriptor(
        name=f"metricDescriptors/{metric.slug}",
        metric_type=metric.number,  # type: ignore[arg-type]
        display_name=metric.display_name,
        canonical_unit=metric.canonical_unit,
        accepted_units=list(metric.accepted_units),
        kind=int(metric.kind),  # type: ignore[arg-type]
        requires_hrv_parameters=metric.requires_hrv,
        plausible_min=metric.plausible_min,
        plausible_max=metric.plausible_max,
    )


class MetricServicer(metric_service_pb2_grpc.MetricServiceServicer):
    """The fixed metric catalogue."""

    def __init__(self, tokens: PageTokens) -> None:
        self._tokens = tokens

    async def GetMetricDescriptor(
        self, request: metric_service_pb2.GetMetricDescriptorRequest, context: Context
    ) -> metric_pb2.MetricDescriptor:
        """One descriptor by name."""
        prefix, _, slug = request.name.partition("/")
        if prefix != "metricDescriptors" or not slug:
            raise InvalidArgument.for_field(
                "name", "must be metricDescriptors/{metric}, e.g. metricDescriptors/heart-rate"
            )
        metric = METRICS_BY_SLUG.get(slug)
        if metric is None:
            raise NotFound(f"{request.name!r} is not a metric Vitalis knows", reason="METRIC_NOT_FOUND")
        return descriptor_to_proto(metric)

    async def ListMetricDescriptors(
        self, request: metric_service_pb2.ListMetricDescriptorsRequest, context: Context
    ) -> metric_service_pb2.ListMetricDescriptorsResponse:
        """Every descriptor in MetricType order."""
        size = resolve_page_size(request.page_size, default=100, maximum=1000)
        fingerprint = {"op": "ListMetricDescriptors"}
        cursor = self._tokens.decode(request.page_token, request=fingerprint)
        after = int(cursor.get("n", 0))
        remaining = [metric for metric in METRICS if metric.number > after]
        page = remaining[:size]
        token = (
            self._tokens.encode({"n": page[-1].number}, request=fingerprint) if len(remaining) > size else ""
        )
        return metric_service_pb2.ListMetricDescriptorsResponse(
            metric_descriptors=[descriptor_to_proto(metric) for metric in page], next_page_token=token
        )
