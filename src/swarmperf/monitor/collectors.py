"""Collectors: the machine's figures from psutil.

CPU utilisation is computed here from two readings of `psutil.cpu_times` rather than with
`psutil.cpu_percent(interval=None)`: that function keeps its previous reading in module-level
state, so every other caller in the process (a Monitor loop, a test) would shift this
collector's interval. Rates of every kind need two samples; the first one says so.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from swarmperf.monitor.snapshot import SystemFigures

PSI_MEMORY = Path("/proc/pressure/memory")
NEEDS_TWO = "needs two samples"


@dataclass(frozen=True, slots=True)
class _Counters:
    """The cumulative counters that rates are computed from."""

    ts: float
    cpu: tuple[tuple[float, float], ...]  # per core: (busy seconds, total seconds)
    disk: tuple[int, int] | None  # read bytes, written bytes
    net: tuple[int, int, int, int] | None  # sent, received, errors, drops


class SystemCollector:
    """Samples the machine and this process; rates come from the previous sample.

    `clock` stamps samples whose `now` is not given (UNIX seconds). `psi_path` is where Linux
    offers memory pressure stall information.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        psi_path: Path = PSI_MEMORY,
        process: psutil.Process | None = None,
    ) -> None:
        self._clock = clock
        self._psi_path = psi_path
        self._process = process if process is not None else psutil.Process(os.getpid())
        self._previous: _Counters | None = None

    def sample(self, now: float | None = None) -> SystemFigures:
        ts = self._clock() if now is None else now
        reasons: dict[str, str] = {}
        counters = _read_counters(ts)
        previous, self._previous = self._previous, counters
        rates = _rates(previous, counters, reasons)
        memory = psutil.virtual_memory()
        swap = psutil.swap_memory()
        rss, threads, fds = self._process_figures(reasons)
        return SystemFigures(
            ts=ts,
            cpu_percent=rates["cpu"],
            cpu_per_core=rates["cores"],
            load_avg=_load_avg(reasons),
            memory_percent=float(memory.percent),
            memory_available_bytes=int(memory.available),
            memory_pressure=read_memory_pressure(self._psi_path, reasons),
            swap_percent=float(swap.percent),
            disk_read_bytes_per_s=rates["disk_read"],
            disk_write_bytes_per_s=rates["disk_write"],
            net_sent_bytes_per_s=rates["net_sent"],
            net_recv_bytes_per_s=rates["net_recv"],
            net_errors_per_s=rates["net_errors"],
            net_drops_per_s=rates["net_drops"],
            process_rss_bytes=rss,
            process_threads=threads,
            process_fds=fds,
            reasons=reasons,
        )

    def _process_figures(self, reasons: dict[str, str]) -> tuple[int, int, int | None]:
        with self._process.oneshot():
            rss = int(self._process.memory_info().rss)
            threads = int(self._process.num_threads())
            fds: int | None = None
            if hasattr(self._process, "num_fds"):
                fds = int(self._process.num_fds())
            else:
                reasons["process_fds"] = "this platform does not count file descriptors"
        return rss, threads, fds


def _read_counters(ts: float) -> _Counters:
    cores = tuple(_busy_total(t) for t in psutil.cpu_times(percpu=True))
    disk_io = psutil.disk_io_counters()
    net_io = psutil.net_io_counters()
    disk = None if disk_io is None else (int(disk_io.read_bytes), int(disk_io.write_bytes))
    net = None
    if net_io is not None:
        net = (
            int(net_io.bytes_sent),
            int(net_io.bytes_recv),
            int(net_io.errin + net_io.errout),
            int(net_io.dropin + net_io.dropout),
        )
    return _Counters(ts, cores, disk, net)


def _busy_total(times: Any) -> tuple[float, float]:
    # Linux counts time running a VM in `user`/`nice` and again in `guest`/`guest_nice`:
    # counted twice it would inflate both, and the busy share of a hypervisor's cores.
    total = float(sum(times))
    total -= float(getattr(times, "guest", 0.0)) + float(getattr(times, "guest_nice", 0.0))
    # Waiting for I/O is idle time for the CPU, as `top` counts it.
    idle = float(times.idle) + float(getattr(times, "iowait", 0.0))
    return total - idle, total


def _rates(previous: _Counters | None, now: _Counters, reasons: dict[str, str]) -> dict[str, Any]:
    names = ("cpu", "disk_read", "disk_write", "net_sent", "net_recv", "net_errors", "net_drops")
    rates: dict[str, Any] = dict.fromkeys(names)
    rates["cores"] = ()
    if previous is None:
        for name in ("cpu_percent", "cpu_per_core", *(f"{n}_per_s" for n in _IO_NAMES)):
            reasons[name] = NEEDS_TWO
        return rates
    dt = now.ts - previous.ts
    if dt <= 0:
        for name in ("cpu_percent", "cpu_per_core", *(f"{n}_per_s" for n in _IO_NAMES)):
            reasons[name] = f"no time passed since the previous sample ({dt:g} s)"
        return rates
    cores = []
    for (busy0, total0), (busy1, total1) in zip(previous.cpu, now.cpu, strict=False):
        span = total1 - total0
        cores.append(100.0 * min(1.0, max(0.0, (busy1 - busy0) / span)) if span > 0 else 0.0)
    rates["cores"] = tuple(cores)
    rates["cpu"] = sum(cores) / len(cores) if cores else None
    if previous.disk is None or now.disk is None:
        reasons["disk_read_bytes_per_s"] = reasons["disk_write_bytes_per_s"] = (
            "psutil finds no disk counters here"
        )
    else:
        rates["disk_read"] = max(0, now.disk[0] - previous.disk[0]) / dt
        rates["disk_write"] = max(0, now.disk[1] - previous.disk[1]) / dt
    if previous.net is None or now.net is None:
        for name in _IO_NAMES[2:]:
            reasons[f"{name}_per_s"] = "psutil finds no network counters here"
    else:
        # Counters can wrap or be reset (an interface going away); a negative delta is no rate.
        for i, name in enumerate(("net_sent", "net_recv", "net_errors", "net_drops")):
            rates[name] = max(0, now.net[i] - previous.net[i]) / dt
    return rates


_IO_NAMES = (
    "disk_read_bytes",
    "disk_write_bytes",
    "net_sent_bytes",
    "net_recv_bytes",
    "net_errors",
    "net_drops",
)


def _load_avg(reasons: dict[str, str]) -> tuple[float, float, float] | None:
    try:
        one, five, fifteen = psutil.getloadavg()
    except (AttributeError, OSError) as exc:
        reasons["load_avg"] = f"no load average on this platform ({exc})"
        return None
    return (float(one), float(five), float(fifteen))


def read_memory_pressure(path: Path, reasons: dict[str, str]) -> float | None:
    """PSI memory "some avg10" (percent of the last 10 s some task stalled on memory)."""
    try:
        text = path.read_text()
    except OSError as exc:
        reasons["memory_pressure"] = f"{path} is not readable ({exc.strerror or exc})"
        return None
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "some":
            for item in fields[1:]:
                key, _, value = item.partition("=")
                if key == "avg10":
                    try:
                        return float(value)
                    except ValueError:
                        break
    reasons["memory_pressure"] = f"{path} has no 'some avg10' figure"
    return None
