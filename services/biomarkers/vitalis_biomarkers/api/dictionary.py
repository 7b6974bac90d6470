"""vitalis.biomarkers.v1.DictionaryService and DictionaryInternalService."""

from __future__ import annotations

import grpc

from vitalis.biomarkers.v1 import (
    biomarker_pb2,
    dictionary_internal_service_pb2,
    dictionary_internal_service_pb2_grpc,
    dictionary_service_pb2,
    dictionary_service_pb2_grpc,
)
from vitalis_biomarkers.api.common import Pages, timestamp
from vitalis_biomarkers.dictionary.model import (
    BiomarkerDefinition,
    Category,
    Dictionary,
    NoFixedConversionError,
    RangeBand,
    UnitNotAcceptedError,
)
from vitalis_biomarkers.dictionary.search import match_printed, search
from vitalis_biomarkers.dictionary.units import Units, UnknownUnitError
from vitalis_runtime.errors import InvalidArgument, NotFound
from vitalis_runtime.pagination import resolve_page_size

Context = grpc.aio.ServicerContext[object, object]
MAX_QUERY_LENGTH = 200
MAX_MATCH_QUERIES = 500


def _range(
    band: RangeBand, message_type: type[biomarker_pb2.ReferenceRange] | type[biomarker_pb2.OptimalRange]
) -> object:
    message = message_type(
        sex=band.sex.value,  # type: ignore[arg-type]
        min_age_years=band.min_age,
        citation=band.citation,
    )
    for name in ("low", "high"):
        value = getattr(band, name)
        if value is not None:
            setattr(message, name, value)
    if band.max_age is not None:
        message.max_age_years = band.max_age
    if isinstance(message, biomarker_pb2.ReferenceRange):
        if band.critical_low is not None:
            message.critical_low = band.critical_low
        if band.critical_high is not None:
            message.critical_high = band.critical_high
    return message


def definition_to_proto(definition: BiomarkerDefinition) -> biomarker_pb2.BiomarkerDefinition:
    """A BiomarkerDefinition message."""
    message = biomarker_pb2.BiomarkerDefinition(
        name=definition.name,
        display_name=definition.display_name,
        loinc_code=definition.loinc_code,
        additional_loinc_codes=list(definition.additional_loinc_codes),
        aliases=list(definition.aliases),
        category=definition.category.value,  # type: ignore[arg-type]
        description=definition.description,
        canonical_unit=definition.canonical_unit,
        display_precision=definition.display_precision,
        dictionary_version=definition.dictionary_version,
    )
    for alternate in definition.alternate_units:
        unit = message.alternate_units.add(
            unit=alternate.unit,
            loinc_code=alternate.loinc_code,
            kind=alternate.kind.value,
            basis=alternate.basis,
        )
        if alternate.factor is not None:
            unit.factor = alternate.factor
    if definition.molecular_weight is not None:
        message.molecular_weight = definition.molecular_weight
    if definition.plausible_min is not None:
        message.plausible_min = definition.plausible_min
    if definition.plausible_max is not None:
        message.plausible_max = definition.plausible_max
    message.reference_ranges.extend(
        [_range(band, biomarker_pb2.ReferenceRange) for band in definition.reference_ranges]  # type: ignore[misc]
    )
    message.optimal_ranges.extend(
        [_range(band, biomarker_pb2.OptimalRange) for band in definition.optimal_ranges]  # type: ignore[misc]
    )
    return message


def find_definition(dictionary: Dictionary, name: str, field: str) -> BiomarkerDefinition:
    """The definition named ``biomarkers/{id}``; InvalidArgument when malformed, NotFound when unknown."""
    if not name.startswith("biomarkers/") or name.count("/") != 1:
        raise InvalidArgument.for_field(field, f"{name!r} is not a biomarker name like biomarkers/glucose")
    definition = dictionary.by_name(name)
    if definition is None:
        raise NotFound(f"the dictionary has no biomarker {name}", reason="BIOMARKER_NOT_FOUND")
    return definition


