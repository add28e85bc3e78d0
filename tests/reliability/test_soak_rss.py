"""bench/soak.py's memory figures: every connector process found by role, and each one's maximum and slope."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from bench.soak import process_roles, rss_by_role, rss_summary, slope


@pytest.mark.parametrize(
    ("points", "expected"),
    [
        ([(0.0, 100.0), (60.0, 100.0), (120.0, 100.0)], 0.0),
        ([(0.0, 100.0), (60.0, 110.0), (120.0, 120.0)], 1 / 6),
        ([(0.0, 100.0), (30.0, 104.0), (60.0, 104.0), (90.0, 100.0)], 0.0),
        ([(10.0, 50.0)], 0.0),
        ([], 0.0),
    ],
)
def test_slope_is_the_least_squares_fit(points, expected):
    """A flat series has slope 0, a steady rise its rate per second, one point or none 0."""
    assert slope(points) == pytest.approx(expected)


def test_summary_takes_each_process_max_and_its_later_half_slope():
    """Max, first and last per role; the slope (MiB/min) only from the later half, so the start-up rise
    of the first samples does not count as growth."""
    samples = [
        (0.0, {"http": 50.0, "ledger": 20.0}),
        (60.0, {"http": 110.0, "ledger": 140.0}),
        (120.0, {"http": 110.0, "ledger": 150.0}),
        (180.0, {"http": 110.0, "ledger": 160.0}),
        (240.0, {"http": 110.0}),  # the ledger process was being restarted
    ]
    summary = rss_summary(samples)
    assert summary["http"] == {
        "first_mb": 50.0,
        "last_mb": 110.0,
        "max_mb": 110.0,
        "slope_mb_per_min_later_half": 0.0,
    }
    assert summary["ledger"]["max_mb"] == 160.0
    assert summary["ledger"]["slope_mb_per_min_later_half"] == 10.0  # samples at 120 s and 180 s


def test_roles_find_the_ledger_process_and_http_workers_through_proc():
    """Children carrying `--primary-pid` of the primary are found: `--role ledger` as the ledger
    process, the others as more HTTP workers; each one's RSS is read."""
    me = str(os.getpid())
    sleep = [sys.executable, "-c", "import time; time.sleep(60)"]
    kids = [
        subprocess.Popen([*sleep, "--role", "ledger", "--primary-pid", me]),
        subprocess.Popen([*sleep, "--worker-fd", "5", "--primary-pid", me]),
        subprocess.Popen([*sleep, "--primary-pid", "1"]),  # another connector's child
    ]
    try:
        deadline = time.monotonic() + 30
        while len(process_roles(os.getpid())) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)  # until the children have exec'd their command lines
        assert process_roles(os.getpid()) == {
            "http": os.getpid(),
            "ledger": kids[0].pid,
            "http-1": kids[1].pid,
        }
        rss = rss_by_role(os.getpid())
        assert set(rss) == {"http", "ledger", "http-1", "http:anon", "ledger:anon", "http-1:anon"}
        assert all(rss[role] >= rss[f"{role}:anon"] > 1 for role in ("http", "ledger", "http-1"))
    finally:
        for kid in kids:
            kid.kill()
            kid.wait()
