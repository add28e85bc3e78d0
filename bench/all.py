"""Every benchmark in one run, side by side with the seeds and QuantumLeap: docs/benchmarks/side_by_side.md.

    python -m bench.all [--quick] [--only ingest,gas] [--out FILE]

Runs the ingest, dev ledger, ledger writer, query and gas benchmarks one after the other, each as its own
command (`python -m bench.<name> ...`, exactly as a person would), so they never share the CPU with each
other. Each full benchmark writes its own report under docs/benchmarks/ as usual; this command then reads
the figures from those reports (or the ledger writer's JSON line) and writes one table of our figures next
to the seeds' (seed 004: 50,000 tx/s into a queue, 2 ms response, a 9-minute minimum on-chain interval for
2,000 prosumers; 137,131 gas per reading) and QuantumLeap's ~100 notifications/s, with the load average
and the CPU time of every step. A benchmark that fails is reported as failed and the others still run.

--quick runs short versions (about two minutes in all) and keeps their reports in a temporary folder, so
docs/benchmarks/ is left alone; it checks the harness, its figures are not for publishing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks"
PROSUMERS = 2000  # seed 004's scale
BLOCK_GAS, BLOCK_SECONDS = 30_000_000, 12  # Ethereum mainnet: gas limit per block, slot time


@dataclass(frozen=True)
class Step:
    """One benchmark command; `report` is the option naming its report file (None: figures on stdout)."""

    name: str
    module: str
    args: tuple[str, ...]
    quick: tuple[str, ...]
    report: tuple[str, str] | None  # (option, file name under docs/benchmarks)


STEPS = (
    Step("ingest", "bench.ingest_bench", (), ("--seconds", "3"), ("--out", "ingest.md")),
    Step(
        "devledger", "bench.devledger_bench", (), ("--quick", "--preload", "2000"), ("--out", "devledger.md")
    ),
    Step(
        "ledger_writer", "bench.ledger_writer_bench", ("--meters", str(PROSUMERS)), ("--meters", "100"), None
    ),
    Step("query", "bench.query_bench", (), ("--days", "7", "--runs", "3"), ("--report", "query.md")),
    Step("gas", "bench.gas_bench", (), (), ("--out", "gas.md")),
)


@dataclass
class Outcome:
    """What one step did: its command line, exit code, output, report text and costs."""

    step: Step
    command: list[str]
    code: int = 0
    stdout: str = ""
    report: str = ""
    wall_s: float = 0.0
    cpu_s: float = 0.0
    load: tuple[float, float] = (0.0, 0.0)
    extra: dict[str, Any] = field(default_factory=dict)


def command_of(step: Step, quick: bool, report_dir: Path) -> list[str]:
    """The command line of `step`: full or quick arguments, report written into `report_dir`."""
    argv = [sys.executable, "-m", step.module, *(step.quick if quick else step.args)]
    if step.report:
        argv += [step.report[0], str(report_dir / step.report[1])]
    return argv


def run_step(step: Step, quick: bool, report_dir: Path) -> Outcome:
    """Run one benchmark to completion; never raises for a failing benchmark (its exit code is kept)."""
    outcome = Outcome(step, command_of(step, quick, report_dir))
    print(f"[all] {step.name}: {' '.join(outcome.command[1:])}", file=sys.stderr, flush=True)
    before_load, before_cpu = os.getloadavg()[0], _children_cpu()
    started = time.perf_counter()
    done = subprocess.run(outcome.command, cwd=ROOT, capture_output=True, text=True, check=False)
    outcome.wall_s = time.perf_counter() - started
    outcome.cpu_s = _children_cpu() - before_cpu
    outcome.load = (before_load, os.getloadavg()[0])
    outcome.code, outcome.stdout = done.returncode, done.stdout
    if done.returncode != 0:
        print(done.stderr[-2000:], file=sys.stderr)
    if step.report and (report_dir / step.report[1]).exists():
        outcome.report = (report_dir / step.report[1]).read_text()
    return outcome


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# ----- reading figures out of the reports -----


def md_tables(text: str) -> list[list[dict[str, str]]]:
    """Every Markdown table in `text` as a list of rows keyed by header cell."""
    tables, lines = [], text.splitlines()
    for i in range(len(lines) - 1):
        if lines[i].startswith("|") and re.match(r"^\|[\s:|-]+\|$", lines[i + 1].strip()):
            header = _cells(lines[i])
            rows = []
            for line in lines[i + 2 :]:
                if not line.startswith("|"):
                    break
                rows.append(dict(zip(header, _cells(line), strict=False)))
            tables.append(rows)
    return tables


def _cells(line: str) -> list[str]:
    return [c.strip().strip("*").strip() for c in line.strip().strip("|").split("|")]


def cell(text: str, row_starts: str, column_has: str) -> str | None:
    """The cell of the first row whose first cell starts with `row_starts`, in the first column whose
    header contains `column_has` (case-insensitive); None when there is no such cell."""
    for table in md_tables(text):
        for row in table:
            first = next(iter(row.values()), "")
            if not first.lower().startswith(row_starts.lower()):
                continue
            for header, value in row.items():
                if column_has.lower() in header.lower():
                    return value
    return None


def per_workers(
    text: str, row_starts: tuple[str, ...], show: Callable[[dict[str, str]], str | None]
) -> str | None:
    """`show(row)` for every row whose first cell starts with one of `row_starts`, labelled with its
    `workers` cell when the table has one, joined by "; " (the ingest report has a row per worker count)."""
    shown = []
    for table in md_tables(text):
        for row in table:
            if not next(iter(row.values()), "").lower().startswith(row_starts):
                continue
            value = show(row)
            if value is not None:
                workers = row.get("workers")
                shown.append(
                    f"{value} ({workers} worker{'s' if workers != '1' else ''})" if workers else value
                )
    return "; ".join(shown) or None


def column(row: dict[str, str], has: str) -> str | None:
    """The row's cell in the first column whose header contains `has` (case-insensitive)."""
    return next((v for h, v in row.items() if has.lower() in h.lower()), None)