def _offset(cursor: dict[str, object]) -> int:
    value = cursor.get("offset", 0)
    if not isinstance(value, int) or value < 0:
        raise InvalidArgument.for_field(
            "page_token", "is not a page token of this list", reason="INVALID_PAGE_TOKEN"
        )
    return value


class DictionaryServicer(dictionary_service_pb2_grpc.DictionaryServiceServicer):
    """The dictionary: the same for every user."""

    def __init__(self, dictionary: Dictionary, units: Units, pages: Pages) -> None:
        """Serve ``dictionary``; convert units with ``units``."""
        self._dictionary = dictionary
        self._units = units
        self._pages = pages

    async def GetDictionary(
        self, request: dictionary_service_pb2.GetDictionaryRequest, context: Context
    ) -> biomarker_pb2.Dictionary:
        """The loaded version and its size."""
        if request.name != "dictionary":
            raise NotFound(f"there is no {request.name!r}; the dictionary is named 'dictionary'")
        return biomarker_pb2.Dictionary(
            name="dictionary",
            version=self._dictionary.version,
            biomarker_count=len(self._dictionary.biomarkers),
            sources=list(self._dictionary.sources),
            load_time=timestamp(self._dictionary.load_time),
        )

    async def GetBiomarker(
        self, request: dictionary_service_pb2.GetBiomarkerRequest, context: Context
    ) -> biomarker_pb2.BiomarkerDefinition:
        """One definition."""
        return definition_to_proto(find_definition(self._dictionary, request.name, "name"))

    async def ListBiomarkers(
        self, request: dictionary_service_pb2.ListBiomarkersRequest, context: Context
    ) -> dictionary_service_pb2.ListBiomarkersResponse:
        """Definitions in display-name order, optionally of one category."""
        size = resolve_page_size(request.page_size, default=100, maximum=1000)
        fingerprint = {"method": "ListBiomarkers", "category": int(request.category)}
        offset = _offset(self._pages.cursor(request.page_token, fingerprint))
        definitions = self._dictionary.sorted_by_display_name()
        if request.category:
            try:
                category = Category(request.category)
            except ValueError:
                raise InvalidArgument.for_field("category", f"unknown value {request.category}") from None
            definitions = [definition for definition in definitions if definition.category is category]
        page = definitions[offset : offset + size]
        token = (
            self._pages.token({"offset": offset + size}, fingerprint)
            if offset + size < len(definitions)
            else ""
        )
        return dictionary_service_pb2.ListBiomarkersResponse(
            biomarkers=[definition_to_proto(definition) for definition in page], next_page_token=token
        )

    async def SearchBiomarkers(
        self, request: dictionary_service_pb2.SearchBiomarkersRequest, context: Context
    ) -> dictionary_service_pb2.SearchBiomarkersResponse:
        """By LOINC code, name or alias; best match first."""
        query = request.query.strip()
        if not query:
            raise InvalidArgument.for_field("query", "is required: a LOINC code, name or alias")
        if len(request.query) > MAX_QUERY_LENGTH:
            raise InvalidArgument.for_field("query", f"must be at most {MAX_QUERY_LENGTH} characters")
        size = resolve_page_size(request.page_size, default=10, maximum=100)
        fingerprint = {"method": "SearchBiomarkers", "query": query}
        offset = _offset(self._pages.cursor(request.page_token, fingerprint))
        hits = search(self._dictionary, query)
        page = hits[offset : offset + size]
        token = self._pages.token({"offset": offset + size}, fingerprint) if offset + size < len(hits) else ""
        return dictionary_service_pb2.SearchBiomarkersResponse(
            results=[
                dictionary_service_pb2.BiomarkerSearchResult(
                    biomarker=definition_to_proto(hit.definition),
                    match_kind=hit.kind.value,  # type: ignore[arg-type]
                    matched_text=hit.matched_text,
                    score=hit.score,
                )
                for hit in page
            ],
            next_page_token=token,
        )

    async def ConvertBiomarkerValue(
        self, request: dictionary_service_pb2.ConvertBiomarkerValueRequest, context: Context
    ) -> dictionary_service_pb2.ConvertBiomarkerValueResponse:
        """A value between two units of a biomarker."""
        definition = find_definition(self._dictionary, request.biomarker, "biomarker")
        if not request.from_unit:
            raise InvalidArgument.for_field("from_unit", "is required, as a UCUM unit such as mmol/L")
        to_unit = request.to_unit or definition.canonical_unit
        for field, unit in (("from_unit", request.from_unit), ("to_unit", to_unit)):
            try:
                self._units.quantity(unit)
            except UnknownUnitError as error:
                raise InvalidArgument.for_field(field, str(error), reason="UNKNOWN_UNIT") from None
        try:
            value, kind = definition.convert(request.value, request.from_unit, to_unit)
        except UnitNotAcceptedError as error:
            field = "from_unit" if not definition.accepts(request.from_unit) else "to_unit"
            raise InvalidArgument.for_field(field, str(error), reason="UNKNOWN_UNIT") from None
        except NoFixedConversionError as error:
            raise InvalidArgument.for_field("to_unit", str(error), reason="NO_FIXED_CONVERSION") from None
        return dictionary_service_pb2.ConvertBiomarkerValueResponse(
            value=value,
            unit=to_unit,
            kind=kind.value,  # type: ignore[arg-type]
            dictionary_version=self._dictionary.version,
        )


