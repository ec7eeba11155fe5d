"""Which process a run belongs to, and whether that process still exists.

A run row records the process that began it: its pid, the host, and the process's start time.
The start time tells a live process from a later one that was given the same pid (pids are
reused), so a run whose process is gone can be told from one that is running, on the same
host. A process on another host cannot be checked from here; its runs stay as they are.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

import psutil

# psutil derives start times from the boot time and clock ticks; 1 s absorbs their rounding
# (and clock adjustments), far below the time it takes the kernel to hand a pid out again
START_TOLERANCE_S = 1.0


@dataclass(frozen=True)
class ProcessId:
    pid: int
    host: str
    started: float | None  # the process's start time, seconds since the epoch


def hostname() -> str:
    return socket.gethostname()


def this_process() -> ProcessId:
    return ProcessId(os.getpid(), hostname(), started_at(os.getpid()))


def started_at(pid: int) -> float | None:
    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.Error, OSError):
        return None


def gone_reason(pid: int, host: str, started: float | None) -> str | None:
    """Why the process of a run on this host is gone (None: it runs, or it is on another host)."""
    if host != hostname():
        return None
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return f"abandoned: process {pid} on {host} is gone (it exited without finishing the run)"
        if started is not None and abs(proc.create_time() - started) > START_TOLERANCE_S:
            return f"abandoned: process {pid} on {host} is gone (pid {pid} now belongs to another process)"
        return None
    except psutil.NoSuchProcess:
        return f"abandoned: process {pid} on {host} is gone"
    except (psutil.Error, OSError):
        return None
