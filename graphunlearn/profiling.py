"""Cost measurements: wall time and peak memory of a block of work."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys
import threading
import time

import torch

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int:
    """The process's resident set size now (Linux ``/proc/self/statm``); elsewhere its peak so far."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:  # pragma: no cover - not Linux
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere


@functools.cache
def _malloc_trim():
    """glibc's ``malloc_trim``, looked up once; ``None`` elsewhere."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        return None


def _trim_heap() -> None:
    """Hand freed heap pages back to the system (glibc ``malloc_trim``), so that memory freed by earlier
    work and reused by the measured block still shows as growth."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


class PeakMemory:
    """Peak memory a block adds above what the process held when it started, in MiB (``peak_mb``).

    On a CUDA device: ``torch.cuda.max_memory_allocated`` (reset at entry) minus the allocation at entry.
    On CPU: the resident set size sampled every ``interval`` seconds by a background thread (so a spike
    shorter than the interval can be missed) minus the resident set size at entry, after freed heap pages
    are handed back (glibc); memory the allocator keeps cached from earlier work can still hide some
    growth, so read CPU figures as lower bounds. Also records ``seconds``.

        with PeakMemory() as mem:
            work()
        print(mem.peak_mb, mem.seconds)
    """

    def __init__(self, device: str | torch.device = "cpu", interval: float = 0.002):
        self.device = torch.device(device)
        self.interval = interval
        self.peak_mb = 0.0
        self.seconds = 0.0

    def __enter__(self) -> PeakMemory:
        self._stop = threading.Event()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            _trim_heap()
            self._base = self._peak = rss_bytes()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        self._t0 = time.perf_counter()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, rss_bytes())

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            self._thread.join()
            peak = max(self._peak, rss_bytes())
        self.seconds = time.perf_counter() - self._t0
        self.peak_mb = max(0, peak - self._base) / 2**20
