"""Fixtures of the reliability tests: an external dev ledger process that outlives connector kills."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.reliability.harness import LedgerProcess


@pytest.fixture
def ledger(tmp_path) -> Iterator[LedgerProcess]:
    """A dev ledger in its own process, data under the test's folder; stopped afterwards."""
    process = LedgerProcess(tmp_path / "devledger").start()
    yield process
    process.stop()
