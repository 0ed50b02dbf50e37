"""Process figures from /proc (Linux): resident memory, CPU seconds, machine-wide CPU use; and percentiles.

No psutil: a Pi image may not have it and /proc says everything needed. `Sampler` is a thread that samples
one process every `interval` seconds so RSS over time (growth per hour) and CPU over a window come from the
same series.
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass

TICK = os.sysconf("SC_CLK_TCK")


def status_kb(pid: int | str = "self", key: str = "VmRSS") -> int:
    """A KiB figure of /proc/PID/status (VmRSS: resident; RssAnon: its anonymous part, the heap and stacks
    the process made, not the libraries and model files it maps), 0 when the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def rss_kb(pid: int | str = "self") -> int:
    """Resident set size of a process in KiB (VmRSS), 0 when it is gone."""
    return status_kb(pid, "VmRSS")


def cpu_seconds(pid: int | str = "self", tid: int | None = None) -> float:
    """User + system CPU seconds a process has used (all its threads; with `tid` that thread alone: the main
    thread's tid is the pid), 0.0 when it is gone."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    try:
        with open(path) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14 and 15 of proc(5))


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, summed over cores."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already inside user
    return (total - idle) / TICK, total / TICK


@dataclass(frozen=True)
class Sample:
    """One observation of a process: wall time, RSS (KiB), its CPU seconds, machine busy/total CPU seconds, and
    `ours_s`: CPU seconds of the process plus the helpers of the measurement (subscriber, broker, this one);
    `anon_kb`: its anonymous resident memory; `main_cpu_s`: its main thread's CPU seconds."""

    t: float
    rss_kb: int
    cpu_s: float
    busy_s: float
    total_s: float
    ours_s: float
    anon_kb: int = 0  # RssAnon
    main_cpu_s: float = 0.0  # the main thread's CPU seconds


class Sampler:
    """Samples a process in a background thread until `stop()`; `samples` is the series."""

    def __init__(self, pid: int, interval: float = 0.25, helpers: tuple[int, ...] = ()) -> None:
        self.pid = pid
        self.helpers = (*helpers, os.getpid())
        self.interval = interval
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sampler-{pid}", daemon=True)

    def sample(self) -> Sample:
        busy, total = machine_cpu()
        cpu = cpu_seconds(self.pid)
        s = Sample(time.time(), rss_kb(self.pid), cpu, busy, total, cpu + sum(cpu_seconds(p) for p in self.helpers),
                   status_kb(self.pid, "RssAnon"), cpu_seconds(self.pid, self.pid))  # fmt: skip
        if s.rss_kb:
            self.samples.append(s)
        return s

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)

    def window(self, t0: float, t1: float) -> list[Sample]:
        """The samples taken between wall times t0 and t1."""
        return [s for s in self.samples if t0 <= s.t <= t1]


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    v = sorted(values)
    k = (len(v) - 1) * q / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def slope_per_hour(samples: list[Sample]) -> float:
    """Least-squares RSS growth in MiB per hour over the samples (NaN with fewer than 3 samples)."""
    if len(samples) < 3:
        return math.nan
    ts = [s.t for s in samples]
    ys = [s.rss_kb / 1024.0 for s in samples]
    tm, ym = sum(ts) / len(ts), sum(ys) / len(ys)
    den = sum((t - tm) ** 2 for t in ts)
    if den == 0:
        return math.nan
    return sum((t - tm) * (y - ym) for t, y in zip(ts, ys, strict=True)) / den * 3600.0


def other_load(samples: list[Sample]) -> float:
    """Cores' worth of CPU used by everything outside the measurement during the samples (contention)."""
    if len(samples) < 2:
        return math.nan
    a, b = samples[0], samples[-1]
    wall = b.t - a.t
    if wall <= 0:
        return math.nan
    return max(0.0, ((b.busy_s - a.busy_s) - (b.ours_s - a.ours_s)) / wall)
