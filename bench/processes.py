"""CPU seconds and memory of every process taking part in a measurement, read through psutil."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

import psutil

Pids = Mapping[str, list[int]]
"""The pids of each process label, read afresh before each reading (PostgreSQL backends come and go)."""


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of one process and of its children, those running and those reaped.

    ``None`` when the process is gone. Work a service hands to a child process (a parser, an
    import worker) is the service's work.
    """
    try:
        process = psutil.Process(pid)
        times = process.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in process.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                child_times = child.cpu_times()
                total += child_times.user + child_times.system
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    return float(total)


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process and its children in MiB; ``None`` when it is gone.

    A service's worker processes (an import's parser) hold its memory too.
    """
    try:
        process = psutil.Process(pid)
        total = process.memory_info().rss
        for child in process.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                total += child.memory_info().rss
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    return float(total) / 2**20


class CpuMeter:
    """CPU spent per label between :meth:`start` and :meth:`stop`.

    A pid first seen at :meth:`stop` counts in full (a backend opened during the measurement);
    a pid gone by then is lost, which undercounts and never inflates.
    """

    def __init__(self) -> None:
        self._before: dict[tuple[str, int], float] = {}

    def start(self, processes: Pids) -> None:
        """Remember every process's CPU time now."""
        self._before = {}
        for label, pids in processes.items():
            for pid in pids:
                seconds = cpu_seconds(pid)
                if seconds is not None:
                    self._before[(label, pid)] = seconds

    def stop(self, processes: Pids) -> dict[str, float]:
        """CPU seconds per label since :meth:`start`."""
        spent: dict[str, float] = {}
        for label, pids in processes.items():
            total = 0.0
            for pid in pids:
                seconds = cpu_seconds(pid)
                if seconds is not None:
                    total += seconds - self._before.get((label, pid), 0.0)
            spent[label] = spent.get(label, 0.0) + total
        return spent

    def vanished(self, processes: Pids) -> list[str]:
        """Labels of processes read at :meth:`start` that are gone now (their CPU is missing)."""
        alive = {(label, pid) for label, pids in processes.items() for pid in pids if psutil.pid_exists(pid)}
        return sorted(
            {label for label, pid in self._before if label != "postgres" and (label, pid) not in alive}
        )
