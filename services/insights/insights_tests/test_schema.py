"""The insights schema keeps the row-level security contract, and one user's rows stay theirs."""

from __future__ import annotations

import asyncio
import uuid

from vitalis_runtime.db import Database
from vitalis_runtime.migrations import assert_rls_posture

from .conftest import Platform, running_insights
from .test_engine_acceptance import ldl_panel


async def test_every_table_has_forced_row_level_security(platform: Platform) -> None:
    assert await assert_rls_posture(platform.admin_url, schema="insights", app_role=platform.app_role) == []


async def test_the_application_role_sees_only_the_current_users_rows(platform: Platform) -> None:
    owner, other = uuid.uuid4(), uuid.uuid4()
    async with running_insights(platform, platform.settings()):
        await platform.publish("biomarkers", owner, ldl_panel(owner))
        db = await Database.connect(platform.admin_url, role=platform.app_role, schema="insights", max_size=1)
        try:
            seen = 0
            for _ in range(100):
                async with db.transaction(user_id=owner, readonly=True) as conn:
                    seen = await conn.fetchval("SELECT count(*) FROM insights")
                if seen:
                    break
                await asyncio.sleep(0.05)
            assert seen == 1
            async with db.transaction(user_id=other, readonly=True) as conn:
                assert await conn.fetchval("SELECT count(*) FROM insights") == 0
            async with db.transaction(user_id=None, readonly=True) as conn:
                assert await conn.fetchval("SELECT count(*) FROM insights") == 0
        finally:
            await db.close()
