"""The biomarkers schema keeps the row-level security contract."""

from __future__ import annotations

from typing import Any

import pytest

from vitalis_runtime.migrations import assert_rls_posture

pytestmark = pytest.mark.timeout(60)


async def test_every_user_table_has_forced_row_level_security(platform: Any) -> None:
    assert (
        await assert_rls_posture(
            platform.database_url, schema="biomarkers", app_role="vitalis_biomarkers_app"
        )
        == []
    )
