"""How ``vitalis run`` shows its children's output: one line each, prefixed with the process name."""

from __future__ import annotations

import threading
from typing import TextIO

from vitalis_cli.children import LogSink

_COLOURS = ("36", "32", "35", "33", "34", "96", "92", "95")
NAME_WIDTH = 10


def prefixed_printer(out: TextIO, *, colour: bool) -> LogSink:
    """A log sink writing ``name       | line`` to ``out`` (the name coloured on a terminal)."""
    assigned: dict[str, str] = {}
    lock = threading.Lock()

    def sink(name: str, line: str) -> None:
        label = name.ljust(NAME_WIDTH)
        if colour:
            code = assigned.setdefault(name, _COLOURS[len(assigned) % len(_COLOURS)])
            label = f"\033[{code}m{label}\033[0m"
        with lock:
            out.write(f"{label} | {line}\n")
            out.flush()

    return sink
