"""What a request's metadata says about its client: user agent, address and cookies."""

from __future__ import annotations

from http.cookies import CookieError, SimpleCookie

import grpc

Context = grpc.aio.ServicerContext[object, object]


def metadata_value(context: Context, key: str) -> str:
    """The first value of a metadata key, or empty."""
    for name, value in context.invocation_metadata() or ():
        if name == key:
            return value if isinstance(value, str) else value.decode(errors="replace")
    return ""


def user_agent(context: Context) -> str:
    """The client's ``User-Agent``."""
    return metadata_value(context, "user-agent")[:256]


def client_ip(context: Context) -> str:
    """The client's address as the gateway saw it (Envoy's ``x-envoy-external-address``)."""
    return (
        (metadata_value(context, "x-envoy-external-address") or metadata_value(context, "x-forwarded-for"))
        .split(",")[0]
        .strip()[:64]
    )


def cookie(context: Context, name: str) -> str:
    """A cookie the client sent, or empty."""
    jar: SimpleCookie = SimpleCookie()
    for key, value in context.invocation_metadata() or ():
        if key == "cookie":
            try:
                jar.load(value if isinstance(value, str) else value.decode(errors="replace"))
            except CookieError:
                continue
    morsel = jar.get(name)
    return morsel.value if morsel is not None else ""
