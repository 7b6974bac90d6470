"""A load generator's HTTP/1.1 client: prepared request bytes over keep-alive connections.

A load generator must cost far less than the server it measures; a general-purpose client spends
milliseconds per request in Python, this spends microseconds.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit


class Http1Connection:
    """One keep-alive HTTP/1.1 connection that sends prepared request bytes and reads whole responses.

    A load generator must cost far less than the server it measures; a general-purpose client
    spends milliseconds per request in Python, this spends microseconds.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def exchange(self, request: bytes) -> tuple[int, bytes, bool]:
        """Send one request; return the status, the body and whether the connection stays open."""
        self.writer.write(request)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection")
        status = int(status_line.split(b" ", 2)[1])
        length, chunked, keep_alive = 0, False, True
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value:
                chunked = True
            elif name == b"connection" and value == b"close":
                keep_alive = False
        if not chunked:
            return status, await self.reader.readexactly(length), keep_alive
        body = bytearray()
        while size := int((await self.reader.readline()).split(b";")[0], 16):
            body += await self.reader.readexactly(size)
            await self.reader.readline()
        await self.reader.readline()
        return status, bytes(body), keep_alive


def http1_request(method: str, url: str, headers: dict[str, str], body: bytes) -> tuple[str, int, bytes]:
    """The bytes of one HTTP/1.1 request to ``url``, and the host and port to send them to."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"{method} {path} HTTP/1.1", f"host: {host}:{port}", f"content-length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return host, port, ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Http1Pool:
    """Keep-alive connections to one server, opened as concurrency demands."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._idle: list[Http1Connection] = []
        self._opened: list[Http1Connection] = []

    async def send(self, request: bytes) -> tuple[int, bytes]:
        """One exchange on an idle connection (or a new one); raise on a status of 300 or more."""
        if self._idle:
            connection = self._idle.pop()
        else:
            connection = Http1Connection(*await asyncio.open_connection(self.host, self.port))
            self._opened.append(connection)
        status, content, keep_alive = await connection.exchange(request)
        if keep_alive:
            self._idle.append(connection)
        if status >= 300:
            raise RuntimeError(f"HTTP {status}: {content[:300].decode(errors='replace')}")
        return status, content

    async def close(self) -> None:
        """Close every connection."""
        for connection in self._opened:
            connection.writer.close()
