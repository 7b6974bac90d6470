"""Supervised children: output forwarded line by line, stopped with SIGTERM then SIGKILL."""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
from collections.abc import Awaitable, Callable

import pytest

from vitalis_cli.children import ChildProcess
from vitalis_cli.readiness import Readiness, StartupError, wait_until_ready


def _python(code: str) -> list[str]:
    return [sys.executable, "-u", "-c", textwrap.dedent(code)]


async def test_every_output_line_reaches_the_sink_with_the_childs_name() -> None:
    lines: list[tuple[str, str]] = []
    child = ChildProcess(
        "greeter",
        _python("""
            import sys
            print("hello")
            print("to stderr", file=sys.stderr)
        """),
        env=dict(os.environ),
        log_sink=lambda name, line: lines.append((name, line)),
    )
    await child.start()

    assert await asyncio.wait_for(child.wait(), timeout=30) == 0
    assert sorted(lines) == [("greeter", "hello"), ("greeter", "to stderr")]
    assert sorted(child.tail()) == ["hello", "to stderr"]


async def test_stop_ends_a_child_that_honours_sigterm_within_the_grace() -> None:
    child = ChildProcess("sleeper", _python("import time; print('up'); time.sleep(60)"), env=dict(os.environ))
    await child.start()
    await wait_until_ready(child, Readiness(_printed(child, "up"), "up", 30))

    code = await asyncio.wait_for(child.stop(grace=10), timeout=30)

    assert code == -15


async def test_stop_kills_a_child_that_ignores_sigterm_once_the_grace_is_over() -> None:
    child = ChildProcess(
        "stubborn",
        _python("""
            import signal, time
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            print("up")
            time.sleep(60)
        """),
        env=dict(os.environ),
    )
    await child.start()
    await wait_until_ready(child, Readiness(_printed(child, "up"), "up", 30))

    code = await asyncio.wait_for(child.stop(grace=0.5), timeout=30)

    assert code == -9


async def test_a_child_that_dies_while_starting_is_reported_with_its_last_output() -> None:
    child = ChildProcess(
        "doomed", _python("print('cannot open the database'); raise SystemExit(3)"), env=dict(os.environ)
    )
    await child.start()

    async def never_ready() -> bool:
        return False

    with pytest.raises(StartupError, match=r"(?s)doomed exited with status 3.*cannot open the database"):
        await wait_until_ready(child, Readiness(never_ready, "SERVING", 30))
    await child.stop(grace=1)


async def test_a_child_that_never_becomes_ready_is_reported_after_the_timeout() -> None:
    child = ChildProcess("slow", _python("import time; time.sleep(60)"), env=dict(os.environ))
    await child.start()

    async def never_ready() -> bool:
        return False

    try:
        with pytest.raises(StartupError, match=r"slow did not report SERVING within 0.5s"):
            await wait_until_ready(child, Readiness(never_ready, "SERVING", 0.5))
    finally:
        await asyncio.wait_for(child.stop(grace=5), timeout=30)


def _printed(child: ChildProcess, text: str) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return text in child.tail()

    return probe
