"""A service process for the graceful-shutdown test: one slow method, one background task.

It reports on stdout, one word per line: ``PORT <n>`` once bound, ``SLOW_STARTED`` when a slow
call begins, ``SLOW_FINISHED`` when it returns, ``BACKGROUND_STOPPED`` and ``ON_STOP`` during
shutdown. It runs until SIGTERM, like a real service.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from google.protobuf import wrappers_pb2

from vitalis_runtime.server import create_server, serve
from vitalis_runtime.testing_grpc import generic_service

SERVICE = "vitalis.test.v1.SlowService"
SLOW_SECONDS = 1.5


def report(word: str) -> None:
    print(word, flush=True)


async def slow(request: wrappers_pb2.StringValue, context: Any) -> wrappers_pb2.StringValue:
    report("SLOW_STARTED")
    await asyncio.sleep(SLOW_SECONDS)
    report("SLOW_FINISHED")
    return wrappers_pb2.StringValue(value=f"done: {request.value}")


async def background(stop: asyncio.Event) -> None:
    await stop.wait()
    report("BACKGROUND_STOPPED")


async def on_stop() -> None:
    report("ON_STOP")


async def main() -> None:
    handler = grpc.unary_unary_rpc_method_handler(
        slow, wrappers_pb2.StringValue.FromString, wrappers_pb2.StringValue.SerializeToString
    )
    server, port, health = await create_server(
        "127.0.0.1:0",
        service_name="slow",
        register=generic_service(SERVICE, {"Slow": handler}),
        service_names=[SERVICE],
        verifier=None,
        public_methods=[f"/{SERVICE}/Slow"],
    )
    report(f"PORT {port}")
    await serve(server, health, grace_seconds=10, background=[background], on_stop=[on_stop])


if __name__ == "__main__":
    asyncio.run(main())
