"""The reliability checks themselves find what they look for (so a passing fault test means something)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from types import SimpleNamespace

from tests.reliability import checks


def meta(start: str, chain: str, prev: str) -> dict:
    return {
        "window": {"start": start},
        "chain_hash": chain,
        "prev_chain_hash": prev,
        "fingerprint": "f" + chain,
    }


def window(chain: str) -> SimpleNamespace:
    return SimpleNamespace(chain_hash=chain, fingerprint="f" + chain)


def test_window_anchored_twice_is_reported():
    """Two TRANSFERs for one window start show as 'anchored 2 times' and as a count mismatch."""
    txs = [{"id": "c"}, {"metadata": meta("w1", "h1", "h0")}, {"metadata": meta("w1", "h1", "h0")}]
    problems = checks._matches_windows(txs, [window("h1")])
    assert "window w1 anchored 2 times" in problems
    assert "2 TRANSFERs on the ledger for 1 stored windows" in problems


def test_broken_fingerprint_chain_is_reported():
    """A TRANSFER whose prev_chain_hash is not the previous chain hash is reported."""
    txs = [{"id": "c"}, {"metadata": meta("w1", "h1", "h0")}, {"metadata": meta("w2", "h2", "hX")}]
    assert checks._matches_windows(txs, [window("h1"), window("h2")]) == ["fingerprint chain broken at w2"]


def test_history_without_valid_create_is_reported():
    """A history that does not start with a signed CREATE is not a chain."""
    assert checks._linear([{"operation": "TRANSFER", "id": "x"}]) == [
        "history does not start with a valid CREATE"
    ]


def test_fork_and_stray_transactions_are_reported():
    """Two unspent outputs of a meter's key, or its transactions outside the history, are a fork."""
    outputs = SimpleNamespace(get=lambda key, spent=None: [{"transaction_id": "a"}, {"transaction_id": "z"}])
    problems = checks._no_fork(SimpleNamespace(outputs=outputs), "key", [{"id": "a"}])
    assert problems == [
        "1 transactions of this key outside the asset's history",
        "2 unspent outputs (a fork or a lost head)",
    ]


def test_window_relayed_twice_or_never_is_reported():
    """Two relay rows or none for a window, a row not final, a final row without a final transaction."""
    relays = [
        SimpleNamespace(window_id=1, status="final", transaction_id=7, last_error=None),
        SimpleNamespace(window_id=1, status="final", transaction_id=8, last_error=None),
        SimpleNamespace(window_id=3, status="pending", transaction_id=None, last_error="ConnectionError"),
    ]
    assert checks._relay_row_problems([1, 2, 3], relays, final_txs={7}) == [
        "window 1 has 2 relay rows",
        "window 2 has 0 relay rows",
        "relay of window 3 is pending (ConnectionError)",
        "relay of window 1 without a final transaction",
    ]


def test_interval_recorded_twice_missing_or_stray_is_reported():
    """On chain: an interval recorded twice, one never recorded, one for no window, and conflicts."""
    expected = {(b"m", 0): "window 1", (b"m", 900): "window 2"}
    recorded = Counter({(b"m", 0): 2, (b"x", 0): 1})
    assert checks._record_problems(expected, recorded, conflicts=1) == [
        "window 1: 2 IntervalRecorded events",
        "window 2: 0 IntervalRecorded events",
        "1 IntervalRecorded events for no stored window",
        "1 RecordConflict events",
    ]


def test_unstored_acknowledged_reading_is_reported(store):
    """An acknowledged reading the store does not hold is listed as missing."""
    ghost = ("urn:ngsi-ld:SMX:GHOST", datetime(2026, 1, 1, tzinfo=UTC))
    assert checks.missing_readings(store, [ghost]) == [ghost]
    assert checks.drained(store)
    # The end-of-test check every fault test uses reports it too (no meters: no chain to check).
    assert checks.kept_problems(store, [ghost], client=None) == [f"acknowledged reading not stored: {ghost}"]
