"""Ending a process: with its parent (a child that must not outlive the process that started it), and on
SIGTERM or SIGINT polled by its main thread (the connector's processes and the dev ledger's)."""

from __future__ import annotations

import ctypes
import signal
import sys
import time

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask Linux to send this process SIGTERM when its parent dies (no-op elsewhere).

    The signal fires when the *thread* that spawned this process ends: spawn from a thread that lives as
    long as the parent (its main thread)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


class StopSignals:
    """SIGTERM and SIGINT turned into a flag the main thread polls.

    The handler takes no lock: Python runs signal handlers in the main thread between two bytecodes,
    possibly while that thread holds a lock itself. `threading.Event.set()` as the handler deadlocked a
    worker whose main thread was inside `Event.wait()` (seen as a worker surviving its primary's SIGKILL).
    """

    def __init__(self) -> None:
        self.requested = False
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, _signum: int, _frame: object) -> None:
        self.requested = True

    def wait(self, seconds: float) -> bool:
        """Sleep `seconds` unless a stop was requested already; True once one was."""
        if not self.requested:
            time.sleep(seconds)
        return self.requested
