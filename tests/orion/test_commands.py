"""`smartmeter-connector subscribe` and `simulate` from the command line (in-process)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connector.cli import main

from .conftest import NOTIFY_URL
from .receiver import Receiver, ServedReceiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A fresh receiver on 127.0.0.1."""
    served = ServedReceiver()
    yield served.receiver
    served.stop()


def test_subscribe_creates_then_reports_unchanged(orion, monkeypatch, capsys):
    """`subscribe` prints what it did; the second run says unchanged and writes nothing."""
    monkeypatch.setenv("CONNECTOR_ORION_URL", orion.url)
    monkeypatch.setenv("CONNECTOR_ORION_NOTIFY_URL", NOTIFY_URL)
    monkeypatch.setenv("CONNECTOR_ORION_TENANTS", "[tk]")
    assert main(["subscribe"]) == 0
    assert "tenant 'tk' /# SMX: created" in capsys.readouterr().out
    writes = len(orion.writes())
    assert main(["subscribe", "--check"]) == 0
    out = capsys.readouterr().out
    assert "SMX: unchanged" in out and ": active, sent 0" in out
    assert len(orion.writes()) == writes


def test_subscribe_without_orion_url_says_so(monkeypatch, capsys):
    """Without CONNECTOR_ORION_URL, `subscribe` exits 2 naming the setting."""
    monkeypatch.delenv("CONNECTOR_ORION_URL", raising=False)
    assert main(["subscribe"]) == 2
    assert "CONNECTOR_ORION_URL" in capsys.readouterr().err


def test_subscribe_reports_an_unreachable_orion(monkeypatch, capsys):
    """An unreachable Orion gives exit 1 and a one-line reason, not a traceback."""
    monkeypatch.setenv("CONNECTOR_ORION_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("CONNECTOR_ORION_NOTIFY_URL", NOTIFY_URL)
    assert main(["subscribe"]) == 1
    assert "subscribe failed: Orion at http://127.0.0.1:9" in capsys.readouterr().err


def test_subscribe_reports_the_tenants_it_did_and_the_one_that_failed(orion, monkeypatch, capsys):
    """One tenant failing: `subscribe` still creates the others' subscriptions, prints them, names the
    failed tenant and exits 1."""
    monkeypatch.setenv("CONNECTOR_ORION_URL", orion.url)
    monkeypatch.setenv("CONNECTOR_ORION_NOTIFY_URL", NOTIFY_URL)
    monkeypatch.setenv("CONNECTOR_ORION_TENANTS", "[bad, tk]")
    orion.fail_next[:] = [400]  # the first request, bad's listing, is refused
    assert main(["subscribe"]) == 1
    captured = capsys.readouterr()
    assert "tenant 'tk' /# SMX: created" in captured.out
    assert "tenant 'bad' failed: Orion refused GET /v2/subscriptions: 400" in captured.err
    assert len(orion.all("tk")) == 1


def test_simulate_sends_and_prints_a_summary(receiver, capsys):
    """`simulate` sends meters x rounds notifications and prints the counts."""
    argv = ["simulate", "--target", receiver.url + "/notify", "--meters", "3", "--rounds", "2"]
    argv += ["--speedup", "0", "--seed", "1", "--start", "2026-06-15T10:00:00Z", "--tenant", "tk"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "notifications sent: 6, readings: 6" in captured.out
    assert "HTTP status: 204: 6" in captured.out
    assert "round 2" in captured.err  # progress line
    assert len(receiver.got) == 6


def test_simulate_refuses_bad_options(capsys):
    """A bad --format exits 2 with the option named."""
    assert main(["simulate", "--target", "http://127.0.0.1:9/n", "--format", "values", "--rounds", "1"]) == 2
    assert "--format" in capsys.readouterr().err
