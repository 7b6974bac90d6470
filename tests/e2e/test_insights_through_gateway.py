"""Insights through a real Envoy: a panel written to biomarkers becomes an insight on an open watch.

The whole chain runs: biomarkers commits the panel and its PanelCreated event to its outbox, its
relay publishes the event, the insights engine consumes it, reads the marker values through
biomarkers' contract with a service token, stores the insight, and the watch held open through the
gateway (newline-delimited JSON) receives it.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from vitalis_cli.platform import Platform
from vitalis_cli.testing import SignedUpUser, running_platform, sign_up
from vitalis_runtime import testing as runtime_testing

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
async def platform(
    test_servers: runtime_testing.TestServers, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Platform]:
    """A platform of this module's own, its events in a Redis database no other platform uses.

    Event stream keys are the same in every platform, so platforms started concurrently against one
    Redis database would consume each other's events.
    """
    parts = urlsplit(test_servers.redis_url)
    database = random.randint(1, 15)
    redis_url = (
        urlunsplit(parts._replace(path=f"/{database}"))
        if parts.scheme.startswith("redis")
        else parts.geturl()
    )
    isolated = runtime_testing.TestServers(database_url=test_servers.database_url, redis_url=redis_url)
    async with running_platform(isolated, Path(tmp_path_factory.mktemp("insights-platform"))) as running:
        yield running


class Watch:
    """A WatchInsights stream held open through the gateway, collecting its lines."""

    def __init__(self, gateway: httpx.AsyncClient, user: SignedUpUser) -> None:
        self.messages: list[tuple[float, dict[str, Any]]] = []
        self.status = 0
        self._opened = asyncio.Event()
        self._task = asyncio.create_task(self._read(gateway, user))

    async def _read(self, gateway: httpx.AsyncClient, user: SignedUpUser) -> None:
        loop = asyncio.get_running_loop()
        async with gateway.stream(
            "GET", "/v1/users/me/insights:watch", headers=user.headers, timeout=httpx.Timeout(10.0, read=None)
        ) as response:
            self.status = response.status_code
            self._opened.set()
            async for line in response.aiter_lines():
                if line.strip():
                    self.messages.append((loop.time(), json.loads(line)))

    async def opened(self) -> None:
        """Wait until the response headers arrived."""
        await asyncio.wait_for(self._opened.wait(), timeout=10)

    def created(self) -> list[tuple[float, dict[str, Any]]]:
        """The CREATED messages received so far."""
        return [item for item in self.messages if item[1].get("eventType") == "WATCH_EVENT_TYPE_CREATED"]

    async def close(self) -> None:
        """Stop reading."""
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def test_an_out_of_range_ldl_panel_reaches_an_open_watch_through_the_gateway(
    gateway: httpx.AsyncClient,
) -> None:
    user = await sign_up(gateway)
    watch = Watch(gateway, user)
    try:
        await watch.opened()
        assert watch.status == 200
        await asyncio.sleep(0.5)
        collected = datetime.now(UTC) - timedelta(days=2)
        loop = asyncio.get_running_loop()
        created = await gateway.post(
            "/v1/users/me/panels",
            headers=user.headers,
            json={
                "collectionTime": collected.isoformat().replace("+00:00", "Z"),
                "markers": [
                    {"biomarker": "biomarkers/ldl-cholesterol-direct", "value": 190, "reportedUnit": "mg/dL"},
                    {"biomarker": "biomarkers/hdl-cholesterol", "value": 55, "reportedUnit": "mg/dL"},
                ],
            },
        )
        assert created.status_code == 200, created.text
        written = loop.time()
        panel = created.json()["name"]

        for _ in range(100):
            if watch.created():
                break
            await asyncio.sleep(0.05)
        arrivals = watch.created()
        assert len(arrivals) == 1, watch.messages
        arrival, message = arrivals[0]
        insight = message["insight"]
        assert insight["rule"] == "rules/biomarker-out-of-range"
        assert insight["evidence"][0]["resource"] == panel
        assert insight["evidence"][1]["resource"].startswith(f"{panel}/markers/")
        assert insight["observed"] == {"value": 190, "unit": "mg/dL"}
        assert insight["title"] == "LDL cholesterol, direct above range"
        assert "190 mg/dL" in insight["summary"]
        assert arrival - written < 1.0

        listed = await gateway.get("/v1/users/me/insights", headers=user.headers)
        assert listed.status_code == 200, listed.text
        assert [item["name"] for item in listed.json()["insights"]] == [insight["name"]]
        assert listed.json()["unreadCount"] == 1
    finally:
        await watch.close()


async def test_another_users_insights_are_not_found_through_the_gateway(gateway: httpx.AsyncClient) -> None:
    owner, stranger = await sign_up(gateway), await sign_up(gateway)
    response = await gateway.get(f"/v1/{owner.name}/insights", headers=stranger.headers)
    assert response.status_code == 404, response.text
    rules = await gateway.get("/v1/rules", headers=stranger.headers)
    assert rules.status_code == 200
    assert any(rule["name"] == "rules/resting-heart-rate-anomaly" for rule in rules.json()["rules"])


NORMAL_NIGHTS = [54, 55, 56, 55, 53, 54, 56, 55, 54, 57, 55, 54, 56, 55]
ELEVATED = 68


def _sample(source: str, day: datetime, value: float) -> dict[str, Any]:
    return {
        "source": source,
        "metricType": "METRIC_TYPE_RESTING_HEART_RATE",
        "value": value,
        "unit": "/min",
        "startTime": day.replace(hour=7).isoformat().replace("+00:00", "Z"),
    }


async def test_elevated_resting_heart_rate_nights_give_one_anomaly_on_an_open_watch(
    gateway: httpx.AsyncClient,
) -> None:
    user = await sign_up(gateway)
    probe = await gateway.get(
        f"/v1/users/me/dailySummaries/{datetime.now(UTC).date().isoformat()}", headers=user.headers
    )
    if probe.status_code == 501:
        pytest.skip(
            "ingestion does not serve daily summaries yet (DailySummaryService answers UNIMPLEMENTED)"
        )
    source = await gateway.post(
        "/v1/users/me/sources",
        headers=user.headers,
        json={"displayName": "Ring", "platform": "SOURCE_PLATFORM_OURA"},
    )
    assert source.status_code == 200, source.text
    source_name = source.json()["name"]
    first = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=20)
    normal = [
        _sample(source_name, first + timedelta(days=offset), value)
        for offset, value in enumerate(NORMAL_NIGHTS)
    ]
    written = await gateway.post(
        "/v1/users/me/samples:batchCreate", headers=user.headers, json={"samples": normal}
    )
    assert written.status_code == 200, written.text

    watch = Watch(gateway, user)
    try:
        await watch.opened()
        await asyncio.sleep(3.0)
        assert watch.created() == []
        loop = asyncio.get_running_loop()
        elevated = [
            _sample(source_name, first + timedelta(days=len(NORMAL_NIGHTS) + offset), ELEVATED)
            for offset in range(3)
        ]
        written = await gateway.post(
            "/v1/users/me/samples:batchCreate", headers=user.headers, json={"samples": elevated}
        )
        assert written.status_code == 200, written.text
        last_write = loop.time()
        for _ in range(200):
            if watch.created():
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)

        arrivals = watch.created()
        assert len(arrivals) == 1, watch.messages
        arrival, message = arrivals[0]
        assert message["insight"]["rule"] == "rules/resting-heart-rate-anomaly"
        assert arrival - last_write < 1.0
        listed = await gateway.get("/v1/users/me/insights", headers=user.headers)
        assert [item["rule"] for item in listed.json()["insights"]] == ["rules/resting-heart-rate-anomaly"]
    finally:
        await watch.close()
