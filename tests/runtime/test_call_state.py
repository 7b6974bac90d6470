"""A client-streaming call tells a finished request stream from one whose client went away."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import pytest
from google.protobuf import wrappers_pb2

from vitalis_runtime.call_state import require_open_call

SERVICE, METHOD = "vitalis.test.v1.Uploads", "Upload"


async def _serve(
    work: list[asyncio.Future[str]], stream_ended: asyncio.Event, check: asyncio.Event
) -> tuple[grpc.aio.Server, int]:
    """A server whose handler reads the whole stream, then, on ``check``, checks the call.

    It runs in a task shielded from gRPC's cancellation of the handler, so all it learns of a client
    that went away after ending its stream is what the check tells.
    """

    async def read_all(requests: AsyncIterator[wrappers_pb2.StringValue], context: Any) -> str:
        received = [request.value async for request in requests]
        stream_ended.set()
        await check.wait()
        await require_open_call(context)
        return "".join(received)

    async def upload(
        requests: AsyncIterator[wrappers_pb2.StringValue], context: grpc.aio.ServicerContext[Any, Any]
    ) -> wrappers_pb2.StringValue:
        work.append(asyncio.ensure_future(read_all(requests, context)))
        return wrappers_pb2.StringValue(value=await asyncio.shield(work[-1]))

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                SERVICE,
                {
                    METHOD: grpc.stream_unary_rpc_method_handler(
                        upload,
                        request_deserializer=wrappers_pb2.StringValue.FromString,
                        response_serializer=wrappers_pb2.StringValue.SerializeToString,
                    )
                },
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


@pytest.mark.parametrize("abandon", [False, True], ids=["client-waits", "client-cancels"])
async def test_only_a_call_whose_client_stayed_passes_the_check(abandon: bool) -> None:
    work: list[asyncio.Future[str]] = []
    stream_ended, check = asyncio.Event(), asyncio.Event()
    server, port = await _serve(work, stream_ended, check)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.stream_unary(
                f"/{SERVICE}/{METHOD}",
                request_serializer=wrappers_pb2.StringValue.SerializeToString,
                response_deserializer=wrappers_pb2.StringValue.FromString,
            )()
            for part in ("a", "b", "c"):
                await call.write(wrappers_pb2.StringValue(value=part))
            await call.done_writing()
            async with asyncio.timeout(10):
                await stream_ended.wait()
                if abandon:
                    call.cancel()
                    # Sequencing, not a measurement: let the cancellation reach the server first.
                    await asyncio.sleep(0.5)
                    check.set()
                    outcome = await asyncio.gather(work[0], return_exceptions=True)
                    assert isinstance(outcome[0], asyncio.CancelledError), outcome
                else:
                    check.set()
                    assert (await call).value == "abc"
                    assert work[0].result() == "abc"
    finally:
        await server.stop(None)
