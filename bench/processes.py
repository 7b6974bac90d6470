"""CPU seconds and memory of every process taking part in a measurement, read through psutil."""

from __future__ import annotations

from collections.abc import Mapping

import psutil

Pids = Mapping[str, list[int]]
"""The pids of each process label, read afresh before each reading (PostgreSQL backends come and go)."""


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of one process; ``None`` when it is gone."""
    try:
        times = psutil.Process(pid).cpu_times()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    return float(times.user + times.system)


def rss_mb(pid: int) -> float | None:
    """Resident memory of one process in MiB; ``None`` when it is gone."""
    try:
        return float(psutil.Process(pid).memory_info().rss) / 2**20
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


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
