"""The quick contract check of a sample draft agrees with the one that names every problem."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from vitalis_ingestion.domain import samples
from vitalis_ingestion.domain.metrics import metric_by_number
from vitalis_ingestion.domain.samples import SampleDraft, contract_violations, well_formed

START = datetime(2024, 1, 1, tzinfo=UTC)


def drafts() -> list[SampleDraft]:
    """Drafts on both sides of every rule of the contract (HRV ones included)."""
    found = []
    for source, metric, has_hrv, method, window, start, end, unit, offset, key, metadata in itertools.product(
        ["", "watch"],
        [0, 1, 3],
        [False, True],
        [0, 2, 3],
        [0, 300],
        [datetime(1899, 12, 31, tzinfo=UTC), START],
        [None, -1, 0, 31 * 86400, 31 * 86400 + 1],
        ["", "count/min", "s", "furlong"],
        [None, 18 * 3600, -18 * 3600 - 1],
        ["", "k" * 101],
        [{}, {"k" * 101: "v"}],
    ):
        found.append(
            SampleDraft(
                source,
                metric,
                60.0,
                start,
                None if end is None else start + timedelta(seconds=end),
                unit,
                method,
                window,
                has_hrv,
                offset,
                None,
                key,
                metadata,
            )
        )
    return found


def test_well_formed_drafts_are_exactly_those_without_contract_violations(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cases = drafts()
    quick = [well_formed(draft, metric_by_number(draft.metric)) for draft in cases]
    # The full check, without the quick one it starts with.
    monkeypatch.setattr(samples, "well_formed", lambda *_: False)
    full = [contract_violations(draft, "samples[0]") == [] for draft in cases]
    assert quick == full
    assert any(quick)
    assert not all(quick)