def number(value: str | None) -> float | None:
    """The first number in `value` (commas allowed), or None."""
    found = re.search(r"-?[\d,]*\.?\d+", value or "")
    return float(found.group().replace(",", "")) if found else None


def last_json(stdout: str) -> dict[str, Any]:
    """The last JSON object printed (one line or indented); {} when there is none."""
    start = stdout.rfind("\n{")
    text = stdout[start + 1 :] if start >= 0 else stdout[stdout.find("{") :]
    try:
        return dict(json.loads(text))
    except (ValueError, TypeError):
        return {}


def best_concurrent(report: str) -> str | None:
    """The best "concurrent" tx/s row of the dev ledger report, with its name."""
    found: list[tuple[float, str]] = []
    for table in md_tables(report):
        for row in table:
            name, *values = row.values()
            if "concurrent" not in name.lower():
                continue
            rates = [number(v) for v in values if "tx/s" in v and "per core" not in v]
            found += [(rate, name) for rate in rates if rate is not None]
    if not found:
        return None
    rate, name = max(found)
    return f"{rate:,.0f} tx/s ({name})"


# ----- the side-by-side table -----

Row = tuple[str, str | None, str, str]  # measure, our figure, seeds and peers, step


def figures(by_name: dict[str, Outcome]) -> list[Row]:
    """Our figures next to the seeds' and QuantumLeap's."""
    ingest = by_name["ingest"].report if "ingest" in by_name else ""
    writer = last_json(by_name["ledger_writer"].stdout) if "ledger_writer" in by_name else {}
    gas = _gas(by_name["gas"].report) if "gas" in by_name else None
    query = by_name["query"].report if "query" in by_name else ""
    ledger = by_name["devledger"].report if "devledger" in by_name else ""
    per_s = writer.get("transfers_per_s")
    return [
        (
            "ingest: single-entity notifications/s, each committed before its 200",
            per_workers(ingest, ("single-entity",), lambda r: _unit(column(r, "notifications/s"), "/s")),
            "QuantumLeap ~100 notifications/s; seed 004: 50,000 tx/s into a RabbitMQ queue (not committed)",
            "ingest",
        ),
        (
            "ingest: readings/s in 100-entity notifications",
            per_workers(ingest, ("legacy",), lambda r: _unit(column(r, "readings/s"), "/s")),
            "seed 004: 50,000 tx/s queue ingest",
            "ingest",
        ),
        (
            "acknowledgement latency p50 / p99 at about 1,000 notifications/s offered",
            per_workers(ingest, ("fixed", "paced"), lambda r: _pair(column(r, "p50"), column(r, "p99"))),
            "seed 004: 2 ms response",
            "ingest",
        ),
        (
            f"windows anchored per second ({writer.get('meters', PROSUMERS):,} meters closing one window)",
            None if per_s is None else f"{per_s:,.1f} /s ({writer.get('transfers_wall_s')} s for all)",
            "",
            "ledger_writer",
        ),
        (
            f"{PROSUMERS:,} prosumers: one window anchored on BigchainDB",
            None if not per_s else f"{PROSUMERS / per_s:,.0f} s",
            "seed 004: 9-minute minimum on-chain interval for 2,000 prosumers",
            "ledger_writer",
        ),
        (
            f"{PROSUMERS:,} prosumers: one interval relayed to Ethereum (30 M gas blocks every 12 s)",
            _relay_time(gas),
            "seed 004: 9-minute minimum on-chain interval for 2,000 prosumers",
            "gas",
        ),
        (
            "dev ledger: committed tx/s",
            best_concurrent(ledger),
            "BigchainDB 2.x: 300-1,000 tx/s (BEP-23)",
            "devledger",
        ),
        (
            "history query, page of 1,000 windows (first row of the query report), p95",
            _unit(cell(query, "history page", "p95"), " ms"),
            "seed 004: 2 ms response",
            "query",
        ),
        (
            "gas per meter-interval, batches of 100 meters",
            None if gas is None else f"{gas:,.0f}",
            "seed 004: 137,131 gas per reading",
            "gas",
        ),
    ]


