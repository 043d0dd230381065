"""CPU use of other processes while a benchmark runs, read from /proc/<pid>/stat (Linux only),
to tell which process sets the pace: a process near 100 % of a core is the bottleneck."""

from __future__ import annotations

import os
import threading
import time
from types import TracebackType

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of the process so far; None once it has gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()  # the command name may hold spaces
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime: fields 14 and 15 of stat


class CpuSampler:
    """Samples each watched process every `interval` seconds on a thread, from `with` to its end:
    mean and highest % of one core over the samples."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self._pids: dict[str, int] = {}
        self._last: dict[str, tuple[float, float]] = {}  # name: (wall time, CPU seconds) at the last sample
        self._percents: dict[str, list[float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)
        self._lock = threading.Lock()

    def watch(self, name: str, pid: int) -> None:
        seconds = cpu_seconds(pid)
        with self._lock:
            self._pids[name] = pid
            self._percents[name] = []
            if seconds is not None:
                self._last[name] = (time.monotonic(), seconds)

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        now = time.monotonic()
        with self._lock:
            for name, pid in self._pids.items():
                seconds = cpu_seconds(pid)
                if seconds is None or name not in self._last:
                    continue
                then, before = self._last[name]
                self._percents[name].append(100 * (seconds - before) / (now - then))
                self._last[name] = (now, seconds)

    def summary(self) -> dict[str, dict[str, float]]:
        """{name: {"mean": %, "max": %}} of one core, over the whole samples taken."""
        with self._lock:
            return {
                name: {"mean": round(sum(p) / len(p)), "max": round(max(p))} for name, p in self._percents.items() if p
            }
