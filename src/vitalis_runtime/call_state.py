"""Whether a client-streaming call is still open once its request stream ended.

``grpc.aio`` ends a request stream the same way whether the client finished sending or went away
midway (cancelled the call, closed its channel, died): a read that fails is reported as the end of
the stream, and ``context.cancelled()`` and ``context.done()`` stay false. The cancellation of the
handler's task follows separately, so nothing promises it lands before the handler acts on what it
believes is a whole request. gRPC core, though, refuses every new operation on a call that is
cancelled: sending the response's initial metadata succeeds on an open call and fails on an
abandoned one.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import grpc.aio


class CallAbandoned(asyncio.CancelledError):
    """The client went away before its request stream ended: the call is cancelled."""


async def require_open_call(context: grpc.aio.ServicerContext[Any, Any]) -> None:
    """Return if the call is still open; raise a cancellation if its client went away.

    Which one depends on where gRPC notices: :class:`CallAbandoned` when core refuses the send,
    ``asyncio.CancelledError`` when the call's cancellation reaches the send first.

    Call it once the request stream ended and before acting on the request. It sends the call's
    initial metadata (empty), so the handler must not have sent it already.
    """
    try:
        await context.send_initial_metadata(())
    except grpc.aio.InternalError as error:
        raise CallAbandoned("the client went away before the end of its request stream") from error
