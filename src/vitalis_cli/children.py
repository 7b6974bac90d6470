"""Child processes of the platform: started, watched, their output forwarded, stopped in order."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

LogSink = Callable[[str, str], None]
"""Receives ``(process name, line)`` for every line a child writes."""

TAIL_LINES = 100
LINE_LIMIT = 2**20
OUTPUT_DRAIN_SECONDS = 5.0


def discard_log(name: str, line: str) -> None:
    """A log sink that keeps nothing (the last lines are still kept for error messages)."""


class ChildProcess:
    """One supervised child: its merged stdout/stderr is forwarded line by line and the tail kept."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path | None = None,
        log_sink: LogSink = discard_log,
    ) -> None:
        self.name = name
        self._argv = tuple(argv)
        self._env = dict(env)
        self._cwd = cwd
        self._log_sink = log_sink
        self._tail: deque[str] = deque(maxlen=TAIL_LINES)
        self._process: asyncio.subprocess.Process | None = None
        self._pump: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        """Start the process in a process group of its own.

        Its own group keeps a terminal's Ctrl-C away from it, so the supervisor decides the order
        in which everything stops.
        """
        self._process = await asyncio.create_subprocess_exec(
            *self._argv,
            env=self._env,
            cwd=self._cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            process_group=0,
            limit=LINE_LIMIT,
        )
        self._pump = asyncio.create_task(self._forward_output(), name=f"{self.name}-log")

    @property
    def pid(self) -> int | None:
        """The process id, once started."""
        return None if self._process is None else self._process.pid

    @property
    def returncode(self) -> int | None:
        """The exit status, or ``None`` while it runs (or before it started)."""
        return None if self._process is None else self._process.returncode

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called (an exit is then expected)."""
        return self._stopping

    def tail(self) -> list[str]:
        """The last lines the process wrote."""
        return list(self._tail)

    async def _forward_output(self) -> None:
        assert self._process is not None
        assert self._process.stdout is not None
        stream = self._process.stdout
        while True:
            try:
                raw = await stream.readline()
            except ValueError:
                self._tail.append("[a line longer than 1 MiB was dropped]")
                continue
            if not raw:
                return
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            self._tail.append(line)
            self._log_sink(self.name, line)

    async def wait(self) -> int:
        """Wait for the process to exit and its output to be drained; return its exit status."""
        if self._process is None:
            raise RuntimeError(f"{self.name} was never started")
        code = await self._process.wait()
        await self._drain_output()
        return code

    async def _drain_output(self) -> None:
        if self._pump is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._pump), timeout=OUTPUT_DRAIN_SECONDS)
        except TimeoutError:
            # A grandchild still holds the pipe open; its output no longer matters.
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump

    async def stop(self, *, grace: float) -> int | None:
        """SIGTERM, wait up to ``grace`` seconds, then SIGKILL; return the exit status."""
        self._stopping = True
        process = self._process
        if process is None:
            return None
        if process.returncode is None:
            self._signal_group(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout=grace)
            except TimeoutError:
                self._log_sink(self.name, f"did not stop within {grace:g}s; killing it")
                self._signal_group(signal.SIGKILL)
                await asyncio.wait_for(process.wait(), timeout=10)
        await self._drain_output()
        return process.returncode

    def _signal_group(self, signum: signal.Signals) -> None:
        assert self._process is not None
        with contextlib.suppress(ProcessLookupError):
            # The whole group, so helpers a child may have spawned go with it.
            os.killpg(self._process.pid, signum)
