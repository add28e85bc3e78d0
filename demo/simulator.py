"""A fleet of simulated smart meters that notifies a receiver exactly as Orion would.

`simulate(config)` runs in-process (the demo and tests call it) and returns a `SimulationReport`; the
`smartmeter-connector simulate` command wraps it. Time can be compressed: readings are `interval` simulated
seconds apart, and the simulated clock runs `speedup` times faster than the wall clock (0 = no pacing,
send as fast as possible). What is sent is a pure function of the seed; only the order of concurrent
sends varies.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from demo import payloads, profiles
from demo.payloads import MeterSample

MANUFACTURERS = ("Smeter", "Landis+Gyr", "Iskraemeco", "Itron")


class SimulationError(ValueError):
    """The simulation's configuration is not usable; the message names the option."""


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate and where to send it (see `smartmeter-connector simulate --help`)."""

    target: str
    meters: int = 20
    interval: float = 60.0  # simulated seconds between two readings of one meter
    format: str = "normalized"
    duration: float | None = None  # wall-clock bound, seconds
    rounds: int | None = None  # bound on reading rounds (one reading per meter each)
    rate: float | None = None  # at most this many notifications per wall second
    concurrency: int = 1
    tenant: str = ""
    service_path: str = "/"
    start: datetime | None = None  # simulated clock at the first round; default: now, floored to interval
    speedup: float = 1.0  # simulated seconds per wall second; 0 = do not pace at all
    duplicates: float = 0.0  # probability that a notification is delivered twice
    late: float = 0.0  # probability that a reading is held back late_delay simulated seconds
    gaps: float = 0.0  # probability that a reading is never sent
    late_delay: float = 1200.0
    prosumers: float = 0.3  # share of meters with PV
    batch: int = 1  # legacy only: readings per notification
    entity_type: str = "SMX"
    seed: int | None = None
    timeout: float = 10.0
    site: profiles.Site = field(default_factory=profiles.Site)

    def validate(self) -> None:
        """Raise SimulationError naming the first unusable option."""
        checks = [
            (self.format in payloads.FORMATS, f"--format: one of {', '.join(payloads.FORMATS)}"),
            (self.target.startswith(("http://", "https://")), "--target: an http(s) URL"),
            (self.meters > 0, "--meters: at least 1"),
            (self.interval > 0, "--interval: positive seconds"),
            (self.speedup >= 0, "--speedup: 0 (no pacing) or positive"),
            (self.rate is None or self.rate > 0, "--rate: positive"),
            (self.concurrency >= 1, "--concurrency: at least 1"),
            (self.batch >= 1 and (self.batch == 1 or self.format == "legacy"), "--batch: >1 only for legacy"),
            (self.rounds is not None or self.duration is not None, "give --rounds or --duration"),
            (self.service_path.startswith("/"), "--servicepath: must start with /"),
            (self.start is None or self.start.tzinfo is not None, "--start: needs a UTC offset or Z"),
        ]
        for name in ("duplicates", "late", "gaps", "prosumers"):
            checks.append((0.0 <= getattr(self, name) <= 1.0, f"--{name}: a probability in [0, 1]"))
        for ok, message in checks:
            if not ok:
                raise SimulationError(message)


@dataclass
class SimulationReport:
    """What the simulator sent, counted as it went."""

    meters: list[str] = field(default_factory=list)
    prosumers: list[str] = field(default_factory=list)
    rounds: int = 0
    notifications: int = 0  # HTTP requests attempted
    readings: int = 0  # distinct readings answered 2xx (duplicates and gaps not counted)
    duplicates: int = 0  # injected: notifications sent a second time
    late: int = 0  # injected: readings sent late_delay simulated seconds after their time
    gaps: int = 0  # injected: readings never sent
    status_counts: Counter[int] = field(default_factory=Counter)
    failures: int = 0  # transport errors (refused, timeout)
    failure_reasons: Counter[str] = field(default_factory=Counter)
    sim_start: datetime | None = None
    sim_end: datetime | None = None
    elapsed: float = 0.0

    def progress_line(self) -> str:
        """One line for a progress display."""
        sim = self.sim_end.strftime("%Y-%m-%d %H:%M") if self.sim_end else "-"
        return (
            f"round {self.rounds} sim {sim} | {self.notifications} notifications, {self.readings} readings, "
            f"{self.failures} failures | {self.elapsed:.1f}s"
        )

    def summary(self) -> str:
        """A few lines a person can read at the end of a run."""
        codes = ", ".join(f"{code}: {n}" for code, n in sorted(self.status_counts.items())) or "none"
        lines = [
            f"meters: {len(self.meters)} ({len(self.prosumers)} with PV)",
            f"simulated time: {_iso(self.sim_start)} .. {_iso(self.sim_end)} in {self.rounds} rounds",
            f"notifications sent: {self.notifications}, readings: {self.readings}",
            f"injected: {self.duplicates} duplicates, {self.late} late, {self.gaps} gaps",
            f"HTTP status: {codes}; transport failures: {self.failures}",
            f"wall time: {self.elapsed:.1f}s",
        ]
        lines += [f"  failure: {reason} x{n}" for reason, n in self.failure_reasons.most_common(3)]
        return "\n".join(lines)


def _iso(when: datetime | None) -> str:
    return payloads.orion_time(when) if when else "-"


@dataclass
class Meter:
    """One simulated meter: who it is, what it consumes and generates, its energy register."""

    entity_id: str
    serial: str
    manufacturer: str
    annual_kwh: float
    pv_peak_kw: float  # 0 for a pure consumer
    register_kwh: float

    def sample(self, when: datetime, noise: float, config: SimulationConfig) -> MeterSample:
        """Read the meter at `when` and advance its import register by the interval that follows."""
        load = profiles.household_power_w(self.annual_kwh, when, config.site) * noise
        # Generator reference arrow, as in the seeds (seed 003's meter reads P = -84.891 W; seed 004 counts
        # consumption above plan as a negative imbalance): fed in is positive, drawn from the grid negative.
        power = profiles.pv_power_w(self.pv_peak_kw, when, config.site) - load
        reading = MeterSample(
            self.entity_id, config.entity_type, self.serial, self.manufacturer, when, power, self.register_kwh
        )
        self.register_kwh += max(-power, 0.0) * config.interval / 3_600_000  # the import register
        return reading


def build_fleet(config: SimulationConfig, rng: random.Random) -> list[Meter]:
    """`config.meters` meters with serials SIM00001.., consumption 2000-5500 kWh/a, PV 3-10 kWp on some."""
    fleet = []
    for i in range(config.meters):
        serial = f"SIM{i + 1:05d}"
        prosumer = rng.random() < config.prosumers
        fleet.append(
            Meter(
                entity_id=f"urn:ngsi-ld:{config.entity_type}:{serial}",
                serial=serial,
                manufacturer=MANUFACTURERS[i % len(MANUFACTURERS)],
                annual_kwh=rng.uniform(2000, 5500),
                pv_peak_kw=round(rng.uniform(3, 10), 1) if prosumer else 0.0,
                register_kwh=round(rng.uniform(1000, 20000), 3),
            )
        )
    return fleet


@dataclass(frozen=True)
class Outgoing:
    """One HTTP request to make: URL, headers, body, and what it carries for the report."""

    url: str
    headers: dict[str, str]
    body: dict[str, Any]
    readings: int
    duplicate: bool = False


class Planner:
    """Decides, round by round, which notifications go out (pure given the seed)."""

    def __init__(
        self, config: SimulationConfig, report: SimulationReport, last_round: datetime | None = None
    ) -> None:
        self.config = config
        self.report = report
        self.last_round = last_round
        self.rng = random.Random(config.seed)
        self.ids = random.Random(None if config.seed is None else config.seed + 1)
        self.fleet = build_fleet(config, self.rng)
        self.held: list[tuple[datetime, MeterSample]] = []  # late readings and when to release them
        ld = config.format == "ld"
        v2_id = self.ids.randbytes(12).hex()  # Orion's ids are MongoDB ObjectIds: 24 hex digits
        # Orion-LD's subscription ids: urn:ngsi-ld:subscription:<uuid> (what it puts in Location).
        self.subscription_id = f"urn:ngsi-ld:subscription:{self._uuid()}" if ld else v2_id
        report.meters = [m.entity_id for m in self.fleet]
        report.prosumers = [m.entity_id for m in self.fleet if m.pv_peak_kw > 0]

    def round(self, when: datetime) -> list[Outgoing]:
        """The notifications of the round observed at `when`, late readings now due included."""
        fresh: list[MeterSample] = []
        for meter in self.fleet:
            sample = meter.sample(when, self.rng.lognormvariate(-0.045, 0.3), self.config)
            roll = self.rng.random()
            if roll < self.config.gaps:
                self.report.gaps += 1
            elif roll < self.config.gaps + self.config.late and self._releasable(when):
                self.held.append((when + timedelta(seconds=self.config.late_delay), sample))
            else:
                fresh.append(sample)
        due = [s for release, s in self.held if release <= when]
        self.held = [(r, s) for r, s in self.held if r > when]
        return self._notifications(fresh, when) + self._notifications(due, when, late=True)

    def _releasable(self, when: datetime) -> bool:
        """Hold a reading back only if the run lasts long enough to release it (when that is known)."""
        last = self.last_round
        return last is None or when + timedelta(seconds=self.config.late_delay) <= last

    def flush(self, when: datetime) -> list[Outgoing]:
        """Late readings still held when the run ends: sent now, still counted as late."""
        due = [s for _, s in self.held]
        self.held = []
        return self._notifications(due, when, late=True)

    def _notifications(
        self, samples: list[MeterSample], when: datetime, late: bool = False
    ) -> list[Outgoing]:
        out = []
        for chunk in _chunks(samples, self.config.batch):
            one = self._outgoing(chunk, when, late)
            out.append(one)
            if self.rng.random() < self.config.duplicates:
                dup = self._outgoing(chunk, when, late)
                out.append(Outgoing(dup.url, dup.headers, one.body, 0, duplicate=True))
                self.report.duplicates += 1
        if late:
            self.report.late += len(samples)
        return out

    def _outgoing(self, chunk: list[MeterSample], when: datetime, late: bool) -> Outgoing:
        c = self.config
        body = payloads.notification_body(
            c.format, chunk, self.subscription_id, when, f"urn:ngsi-ld:Notification:{self._uuid()}"
        )
        headers = payloads.notification_headers(
            c.format, tenant=c.tenant, service_path=c.service_path, correlator=self._uuid()
        )
        url = payloads.notification_url(c.target, c.format, self.subscription_id)
        return Outgoing(url, headers, body, len(chunk))

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.ids.getrandbits(128), version=4))


def _chunks(items: list[MeterSample], size: int) -> Iterator[list[MeterSample]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class Sender:
    """Sends notifications over keep-alive sessions (one per worker thread), at most `rate` per second."""

    def __init__(self, config: SimulationConfig, report: SimulationReport, wall: Callable[[], float]) -> None:
        self.config = config
        self.report = report
        self.wall = wall
        self.lock = threading.Lock()
        self.local = threading.local()
        self.sessions: list[requests.Session] = []
        self.next_slot = wall()
        self.pool = ThreadPoolExecutor(config.concurrency) if config.concurrency > 1 else None

    def send_all(self, batch: list[Outgoing]) -> None:
        """Send a round's notifications and wait until all are answered."""
        if self.pool is None:
            for item in batch:
                self._send(item)
            return
        list(self.pool.map(self._send, batch))

    def close(self) -> None:
        """Stop the workers and close every session."""
        if self.pool is not None:
            self.pool.shutdown(wait=True)
        for session in self.sessions:
            session.close()

    def _session(self) -> requests.Session:
        session = getattr(self.local, "session", None)
        if session is None:
            session = self.local.session = requests.Session()
            with self.lock:
                self.sessions.append(session)
        return session

    def _throttle(self) -> None:
        if not self.config.rate:
            return
        with self.lock:
            slot = max(self.next_slot, self.wall())
            self.next_slot = slot + 1 / self.config.rate
        delay = slot - self.wall()
        if delay > 0:
            time.sleep(delay)

    def _send(self, item: Outgoing) -> None:
        self._throttle()
        status, reason = None, ""
        try:
            resp = self._session().post(
                item.url, data=_compact(item.body), headers=item.headers, timeout=self.config.timeout
            )
            status = resp.status_code
            resp.close()
        except requests.RequestException as exc:
            reason = type(exc).__name__
        with self.lock:
            r = self.report
            r.notifications += 1
            if status is None:
                r.failures += 1
                r.failure_reasons[reason] += 1
                return
            r.status_counts[status] += 1
            if 200 <= status < 300:
                r.readings += item.readings


