"""`run --workers 2`: two processes share the port, both store notifications, /metrics counts them all."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from connector.store.db import open_store
from connector.store.models import Reading, Window
from tests.connector import payloads as p
from tests.connector.test_durability import free_port, start_connector, wait_gone, worker_pids


def accepted_per_process(metrics_dir: Path) -> dict[int, float]:
    """Notifications each process counted as accepted, read from its own multiprocess metrics file."""
    counts: dict[int, float] = {}
    for path in metrics_dir.glob("counter_*.db"):
        values = MmapedDict(str(path), read_mode=True)
        try:
            keys = [(json.loads(key), value) for key, value, _ in values.read_all_values()]
            counts[int(path.stem.split("_")[1])] = sum(
                value
                for (_, name, labels, _), value in keys
                if name == "connector_notifications_total" and labels.get("outcome") == "accepted"
            )
        finally:
            values.close()
    return counts


def send(url: str, first: int, count: int, acked: list[int]) -> None:
    """POST `count` notifications, each on a new connection so both processes get to accept some."""
    for i in range(first, first + count):
        when = f"2026-01-01T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z"
        headers = {**p.ORION_HEADERS, "Connection": "close"}
        resp = requests.post(url, data=p.normalized(f"urn:ngsi-ld:SMX:W{i % 5}", when, i), headers=headers)
        assert resp.status_code == 200, resp.text
        acked.append(i)


def metric(text: str, name: str, **labels: str) -> float:
    """One sample's value from a Prometheus text exposition."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    raise AssertionError(f"{name} {labels} not in /metrics")


# A guard against a hang, not a speed budget (the machine may be loaded).
HUNG = 120


def niceness(pid: int) -> int:
    """A process's nice value (its CPU priority: higher yields the CPU to lower)."""
    return os.getpriority(os.PRIO_PROCESS, pid)


def wait_for(condition: Callable[[], Any], what: str) -> Any:
    """Poll `condition` until it is truthy (and return it); fail only if it never becomes so (a hang)."""
    deadline = time.monotonic() + HUNG
    while not (found := condition()):
        assert time.monotonic() < deadline, f"{what}: not within {HUNG} s"
        time.sleep(0.1)
    return found


def test_two_workers_share_the_port_and_store_every_acknowledged_reading(store_url, tmp_path, monkeypatch):
    """Both processes answer notifications, every acknowledged reading is stored once, /metrics sums both."""
    # The readings are of 2026-01-01, so every window is closable at once: with the closer running every
    # 5 s a slow run closed windows mid-test and counted the later readings late. The closer is not what
    # this test is about, so it runs once a day here, whatever the machine's speed.
    monkeypatch.setenv("CONNECTOR_WINDOW_CLOSE_INTERVAL", "86400")
    port = free_port()
    proc = start_connector(store_url, port, tmp_path, workers=2)
    children = worker_pids(proc.pid)
    try:
        acked: list[int] = []
        senders = [
            threading.Thread(target=send, args=(f"http://127.0.0.1:{port}/notify", k * 1000, 150, acked))
            for k in range(4)
        ]
        for t in senders:
            t.start()
        for t in senders:
            t.join()
        assert len(acked) == 600
        per_process = accepted_per_process(tmp_path / "var" / "prometheus-multiproc")
        for role in ("ledger", "closer"):
            per_process.pop(worker_pids(proc.pid, ledger=True, role=role)[0], None)
        assert sorted(per_process) == sorted([proc.pid, *children])
        assert all(n > 0 for n in per_process.values()), per_process  # the ledger process serves no HTTP
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=HUNG).text
        assert metric(text, "connector_notifications_total", format="normalized", outcome="accepted") == 600
        assert metric(text, "connector_readings_total", outcome="accepted") == 600
        assert metric(text, "connector_ack_latency_seconds_count") == 600
        if store_url.startswith("sqlite"):  # each process's turns at SQLite's write lock, by role
            for role in ("http", "worker"):
                held = metric(text, "connector_store_write_hold_seconds_count", role=role)
                assert 0 < held <= 600, (role, held)  # a commit per group of notifications, at least one
        assert requests.get(f"http://127.0.0.1:{port}/health", timeout=HUNG).json()["status"] == "ok"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=HUNG) == 0
    assert wait_gone(children, seconds=HUNG) == []  # a clean stop stops the workers too
    store = open_store(store_url)
    with store.reading() as conn:
        assert conn.execute(select(func.count()).select_from(Reading)).scalar() == 600
    store.dispose()


