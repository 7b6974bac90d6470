"""DictionaryService and DictionaryInternalService over gRPC."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from vitalis.biomarkers.v1 import (
    biomarker_pb2,
    dictionary_internal_service_pb2,
    dictionary_internal_service_pb2_grpc,
    dictionary_service_pb2,
    dictionary_service_pb2_grpc,
)
from vitalis.identity.v1 import user_pb2

pytestmark = pytest.mark.timeout(60)


def reason(error: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        found = error_details_pb2.ErrorInfo()
        if detail.Unpack(found):
            return str(found.reason)
    return ""


def stub(platform: Any) -> dictionary_service_pb2_grpc.DictionaryServiceStub:
    return dictionary_service_pb2_grpc.DictionaryServiceStub(platform.biomarkers)


async def test_get_dictionary_and_a_biomarker(platform: Any, someone: Any) -> None:
    dictionary = await stub(platform).GetDictionary(
        dictionary_service_pb2.GetDictionaryRequest(name="dictionary"), metadata=someone.auth
    )
    assert dictionary.version == "2026.11.0"
    assert dictionary.biomarker_count >= 59
    creatinine = await stub(platform).GetBiomarker(
        dictionary_service_pb2.GetBiomarkerRequest(name="biomarkers/creatinine"), metadata=someone.auth
    )
    assert (creatinine.loinc_code, creatinine.canonical_unit) == ("2160-0", "mg/dL")
    assert creatinine.molecular_weight == pytest.approx(113.12)
    assert creatinine.alternate_units[0].factor == pytest.approx(1 / 88.40, rel=1e-3)
    assert {r.sex for r in creatinine.reference_ranges} == {
        user_pb2.SEX_FEMALE,
        user_pb2.SEX_MALE,
        user_pb2.SEX_UNSPECIFIED,
    }
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub(platform).GetBiomarker(
            dictionary_service_pb2.GetBiomarkerRequest(name="biomarkers/nope"), metadata=someone.auth
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_list_biomarkers_pages_and_filters_by_category(platform: Any, someone: Any) -> None:
    names: list[str] = []
    token = ""
    while True:
        page = await stub(platform).ListBiomarkers(
            dictionary_service_pb2.ListBiomarkersRequest(page_size=25, page_token=token),
            metadata=someone.auth,
        )
        names += [b.display_name for b in page.biomarkers]
        token = page.next_page_token
        if not token:
            break
    assert len(names) >= 59
    assert names == sorted(names, key=str.casefold)
    lipids = await stub(platform).ListBiomarkers(
        dictionary_service_pb2.ListBiomarkersRequest(category=biomarker_pb2.BIOMARKER_CATEGORY_LIPIDS),
        metadata=someone.auth,
    )
    assert {"Apolipoprotein B", "Lipoprotein(a)"} <= {b.display_name for b in lipids.biomarkers}


async def test_search_by_code_alias_and_similarity(platform: Any, someone: Any) -> None:
    by_code = await stub(platform).SearchBiomarkers(
        dictionary_service_pb2.SearchBiomarkersRequest(query="14749-6"), metadata=someone.auth
    )
    assert by_code.results[0].biomarker.name == "biomarkers/glucose"
    assert by_code.results[0].match_kind == biomarker_pb2.MATCH_KIND_LOINC_CODE
    by_alias = await stub(platform).SearchBiomarkers(
        dictionary_service_pb2.SearchBiomarkersRequest(query="hba1c"), metadata=someone.auth
    )
    assert by_alias.results[0].biomarker.name == "biomarkers/hemoglobin-a1c"
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub(platform).SearchBiomarkers(
            dictionary_service_pb2.SearchBiomarkersRequest(query=" "), metadata=someone.auth
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_convert_values(platform: Any, someone: Any) -> None:
    converted = await stub(platform).ConvertBiomarkerValue(
        dictionary_service_pb2.ConvertBiomarkerValueRequest(
            biomarker="biomarkers/hemoglobin-a1c", value=6.5, from_unit="%", to_unit="mmol/mol"
        ),
        metadata=someone.auth,
    )
    assert converted.value == pytest.approx(47.5, abs=0.05)
    assert converted.kind == biomarker_pb2.CONVERSION_KIND_IFCC_NGSP
    canonical = await stub(platform).ConvertBiomarkerValue(
        dictionary_service_pb2.ConvertBiomarkerValueRequest(
            biomarker="biomarkers/glucose", value=5.5, from_unit="mmol/L"
        ),
        metadata=someone.auth,
    )
    assert (round(canonical.value, 2), canonical.unit) == (99.09, "mg/dL")
    for request, expected in (
        (
            dictionary_service_pb2.ConvertBiomarkerValueRequest(
                biomarker="biomarkers/lipoprotein-a", value=75, from_unit="nmol/L", to_unit="mg/dL"
            ),
            "NO_FIXED_CONVERSION",
        ),
        (
            dictionary_service_pb2.ConvertBiomarkerValueRequest(
                biomarker="biomarkers/glucose", value=5, from_unit="nomol/L"
            ),
            "UNKNOWN_UNIT",
        ),
        (
            dictionary_service_pb2.ConvertBiomarkerValueRequest(
                biomarker="biomarkers/glucose", value=5, from_unit="g/dL"
            ),
            "UNKNOWN_UNIT",
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub(platform).ConvertBiomarkerValue(request, metadata=someone.auth)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert reason(raised.value) == expected


async def test_match_printed_results_is_for_services_only(platform: Any, someone: Any) -> None:
    internal = dictionary_internal_service_pb2_grpc.DictionaryInternalServiceStub(platform.biomarkers)
    request = dictionary_internal_service_pb2.MatchBiomarkersRequest(
        queries=[
            dictionary_internal_service_pb2.BiomarkerQuery(label="Glucose, Serum", unit="mg/dl"),
            dictionary_internal_service_pb2.BiomarkerQuery(label="HbA1c (IFCC)", unit="mmol/mol"),
            dictionary_internal_service_pb2.BiomarkerQuery(loinc_code="2160-0", unit="µmol/L"),
            dictionary_internal_service_pb2.BiomarkerQuery(label="Zzyzx flux"),
        ]
    )
    matched = await internal.MatchBiomarkers(request, metadata=platform.as_service(someone))
    glucose, hba1c, creatinine, nothing = matched.results
    assert glucose.matches[0].biomarker == "biomarkers/glucose"
    assert glucose.matches[0].unit_accepted
    assert hba1c.matches[0].biomarker == "biomarkers/hemoglobin-a1c"
    assert hba1c.matches[0].normalized_unit == "mmol/mol"
    assert hba1c.matches[0].unit_accepted
    assert creatinine.matches[0].match_kind == biomarker_pb2.MATCH_KIND_LOINC_CODE
    assert creatinine.matches[0].normalized_unit == "umol/L"
    assert list(nothing.matches) == []
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await internal.MatchBiomarkers(
            dictionary_internal_service_pb2.MatchBiomarkersRequest(
                queries=[dictionary_internal_service_pb2.BiomarkerQuery()]
            ),
            metadata=platform.as_service(someone),
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await internal.MatchBiomarkers(request, metadata=someone.auth)
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