def simulate(
    config: SimulationConfig,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    wall: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[SimulationReport], None] | None = None,
) -> SimulationReport:
    """Run the simulation to its bound (rounds or wall duration) and report what was sent."""
    config.validate()
    report = SimulationReport()
    start = (config.start or _floor(clock(), config.interval)).astimezone(UTC)
    report.sim_start = start
    planner = Planner(config, report, _last_round(config, start))
    sender = Sender(config, report, wall)
    began = wall()
    try:
        for k in _round_numbers(config, began, wall, sleep):
            when = report.sim_start + timedelta(seconds=k * config.interval)
            sender.send_all(planner.round(when))
            report.rounds, report.sim_end, report.elapsed = k + 1, when, wall() - began
            if progress:
                progress(report)
        sender.send_all(planner.flush(report.sim_end or report.sim_start))
    finally:
        sender.close()
        report.elapsed = wall() - began
    return report


def _round_numbers(
    config: SimulationConfig, began: float, wall: Callable[[], float], sleep: Callable[[float], None]
) -> Iterator[int]:
    """Round numbers, each yielded when due on the wall clock, until a bound is reached."""
    k = 0
    while config.rounds is None or k < config.rounds:
        if config.speedup > 0:
            due = began + k * config.interval / config.speedup
            if config.duration is not None and due - began >= config.duration:
                return
            if due > wall():
                sleep(due - wall())
        elif config.duration is not None and wall() - began >= config.duration:
            return
        yield k
        k += 1


def _last_round(config: SimulationConfig, start: datetime) -> datetime | None:
    """The observation time of the last round when the bound tells it up front (rounds, paced duration)."""
    counts = []
    if config.rounds is not None:
        counts.append(config.rounds)
    if config.duration is not None and config.speedup > 0:
        counts.append(math.ceil(config.duration * config.speedup / config.interval))
    if not counts:
        return None
    return start + timedelta(seconds=(max(min(counts), 1) - 1) * config.interval)


def _compact(body: dict[str, Any]) -> bytes:
    """The body as Orion writes it: compact JSON in UTF-8."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _floor(when: datetime, interval: float) -> datetime:
    ts = when.timestamp()
    return datetime.fromtimestamp(ts - ts % interval, UTC)
