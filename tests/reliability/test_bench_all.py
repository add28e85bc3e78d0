"""bench/all.py reads each benchmark's figures from its report and reports failed benchmarks as failed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import all as bench_all

INGEST = """| scenario | notifications/s | readings/s | ack p50 | ack p99 | failed |
|---|---|---|---|---|---|
| single-entity normalized, as fast as taken | 680.3 | 680.3 | 44.05 ms | 94.16 ms | 0 |
| legacy, 100 entities each | 68.7 | 6869.2 | 104.36 ms | 253.24 ms | 0 |
| fixed 1,000 notifications/s | 509.2 | 509.2 | 5787.71 ms | 7700.15 ms | 0 |
"""
GAS = """| meters per batch | odd ids | steady per meter-interval | steady + access list |
|---:|---:|---:|---:|
| 1 | 0 | **48,000** | 50,000 |
| 100 | 50 | **23,946** | 23,800 |
"""


def fake_run(reports: dict[str, str], failing: set[str]):
    """A run function that writes canned reports instead of running the benchmarks."""

    def run(step: bench_all.Step, quick: bool, report_dir: Path) -> bench_all.Outcome:
        outcome = bench_all.Outcome(step, bench_all.command_of(step, quick, report_dir))
        outcome.code = 1 if step.name in failing else 0
        outcome.report = reports.get(step.name, "")
        if step.name == "ledger_writer" and not outcome.code:
            outcome.stdout = json.dumps({"meters": 2000, "transfers_wall_s": 100.0, "transfers_per_s": 20.0})
        return outcome

    return run


def test_figures_come_from_the_reports_and_failures_show(tmp_path):
    """Figures are read from each report; a failed benchmark is marked, the exit code is 1."""
    out = tmp_path / "side_by_side.md"
    run = fake_run({"ingest": INGEST, "gas": GAS}, failing={"query"})
    assert (
        bench_all.main(["--quick", "--only", "ingest,gas,ledger_writer,query", "--out", str(out)], run) == 1
    )
    text = out.read_text()
    assert "| 680/s | QuantumLeap ~100 notifications/s" in text
    assert "| 6,869/s |" in text and "5787.71 ms / 7700.15 ms" in text
    assert "| 23,946 | seed 004: 137,131 gas per reading |" in text
    assert "| 2 block(s), about 24 s |" in text  # 2,000 x 23,946 gas in 30 M gas blocks
    assert "| 20.0 /s (100.0 s for all) |" in text and "| 100 s |" in text
    assert "FAILED (exit 1)" in text and "dev ledger" not in text  # not selected, so not shown


def test_unknown_benchmark_is_refused(capsys):
    """--only with a name that is not a benchmark stops with a usage error naming it."""
    with pytest.raises(SystemExit) as stopped:
        bench_all.main(["--only", "ingest,nosuch"])
    assert stopped.value.code == 2
    assert "unknown benchmark(s): nosuch" in capsys.readouterr().err


def test_rows_per_worker_count_are_all_shown():
    """An ingest report with a row per worker count shows each figure with its worker count."""
    report = """| scenario | workers | notifications/s |
|---|---|---|
| single-entity normalized | 1 | 1385.7 |
| single-entity normalized | 2 | 2083.6 |
"""
    shown = bench_all.per_workers(
        report, ("single-entity",), lambda r: bench_all._unit(bench_all.column(r, "notifications/s"), "/s")
    )
    assert shown == "1,386/s (1 worker); 2,084/s (2 workers)"
