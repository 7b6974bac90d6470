"""Export and erasure jobs, and identity's own UserDataService, against the real service."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import socket
import zipfile

import grpc
import pytest
import redis.asyncio as aioredis

from vitalis.identity.v1 import (
    auth_service_pb2,
    auth_service_pb2_grpc,
    consent_pb2,
    consent_service_pb2,
    consent_service_pb2_grpc,
    data_rights_pb2,
    data_rights_service_pb2,
    data_rights_service_pb2_grpc,
    user_data_service_pb2,
    user_data_service_pb2_grpc,
    user_service_pb2,
    user_service_pb2_grpc,
)

pytestmark = pytest.mark.timeout(90)


async def wait_for(get, name: str, metadata, *, done=(data_rights_pb2.JOB_STATE_SUCCEEDED,)):
    for _ in range(200):
        job = await get(name, metadata)
        if job.state in done:
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name} did not finish: {job}")


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_export_gathers_one_archive_with_a_manifest(identity) -> None:
    ada = await identity.sign_up()
    await consent_service_pb2_grpc.ConsentServiceStub(identity.channel).GrantConsent(
        consent_service_pb2.GrantConsentRequest(
            parent="users/me", type=consent_pb2.CONSENT_TYPE_PRIVACY_POLICY, version="v1"
        ),
        metadata=ada.auth,
    )
    rights = data_rights_service_pb2_grpc.DataRightsServiceStub(identity.channel)
    job = await rights.CreateExportJob(
        data_rights_service_pb2.CreateExportJobRequest(parent="users/me", request_id="e1"), metadata=ada.auth
    )
    again = await rights.CreateExportJob(
        data_rights_service_pb2.CreateExportJobRequest(parent="users/me", request_id="e1"), metadata=ada.auth
    )
    assert again.name == job.name

    async def get(name, metadata):
        return await rights.GetExportJob(
            data_rights_service_pb2.GetExportJobRequest(name=name), metadata=metadata
        )

    done = await wait_for(get, job.name, ada.auth)
    assert [(s.service, s.state) for s in done.services] == [
        ("identity", data_rights_pb2.JOB_STATE_SUCCEEDED)
    ]
    chunks = rights.DownloadExportArchive(
        data_rights_service_pb2.DownloadExportArchiveRequest(name=job.name), metadata=ada.auth
    )
    archive = b"".join([chunk.data async for chunk in chunks])
    assert len(archive) == done.archive_size_bytes
    assert hashlib.sha256(archive).hexdigest() == done.archive_sha256
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        manifest = json.loads(opened.read("manifest.json"))
        paths = {entry["path"] for entry in manifest["entries"]}
        assert {"identity/profile.json", "identity/preferences.json", "identity/consents.jsonl"} <= paths
        for entry in manifest["entries"]:
            assert hashlib.sha256(opened.read(entry["path"])).hexdigest() == entry["sha256"]
        profile = json.loads(opened.read("identity/profile.json"))
        assert profile["email"] == ada.email
        assert "privacy-policy" in opened.read("identity/consents.jsonl").decode()
    listed = await rights.ListExportJobs(
        data_rights_service_pb2.ListExportJobsRequest(parent="users/me"), metadata=ada.auth
    )
    assert [j.name for j in listed.export_jobs] == [job.name]
    bob = await identity.sign_up()
    with pytest.raises(grpc.aio.AioRpcError) as foreign:
        await get(job.name, bob.auth)
    assert foreign.value.code() is grpc.StatusCode.NOT_FOUND


async def test_erasure_leaves_only_the_tombstone(identity) -> None:
    ada = await identity.sign_up()
    rights = data_rights_service_pb2_grpc.DataRightsServiceStub(identity.channel)
    with pytest.raises(grpc.aio.AioRpcError) as wrong_email:
        await rights.CreateErasureJob(
            data_rights_service_pb2.CreateErasureJobRequest(parent="users/me", confirm_email="x@example.com"),
            metadata=ada.auth,
        )
    assert wrong_email.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    auth = auth_service_pb2_grpc.AuthServiceStub(identity.channel)
    with pytest.raises(grpc.aio.AioRpcError):
        await auth.SignIn(auth_service_pb2.SignInRequest(email=ada.email, password="not the password!"))
    redis = aioredis.Redis.from_url(identity.settings.redis_url)
    throttle_key = "vitalis:identity:sign-in-failures:" + hashlib.sha256(ada.email.encode()).hexdigest()
    assert await redis.exists(throttle_key)
    job = await rights.CreateErasureJob(
        data_rights_service_pb2.CreateErasureJobRequest(parent="users/me", confirm_email=ada.email.upper()),
        metadata=ada.auth,
    )
    assert job.trigger == data_rights_pb2.ERASURE_TRIGGER_USER_REQUEST
    # Signed out everywhere and unable to sign in again at once.
    with pytest.raises(grpc.aio.AioRpcError) as refresh:
        await auth.RefreshSession(auth_service_pb2.RefreshSessionRequest(refresh_token=ada.refresh_token))
    assert refresh.value.code() is grpc.StatusCode.UNAUTHENTICATED
    for _ in range(200):
        async with identity.db.transaction(user_id=ada.user_id) as conn:
            state = await conn.fetchval("SELECT state FROM erasure_jobs WHERE user_id = $1", ada.user_id)
        if state == "succeeded":
            break
        await asyncio.sleep(0.05)
    assert state == "succeeded"
    async with identity.db.transaction(user_id=ada.user_id) as conn:
        left = {
            table: await conn.fetchval(f"SELECT count(*) FROM {table} WHERE user_id = $1", ada.user_id)
            for table in (
                "users",
                "credentials",
                "sessions",
                "refresh_tokens",
                "preferences",
                "consents",
                "consent_events",
                "share_grants",
                "external_identities",
                "export_jobs",
            )
        }
        tombstone = await conn.fetchval("SELECT count(*) FROM erasure_jobs WHERE user_id = $1", ada.user_id)
        audit = await conn.fetch("SELECT action, resource FROM audit_log WHERE user_id = $1", ada.user_id)
    assert set(left.values()) == {0}
    assert not await redis.exists(throttle_key)
    await redis.aclose()
    assert tombstone == 1
    assert ("erase", ada.name) in {(r["action"], r["resource"]) for r in audit}
    with pytest.raises(grpc.aio.AioRpcError) as sign_in:
        await auth.SignIn(
            auth_service_pb2.SignInRequest(email=ada.email, password="correct horse battery staple")
        )
    assert sign_in.value.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_an_unreachable_service_fails_the_export_and_retries_the_erasure_naming_it(
    identity_with,
) -> None:
    async with identity_with(ingestion_target=f"127.0.0.1:{closed_port()}") as identity:
        ada = await identity.sign_up()
        rights = data_rights_service_pb2_grpc.DataRightsServiceStub(identity.channel)
        job = await rights.CreateExportJob(
            data_rights_service_pb2.CreateExportJobRequest(parent="users/me"), metadata=ada.auth
        )

        async def get(name, metadata):
            return await rights.GetExportJob(
                data_rights_service_pb2.GetExportJobRequest(name=name), metadata=metadata
            )

        failed = await wait_for(get, job.name, ada.auth, done=(data_rights_pb2.JOB_STATE_FAILED,))
        by_service = {s.service: s for s in failed.services}
        assert by_service["ingestion"].state == data_rights_pb2.JOB_STATE_FAILED
        assert by_service["ingestion"].error.code == grpc.StatusCode.UNAVAILABLE.value[0]
        assert by_service["identity"].state == data_rights_pb2.JOB_STATE_SUCCEEDED
        assert "ingestion" in failed.error.message
        with pytest.raises(grpc.aio.AioRpcError) as not_ready:
            async for _ in rights.DownloadExportArchive(
                data_rights_service_pb2.DownloadExportArchiveRequest(name=job.name), metadata=ada.auth
            ):
                pass
        assert not_ready.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        erasure = await rights.CreateErasureJob(
            data_rights_service_pb2.CreateErasureJobRequest(parent="users/me", confirm_email=ada.email),
            metadata=ada.auth,
        )

        async def get_erasure(name, metadata):
            return await rights.GetErasureJob(
                data_rights_service_pb2.GetErasureJobRequest(name=name), metadata=metadata
            )

        failing = await wait_for(
            get_erasure, erasure.name, ada.auth, done=(data_rights_pb2.JOB_STATE_FAILED,)
        )
        assert "ingestion" in failing.error.message
        states = {s.service: s.state for s in failing.services}
        # Identity waits for every other service, so the user (and the job) survive to be retried.
        assert states == {
            "ingestion": data_rights_pb2.JOB_STATE_FAILED,
            "identity": data_rights_pb2.JOB_STATE_PENDING,
        }
        repeated = await rights.CreateErasureJob(
            data_rights_service_pb2.CreateErasureJobRequest(parent="users/me", confirm_email=ada.email),
            metadata=ada.auth,
        )
        assert repeated.name == erasure.name


async def test_identity_user_data_service_is_for_services_only(identity) -> None:
    ada = await identity.sign_up()
    stub = user_data_service_pb2_grpc.UserDataServiceStub(identity.channel)
    with pytest.raises(grpc.aio.AioRpcError) as user_token:
        async for _ in stub.ExportUserData(
            user_data_service_pb2.ExportUserDataRequest(user=ada.name), metadata=ada.auth
        ):
            pass
    assert user_token.value.code() is grpc.StatusCode.PERMISSION_DENIED
    paths = set()
    async for chunk in stub.ExportUserData(
        user_data_service_pb2.ExportUserDataRequest(user=ada.name), metadata=identity.as_service(ada.user_id)
    ):
        paths.add(chunk.entry_path)
    assert {"profile.json", "sessions.jsonl", "audit_log.jsonl"} <= paths
    erased = await stub.EraseUserData(
        user_data_service_pb2.EraseUserDataRequest(user=ada.name), metadata=identity.as_service(ada.user_id)
    )
    assert erased.erased_item_count > 0
    again = await stub.EraseUserData(
        user_data_service_pb2.EraseUserDataRequest(user=ada.name), metadata=identity.as_service(ada.user_id)
    )
    assert again.erased_item_count == 0
    with pytest.raises(grpc.aio.AioRpcError) as malformed:
        await stub.EraseUserData(
            user_data_service_pb2.EraseUserDataRequest(user="users/me"),
            metadata=identity.as_service(ada.user_id),
        )
    assert malformed.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_a_soft_deleted_user_is_erased_when_the_grace_period_ends(identity_with) -> None:
    async with identity_with(deletion_grace_days=0) as identity:
        ada = await identity.sign_up()
        users = user_service_pb2_grpc.UserServiceStub(identity.channel)
        await users.DeleteUser(user_service_pb2.DeleteUserRequest(name="users/me"), metadata=ada.auth)
        for _ in range(200):
            async with identity.db.transaction(user_id=ada.user_id) as conn:
                job = await conn.fetchrow(
                    "SELECT state, trigger FROM erasure_jobs WHERE user_id = $1", ada.user_id
                )
                users_left = await conn.fetchval("SELECT count(*) FROM users WHERE user_id = $1", ada.user_id)
            if job is not None and job["state"] == "succeeded":
                break
            await asyncio.sleep(0.05)
        assert job is not None
        assert (job["state"], job["trigger"]) == ("succeeded", "deletion_expired")
        assert users_left == 0


async def test_restoring_a_user_cancels_the_scheduled_erasure(identity) -> None:
    ada = await identity.sign_up()
    users = user_service_pb2_grpc.UserServiceStub(identity.channel)
    rights = data_rights_service_pb2_grpc.DataRightsServiceStub(identity.channel)
    await users.DeleteUser(user_service_pb2.DeleteUserRequest(name="users/me"), metadata=ada.auth)
    scheduled = await rights.ListErasureJobs(
        data_rights_service_pb2.ListErasureJobsRequest(parent="users/me"), metadata=ada.auth
    )
    assert [(j.trigger, j.state) for j in scheduled.erasure_jobs] == [
        (data_rights_pb2.ERASURE_TRIGGER_DELETION_EXPIRED, data_rights_pb2.JOB_STATE_PENDING)
    ]
    await users.UndeleteUser(user_service_pb2.UndeleteUserRequest(name="users/me"), metadata=ada.auth)
    after = await rights.ListErasureJobs(
        data_rights_service_pb2.ListErasureJobsRequest(parent="users/me"), metadata=ada.auth
    )
    assert list(after.erasure_jobs) == []


async def test_an_erasure_request_during_the_grace_period_runs_the_scheduled_one_now(identity) -> None:
    ada = await identity.sign_up()
    users = user_service_pb2_grpc.UserServiceStub(identity.channel)
    rights = data_rights_service_pb2_grpc.DataRightsServiceStub(identity.channel)
    await users.DeleteUser(user_service_pb2.DeleteUserRequest(name="users/me"), metadata=ada.auth)
    job = await rights.CreateErasureJob(
        data_rights_service_pb2.CreateErasureJobRequest(parent="users/me", confirm_email=ada.email),
        metadata=ada.auth,
    )
    assert job.trigger == data_rights_pb2.ERASURE_TRIGGER_DELETION_EXPIRED

    async def get(name, metadata):
        return await rights.GetErasureJob(
            data_rights_service_pb2.GetErasureJobRequest(name=name), metadata=metadata
        )

    done = await wait_for(get, job.name, ada.auth)
    assert done.state == data_rights_pb2.JOB_STATE_SUCCEEDED


async def test_exports_are_limited_per_day(identity) -> None:
    ada = await identity.sign_up()
    rights = data_rights_service_pb2_grpc.DataRightsServiceStub(identity.channel)

    async def get(name, metadata):
        return await rights.GetExportJob(
            data_rights_service_pb2.GetExportJobRequest(name=name), metadata=metadata
        )

    for _ in range(5):
        job = await rights.CreateExportJob(
            data_rights_service_pb2.CreateExportJobRequest(parent="users/me"), metadata=ada.auth
        )
        with pytest.raises(grpc.aio.AioRpcError) as busy:
            await rights.CreateExportJob(
                data_rights_service_pb2.CreateExportJobRequest(parent="users/me"), metadata=ada.auth
            )
        assert busy.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        await wait_for(get, job.name, ada.auth)
    with pytest.raises(grpc.aio.AioRpcError) as quota:
        await rights.CreateExportJob(
            data_rights_service_pb2.CreateExportJobRequest(parent="users/me"), metadata=ada.auth
        )
    assert quota.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
