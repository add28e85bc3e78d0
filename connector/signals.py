"""How a connector process learns it should stop: SIGTERM and SIGINT, polled by its main thread.

Shared by the one-process server (connector/service.py) and the worker supervisor
(connector/supervisor.py), which imports the service only once the metrics folder is set.
"""

from __future__ import annotations

import signal
import time


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