def test_a_dead_worker_is_restarted(store_url, tmp_path):
    """A worker killed on its own is replaced by the primary, and the port keeps answering."""
    port = free_port()
    proc = start_connector(store_url, port, tmp_path, workers=2)
    try:
        (first,) = worker_pids(proc.pid)
        os.kill(first, signal.SIGKILL)
        assert wait_gone([first], seconds=HUNG) == []
        replaced = wait_for(lambda: worker_pids(proc.pid), "a replacement worker")
        assert replaced != [first]
        acked: list[int] = []
        send(f"http://127.0.0.1:{port}/notify", 5000, 20, acked)
        assert len(acked) == 20
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=HUNG)


def test_the_ledger_and_closer_processes_run_beside_http_and_are_restarted(store_url, tmp_path):
    """`run` starts a ledger process at a lower CPU priority and a closer process besides the HTTP one;
    each, killed, is replaced and /notify answers."""
    port = free_port()
    proc = start_connector(store_url, port, tmp_path, workers=1)
    replaced: list[int] = []
    try:
        assert worker_pids(proc.pid) == []
        for role in ("ledger", "closer"):
            running = lambda r=role: worker_pids(proc.pid, ledger=True, role=r)  # noqa: E731
            (first,) = wait_for(running, f"the {role} process")
            # server.ledger_nice (10): the ledger process yields the CPU to /notify's; server.closer_nice
            # (0): the closer's turns at the store's write lock are not preempted by the others
            lower = {"ledger": 10, "closer": 0}[role]
            priority = lambda p=first, n=lower: niceness(p) - niceness(proc.pid) == n  # noqa: E731
            wait_for(priority, f"the {role} process's priority")
            os.kill(first, signal.SIGKILL)
            assert wait_gone([first], seconds=HUNG) == []
            again = wait_for(running, f"a new {role} process")
            assert again != [first]
            replaced += again
            acked: list[int] = []
            send(f"http://127.0.0.1:{port}/notify", 7000 + len(replaced) * 100, 20, acked)
            assert len(acked) == 20
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=HUNG)
    assert wait_gone(replaced, seconds=HUNG) == []


def test_without_a_closer_process_the_ledger_process_closes_windows(store_url, tmp_path, monkeypatch):
    """`server.closer_process: false`: `run` starts no closer process, and the ledger process closes the
    windows (as before the closer had a process of its own)."""
    monkeypatch.setenv("CONNECTOR_SERVER_CLOSER_PROCESS", "false")
    port = free_port()
    proc = start_connector(store_url, port, tmp_path, workers=1)
    store = open_store(store_url)
    try:
        wait_for(lambda: worker_pids(proc.pid, ledger=True), "the ledger process")
        acked: list[int] = []
        send(f"http://127.0.0.1:{port}/notify", 9000, 5, acked)  # 2026-01-01: closable at once
        with_windows = lambda: store_count(store, Window) > 0  # noqa: E731
        wait_for(with_windows, "a window closed by the ledger process")
        assert worker_pids(proc.pid, ledger=True, role="closer") == []
    finally:
        store.dispose()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=HUNG)


def store_count(store: Any, model: Any) -> int:
    with store.reading() as conn:
        return int(conn.execute(select(func.count()).select_from(model)).scalar() or 0)


def test_run_refuses_a_bad_worker_count(capsys):
    """`run --workers 0` names the setting and exits 2 without starting anything."""
    from connector.cli import main

    assert main(["run", "--workers", "0"]) == 2
    assert "server.workers" in capsys.readouterr().err
