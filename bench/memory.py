"""Peak resident memory of a process tree, sampled in a background thread."""

from __future__ import annotations

import contextlib
import os
import threading

import psutil


class PeakMemory:
    """Peak of the summed RSS of `pid` (default: this process) and all its descendants (Spark
    JVMs, Python workers, spark-submit children) while in the block."""

    def __init__(self, pid: int | None = None, every_s: float = 0.05) -> None:
        self.pid = pid if pid is not None else os.getpid()
        self.every_s = every_s
        self.peak_mb = 0.0
        self._stop = threading.Event()

    def _rss(self) -> float:
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0.0
        total = 0
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total / 2**20

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, self._rss())
            self._stop.wait(self.every_s)

    def __enter__(self) -> PeakMemory:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self._rss())
