"""`make demo`: the whole flow end to end on embedded defaults, with compressed time.

Starts the dev ledger, anvil and the connector in this process (anvil as a child process), deploys the
settlement contract, uploads a BRP plan, simulates about 20 meters over several 1-minute windows, waits until
every window is anchored on the dev ledger and relayed to Ethereum, verifies the off-chain readings, then
prints what happened. Time runs `speedup` times faster for the simulator AND the connector (one scaled
clock), so windows close exactly as they would in production, only sooner.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import requests
from sqlalchemy import func, select

from connector.core.windows import window_start
from connector.service import Connector, configure_logging
from connector.settings import Settings, load_settings
from connector.store.models import LedgerOutbox, Meter, Window
from demo.simulator import SimulationConfig, simulate


class ScaledClock:
    """A clock that starts at `start` and runs `speedup` times faster than the wall clock."""

    def __init__(self, start: datetime, speedup: float) -> None:
        self.start, self.speedup, self._t0 = start, speedup, time.monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.monotonic() - self._t0) * self.speedup)


@dataclass
class DemoOptions:
    meters: int = 20
    windows: int = 5  # complete windows of simulated readings
    window_length: int = 60  # seconds (simulated)
    reading_interval: int = 10  # simulated seconds between two readings of a meter
    speedup: float = 10.0
    state_dir: str = "var/demo"
    ethereum: bool = True
    timeout: float = 150.0  # wall seconds to wait for anchoring and relaying
    out: TextIO = field(default_factory=lambda: sys.stdout)


class Progress:
    """Numbered steps and a live counter line for a person watching the terminal."""

    def __init__(self, out: TextIO, steps: int) -> None:
        self.out, self.steps, self.n, self.t0 = out, steps, 0, time.monotonic()

    def step(self, text: str) -> None:
        self.n += 1
        self.out.write(f"\n[{self.n}/{self.steps}] {text}\n")
        self.out.flush()

    def line(self, text: str) -> None:
        self.out.write(f"      {text}\n")
        self.out.flush()

    def wait(self, what: str, done: Callable[[], tuple[int, int]], timeout: float) -> bool:
        """Show `what: x/y` until x == y or the timeout passes; True when done."""
        deadline = time.monotonic() + timeout
        x, y = done()
        while time.monotonic() < deadline:
            x, y = done()
            self.out.write(f"\r      {what}: {x}/{y}   ")
            self.out.flush()
            if y and x >= y:
                self.out.write("\n")
                return True
            time.sleep(0.5)
        self.out.write(f"\n      timed out waiting: {what} {x}/{y}\n")
        return False


def demo_settings(opts: DemoOptions, base: Settings | None = None) -> Settings:
    """Embedded defaults in a fresh state folder, with 1-minute windows and quick background jobs."""
    state = Path(opts.state_dir).resolve()
    overrides: dict[str, Any] = {
        "state_dir": str(state),
        "listen": "127.0.0.1:0",
        "store.url": f"sqlite:///{state}/connector.sqlite3",
        "keystore.path": str(state / "keystore"),
        "ledger.embedded": True,
        "ledger.urls": [],
        "ledger.embedded_data": str(state / "devledger"),
        "ledger.embedded_port": 0,
        "ledger.embedded_ws_port": 0,
        "ledger.dispatch_interval": 0.3,
        "window.length": opts.window_length,
        "window.grace": 5,
        "window.close_interval": 0.3,
        "logging.level": "WARNING",
        "logging.json": False,
    }
    return load_settings(overrides=overrides) if base is None else base


def run_demo(opts: DemoOptions) -> int:
    """Run the demo; return 0 when every window was anchored (and relayed) and verification passed."""
    shutil.rmtree(opts.state_dir, ignore_errors=True)
    settings = demo_settings(opts)
    configure_logging(settings)
    logging.getLogger("apscheduler").setLevel(logging.ERROR)  # "run skipped" notes are noise in a demo
    steps = 7 if opts.ethereum else 4
    progress = Progress(opts.out, steps)
    start = datetime.now(UTC).replace(second=0, microsecond=0)
    clock = ScaledClock(start, opts.speedup)
    progress.out.write(
        f"smartmeter-connector demo: {opts.meters} meters, {opts.windows} windows of {opts.window_length} s, "
        f"time x{opts.speedup:g}\n"
    )
    eth = None
    if opts.ethereum:
        progress.step("Starting anvil and deploying the settlement contract")
        eth = _start_ethereum(settings, clock, progress)
        settings = eth.settings
    progress.step("Starting the dev ledger and the connector (embedded defaults)")
    connector = Connector(settings, clock.now).start()
    try:
        progress.line(f"connector {connector.url}   dev ledger {connector.services.ledger_urls[0]}")
        # The simulation starts on the next window boundary, so it fills exactly opts.windows windows.
        first = window_start(clock.now() + timedelta(seconds=20 * opts.speedup), opts.window_length)
        first += timedelta(seconds=opts.window_length)
        if eth is not None:
            progress.step("Uploading the BRP's plan (planned Wh per meter per interval)")
            entity_ids = [f"urn:ngsi-ld:SMX:SIM{i + 1:05d}" for i in range(opts.meters)]
            progress.line(
                eth.upload_plan(
                    connector.store, entity_ids, first, opts.windows, opts.window_length, clock.now()
                )
            )
        time.sleep(max(0.0, (first - clock.now()).total_seconds() / opts.speedup))
        sim = _simulate(connector, opts, first, clock, progress)
        anchored = _wait_anchored(connector, opts, progress)
        relayed = _wait_relayed(connector, eth, opts, progress) if eth else True
        verdict = _verify(connector, progress)
        _summary(connector, eth, sim, progress)
    finally:
        connector.stop()
        if eth is not None:
            eth.stop()
    ok = anchored and relayed and verdict == "ok"
    progress.out.write(
        f"\nDemo {'finished: everything anchored and verified' if ok else 'FAILED'} "
        f"in {time.monotonic() - progress.t0:.0f} s. State kept in {opts.state_dir}/\n"
    )
    return 0 if ok else 1


def _simulate(
    connector: Any, opts: DemoOptions, first: datetime, clock: ScaledClock, progress: Progress
) -> Any:
    rounds = opts.windows * opts.window_length // opts.reading_interval
    progress.step(f"Simulating {opts.meters} smart meters sending to /notify ({rounds} readings each)")
    config = SimulationConfig(
        target=f"{connector.url}/notify",
        meters=opts.meters,
        interval=opts.reading_interval,
        format="normalized",
        rounds=rounds,
        start=first,
        speedup=opts.speedup,
        concurrency=4,
        seed=2019,
    )
    report = simulate(config, clock=clock.now)
    codes = ", ".join(f"{k}: {v}" for k, v in sorted(report.status_counts.items()))
    progress.line(f"sent {report.notifications} notifications, {report.readings} readings (HTTP {codes})")
    return report


def _outbox_counts(connector: Any) -> tuple[int, int]:
    with connector.store.reading() as conn:
        rows = dict(
            conn.execute(select(LedgerOutbox.status, func.count()).group_by(LedgerOutbox.status)).all()
        )
    return rows.get("confirmed", 0), sum(rows.values())


def _wait_anchored(connector: Any, opts: DemoOptions, progress: Progress) -> bool:
    progress.step("Closing windows and anchoring them on BigchainDB (CREATE per meter, TRANSFER per window)")
    expected_windows = opts.meters * opts.windows

    def closed() -> tuple[int, int]:
        with connector.store.reading() as conn:
            return conn.execute(select(func.count()).select_from(Window)).scalar_one(), expected_windows

    progress.wait("windows closed", closed, opts.timeout / 2)
    return progress.wait("ledger transactions confirmed", lambda: _outbox_counts(connector), opts.timeout)


def _verify(connector: Any, progress: Progress) -> str:
    progress.step("Verifying every meter's off-chain readings against the fingerprints on the ledger")
    with connector.store.reading() as conn:
        meters = conn.execute(select(Meter.entity_id).order_by(Meter.entity_id)).scalars().all()
    bad = 0
    for entity_id in meters:
        answer = requests.get(f"{connector.url}/v1/meters/{entity_id}/verify", timeout=30).json()
        if answer.get("verdict") != "ok":
            bad += 1
            progress.line(f"{entity_id}: {answer.get('verdict')} {answer.get('counts')}")
    progress.line(f"{len(meters) - bad}/{len(meters)} meters verified ok")
    return "ok" if bad == 0 and meters else "failed"


def _start_ethereum(settings: Settings, clock: ScaledClock, progress: Progress) -> Any:
    from demo.ethereum import DemoEthereum

    eth = DemoEthereum.start(settings, clock.now())
    progress.line(f"anvil {eth.rpc_url}   contract {eth.address}")
    return eth


def _wait_relayed(connector: Any, eth: Any, opts: DemoOptions, progress: Progress) -> bool:
    progress.step("Relaying window summaries to Ethereum and settling imbalances")
    expected = opts.meters * opts.windows
    return progress.wait(
        "windows relayed, final and settled",
        lambda: eth.relay_counts(connector.store, expected),
        opts.timeout,
    )


def _summary(connector: Any, eth: Any, sim: Any, progress: Progress) -> None:
    out = progress.out
    with connector.store.reading() as conn:
        meters = conn.execute(
            select(Meter.id, Meter.entity_id, Meter.asset_id).order_by(Meter.entity_id)
        ).all()
        windows = conn.execute(
            select(Meter.entity_id, Window.start, Window.reading_count, Window.energy_wh, LedgerOutbox.tx_id)
            .join(Meter, Meter.id == Window.meter_id)
            .join(LedgerOutbox, LedgerOutbox.window_id == Window.id)
            .order_by(Meter.entity_id, Window.start)
        ).all()
    out.write("\n=== Meters and their BigchainDB assets ===\n")
    out.write(f"{'meter':<28} {'asset id (CREATE tx)':<66}\n")
    for m in meters:
        out.write(f"{m.entity_id:<28} {m.asset_id or '(not yet)':<66}\n")
    out.write(f"\n=== Windows anchored ({len(windows)}; first 12 shown) ===\n")
    out.write(f"{'meter':<28} {'window start (UTC)':<20} {'readings':>8} {'energy Wh':>12}  TRANSFER tx\n")
    for w in windows[:12]:
        start = w.start.strftime("%Y-%m-%d %H:%M")
        out.write(f"{w.entity_id:<28} {start:<20} {w.reading_count:>8} {w.energy_wh or '-':>12}  {w.tx_id}\n")
    if eth is not None:
        out.write(f"\n=== Settlement on Ethereum (contract {eth.address}) ===\n")
        out.write(eth.settlement_table(connector.store, limit=15))