def _gas(report: str) -> float | None:
    return number(cell(report, "100", "per meter-interval"))


def _relay_time(gas: float | None) -> str | None:
    if not gas:
        return None
    blocks = math.ceil(PROSUMERS * gas / BLOCK_GAS)
    return f"{blocks} block(s), about {blocks * BLOCK_SECONDS} s"


def _unit(value: str | None, unit: str) -> str | None:
    n = number(value)
    return None if n is None else f"{n:,.1f}{unit}" if n < 100 else f"{n:,.0f}{unit}"


def _pair(a: str | None, b: str | None) -> str | None:
    return None if a is None or b is None else f"{a} / {b}"


def render(outcomes: list[Outcome], quick: bool, command: str) -> str:
    """docs/benchmarks/side_by_side.md."""
    by_name = {o.step.name: o for o in outcomes}
    rows = [
        f"| {measure} | {ours or _missing(by_name.get(step))} | {theirs} | {step} |"
        for measure, ours, theirs, step in figures(by_name)
        if step in by_name
    ]
    steps = [
        f"| {o.step.name} | `python -m {' '.join(_short(o.command[2:]))}` | {o.wall_s:.0f} | {o.cpu_s:.0f} | "
        f"{o.load[0]:.2f} -> {o.load[1]:.2f} | {'ok' if o.code == 0 else f'FAILED (exit {o.code})'} |"
        for o in outcomes
    ]
    kind = "a QUICK run: short versions, figures not for publishing" if quick else "full run"
    return "\n".join(
        [
            "# Benchmarks side by side",
            "",
            f"Command: `{command}` ({kind}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
            "written by the command itself). Each benchmark ran alone, one after the other; each one's own "
            "report under docs/benchmarks/ gives its conditions.",
            "",
            "| measure | this project | seeds and peers | benchmark |",
            "|---|---|---|---|",
            *rows,
            "",
            "How the derived rows are computed: a window of 2,000 prosumers anchored on BigchainDB takes "
            "2,000 / (windows anchored per second); relayed to Ethereum it needs "
            "ceil(2,000 x gas per meter-interval / 30,000,000) blocks of 12 s. The seed's 9 minutes is the "
            "shortest interval at which its one-transaction-per-reading design keeps up with 2,000 "
            "prosumers.",
            "",
            "| benchmark | command | wall s | CPU s (its processes) | load average before -> after "
            "| result |",
            "|---|---|---:|---:|---|---|",
            *steps,
            "",
        ]
    )


def _short(argv: list[str]) -> list[str]:
    return [Path(a).name if a.startswith("/") else a for a in argv]


def _missing(outcome: Outcome | None) -> str:
    if outcome is None:
        return "not run"
    return f"FAILED (exit {outcome.code})" if outcome.code else "not found in its report"


def main(argv: list[str] | None = None, run: Callable[[Step, bool, Path], Outcome] = run_step) -> int:
    """Run the benchmarks, write the side-by-side report; exit 1 if any benchmark failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short versions, reports in a temporary folder")
    parser.add_argument(
        "--only", default="", help="comma-separated subset of: " + ",".join(s.name for s in STEPS)
    )
    parser.add_argument("--out", type=Path, default=DOCS / "side_by_side.md")
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or [s.name for s in STEPS]
    unknown = sorted(set(names) - {s.name for s in STEPS})
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    command = "python -m bench.all" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    with tempfile.TemporaryDirectory(prefix="bench-all-") as tmp:
        report_dir = Path(tmp) if args.quick else DOCS
        outcomes = [run(step, args.quick, report_dir) for step in STEPS if step.name in names]
        args.out.write_text(render(outcomes, args.quick, command))
    print(f"[all] wrote {args.out}", file=sys.stderr)
    return 1 if any(o.code for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