class DictionaryInternalServicer(dictionary_internal_service_pb2_grpc.DictionaryInternalServiceServicer):
    """Matching printed lab results to the dictionary, for the documents service."""

    def __init__(self, dictionary: Dictionary, units: Units) -> None:
        """Match against ``dictionary``; normalise printed units with ``units``."""
        self._dictionary = dictionary
        self._units = units
        self._known_units = sorted(
            {unit for definition in dictionary.biomarkers for unit in definition.units}
        )

    def _normalize(self, printed: str) -> str | None:
        return self._units.normalize(printed, known=self._known_units)

    async def MatchBiomarkers(
        self, request: dictionary_internal_service_pb2.MatchBiomarkersRequest, context: Context
    ) -> dictionary_internal_service_pb2.MatchBiomarkersResponse:
        """Candidates for up to 500 printed results."""
        if len(request.queries) > MAX_MATCH_QUERIES:
            raise InvalidArgument.for_field("queries", f"at most {MAX_MATCH_QUERIES} queries per call")
        limit = 3 if request.max_candidates <= 0 else min(request.max_candidates, 10)
        results = []
        for index, query in enumerate(request.queries):
            if not query.label.strip() and not query.loinc_code.strip():
                raise InvalidArgument.for_field(f"queries[{index}]", "needs a label or a LOINC code")
            candidates = match_printed(
                self._dictionary,
                label=query.label,
                loinc_code=query.loinc_code,
                unit=query.unit,
                normalize_unit=self._normalize,
                limit=limit,
            )
            results.append(
                dictionary_internal_service_pb2.BiomarkerMatchResult(
                    matches=[
                        dictionary_internal_service_pb2.BiomarkerMatch(
                            biomarker=candidate.hit.definition.name,
                            match_kind=candidate.hit.kind.value,  # type: ignore[arg-type]
                            matched_text=candidate.hit.matched_text,
                            confidence=candidate.confidence,
                            normalized_unit=candidate.normalized_unit,
                            unit_accepted=candidate.unit_accepted,
                        )
                        for candidate in candidates
                    ]
                )
            )
        return dictionary_internal_service_pb2.MatchBiomarkersResponse(
            results=results, dictionary_version=self._dictionary.version
        )
