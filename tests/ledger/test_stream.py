"""The ledger event stream's memory of committed transactions: bounded, oldest forgotten first."""

from __future__ import annotations

import json
import tracemalloc

import pytest

from connector.ledger.stream import SEEN_LIMIT, TxStream

# What the remembered ids may cost at most: the ledger process must stay flat and under 500 MB at 100,000
# meters (issue 18) with everything else it holds (docs/benchmarks/soak.md).
SEEN_BUDGET = 32 * 1024 * 1024
HEIGHT = 1_000_000  # a block height past the small ints Python shares


class ClosedStream(Exception):
    """The fake socket has no frames left."""


class FakeSocket:
    """Serves BigchainDB valid_transactions frames (80 a block) for `count` ids, then closes."""

    def __init__(self, count: int) -> None:
        self._frames = (
            json.dumps({"height": HEIGHT + i // 80, "asset_id": f"a{i}", "transaction_id": f"{i:064x}"})
            for i in range(count)
        )

    def recv(self, timeout: float) -> str:
        frame = next(self._frames, None)
        if frame is None:
            raise ClosedStream
        return frame


def follow(stream: TxStream, count: int) -> None:
    with pytest.raises(ClosedStream):
        stream._follow(FakeSocket(count))


def test_the_oldest_ids_are_forgotten_past_the_limit() -> None:
    """Past SEEN_LIMIT commits the oldest ids are forgotten (read back instead), the newest kept."""
    stream = TxStream(["http://127.0.0.1:1"], timeout=1)
    follow(stream, SEEN_LIMIT + 10)
    assert stream.height(f"{0:064x}") is None and stream.height(f"{9:064x}") is None
    assert stream.height(f"{10:064x}") == HEIGHT
    assert stream.height(f"{SEEN_LIMIT + 9:064x}") == HEIGHT + (SEEN_LIMIT + 9) // 80


def test_a_full_memory_of_ids_fits_its_budget() -> None:
    """SEEN_LIMIT remembered ids (64 hex characters and a height each) cost less than SEEN_BUDGET, at the
    cost per id of 20,000 of them."""
    stream, sample = TxStream(["http://127.0.0.1:1"], timeout=1), 20_000
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        follow(stream, sample)
        per_id = (tracemalloc.get_traced_memory()[0] - before) / sample
    finally:
        tracemalloc.stop()
    assert per_id * SEEN_LIMIT < SEEN_BUDGET, f"{per_id:.0f} bytes an id"
