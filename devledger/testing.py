"""Helpers for tests that need a live dev ledger (tests/conftest.py can wrap them as fixtures)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devledger.server import LedgerHandle, start_ledger


@contextmanager
def running_ledger(data_dir: str | Path | None = None, block_interval: float = 0.0) -> Iterator[LedgerHandle]:
    """A dev ledger on free loopback ports (in memory unless `data_dir`), stopped on exit."""
    handle = start_ledger(
        host="127.0.0.1", port=0, ws_port=0, data_dir=data_dir, block_interval=block_interval
    )
    try:
        yield handle
    finally:
        handle.stop()
