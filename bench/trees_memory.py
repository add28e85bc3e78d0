"""Memory and time of building one tenant's day tree: `connector.periods.build_period`, the closer
process's period-tree builder at each UTC midnight (issue 18: RSS flat and under 500 MB).

    flock /tmp/bench.lock env PYTHONPATH=$PWD .venv/bin/python -m bench.trees_memory --meters 10000

The store is bulk-loaded once (and reused from `--db`): `--meters` meters of one tenant spread over 30
service paths (/r<0-2>/g<0-9>), each with `--windows` closed 15-minute windows of one UTC day (random
fingerprints and chain hashes, seeded), and the rows of the day's window periods as built (the day's
attributes are read from their per-meter rows; their roots are not real). Then the day's tree is built
in this process `--runs` times, each in a transaction that is rolled back (so every run builds the same
tree): once plainly for the time and the peak resident memory (VmHWM reset through /proc/self/clear_refs
before the build, minus VmRSS then), and once under tracemalloc for the peak of traced Python memory.
The root is printed, so two builders' trees can be compared.

With `--turns`, the day is built as the closer process builds it on SQLite (`connector.periods.
build_period_in_turns`: read outside the write turn, then stored in it), measured for its seconds, the
longest time it held the write turn (what /notify's commits wait for) and its peak resident memory; the
stored rows are deleted afterwards:

    flock /tmp/bench.lock env PYTHONPATH=$PWD .venv/bin/python -m bench.trees_memory --meters 10000 --turns

With `--proof`, the same for the day proof of one window of the middle meter (`connector.proofs.
window_proof`, what GET /v1/meters/{id}/proof?period=day answers), measured after the day's tree is built
in the same rolled-back transaction:

    flock /tmp/bench.lock env PYTHONPATH=$PWD .venv/bin/python -m bench.trees_memory --meters 10000 --proof
"""

from __future__ import annotations

import argparse
import gc
import random
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Connection, delete, func, insert, select

from connector.core.trees import DAY, Period
from connector.periods import build_period, build_period_in_turns
from connector.proofs import window_proof
from connector.store.db import Store, migrate, open_store
from connector.store.models import Meter, Window
from connector.store.tree_models import PeriodMeter, PeriodRoot, PeriodSubtree, RootOutbox

DAY_START = datetime(2024, 3, 1, tzinfo=UTC)
LENGTH = 900
TENANT = "t1"
CHUNK = 20_000
ATTRS = '[{"attr":"E","unit":"kWh"},{"attr":"P","unit":"W"}]'
THE_DAY = Period("day", int(DAY_START.timestamp()), DAY)
T = TypeVar("T")


def paths() -> list[str]:
    """30 service paths, two levels deep."""
    return [f"/r{r}/g{g}" for r in range(3) for g in range(10)]


def load(store: Store, meters: int, windows: int, seed: int = 18) -> None:
    """`meters` meters with `windows` closed windows each from DAY_START, inserted in chunks."""
    rng = random.Random(seed)
    with store.begin() as conn:
        conn.execute(insert(Meter), list(_meters(meters)))
        ids = list(conn.execute(select(Meter.id).order_by(Meter.id)).scalars())
    batch: list[dict[str, object]] = []
    for start in range(windows):
        for meter_id in ids:
            batch.append(_window(rng, meter_id, DAY_START + timedelta(seconds=start * LENGTH)))
            if len(batch) == CHUNK:
                _insert(store, Window, batch)
                batch = []
    _insert(store, Window, batch)
    for start in range(windows):
        _window_period(store, ids, DAY_START + timedelta(seconds=start * LENGTH))


def _window_period(store: Store, meter_ids: list[int], start: datetime) -> None:
    """The rows of a built window period (what the day's attributes are read from); root not real."""
    root = {"tenant": TENANT, "kind": "window", "start": start, "length": LENGTH, "root": "00" * 32}
    root |= {"energy_wh": 0, "meter_count": len(meter_ids), "window_count": len(meter_ids)}
    with store.begin() as conn:
        period_id = conn.execute(insert(PeriodRoot).values(**root, built_at=start).returning(PeriodRoot.id))
        pid = period_id.scalar_one()
    rows = [
        {
            "period_id": pid,
            "meter_id": m,
            "window_count": 1,
            "meter_root": "00" * 32,
            "attributes_json": ATTRS,
        }
        for m in meter_ids
    ]
    for i in range(0, len(rows), CHUNK):
        _insert(store, PeriodMeter, rows[i : i + CHUNK])


def _insert(store: Store, model: type, rows: list[dict[str, object]]) -> None:
    if rows:
        with store.begin() as conn:
            conn.execute(insert(model), rows)


def _meters(n: int) -> Iterator[dict[str, object]]:
    sp = paths()
    for i in range(n):
        yield {
            "tenant": TENANT,
            "service_path": sp[i % len(sp)],
            "entity_id": entity_id(i),
            "entity_type": "SMX",
            "first_seen": DAY_START,
            "chain_seed": "00" * 32,
            "chain_head": "00" * 32,
            "late_since_close": 0,
        }


def entity_id(i: int) -> str:
    return f"urn:ngsi-ld:SMX:{i:06d}"


def _window(rng: random.Random, meter_id: int, start: datetime) -> dict[str, object]:
    return {
        "meter_id": meter_id,
        "start": start,
        "end": start + timedelta(seconds=LENGTH),
        "closed_at": start + timedelta(seconds=LENGTH + 120),
        "reading_count": 15,
        "duplicate_count": 0,
        "late_count": 0,
        "summary_json": "{}",
        "energy_wh": f"{rng.randrange(0, 10**6)}.{rng.randrange(1000):03d}",
        "fingerprint": rng.randbytes(32).hex(),
        "prev_chain_hash": "00" * 32,
        "chain_hash": rng.randbytes(32).hex(),
    }


def status_kib(field: str) -> int:
    """A field of /proc/self/status in KiB (VmRSS, VmHWM, RssAnon)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


@contextmanager
def rolled_back(store: Store) -> Iterator[Connection]:
    """A write transaction that is rolled back afterwards, so every run sees the same store."""
    with store.write_lock or _nothing(), store.write.connect() as conn:
        tx = conn.begin()
        try:
            yield conn
        finally:
            tx.rollback()


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        return None


def measured(work: Callable[[], T], traced: bool) -> tuple[float, int, T]:
    """Seconds of `work`, and its peak KiB above the start (traced Python memory, or resident memory)."""
    gc.collect()
    if traced:
        tracemalloc.start()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current VmRSS
        base = status_kib("VmRSS")
    t0 = time.perf_counter()
    result = work()
    seconds = time.perf_counter() - t0
    if traced:
        peak = tracemalloc.get_traced_memory()[1] // 1024
        tracemalloc.stop()
    else:
        peak = status_kib("VmHWM") - base
    return seconds, peak, result


def build_run(store: Store, now: datetime, traced: bool) -> tuple[float, int, str]:
    """build_period of the day, measured: seconds, peak KiB, and what it built."""
    with rolled_back(store) as conn:
        seconds, peak, built = measured(lambda: build_period(conn, TENANT, THE_DAY, now), traced)
    return seconds, peak, f"{built.windows} windows  {built.root}" if built else "nothing built"


def turns_run(store: Store, now: datetime) -> tuple[float, int, str]:
    """build_period_in_turns of the day, measured: seconds, peak KiB, the longest write turn it held and
    what it built; its rows are deleted afterwards (so the next run builds the day again)."""
    assert store.write_lock is not None, "the write turn is SQLite's"
    holds: list[float] = []
    store.write_lock.observe = holds.append
    try:
        seconds, peak, built = measured(lambda: build_period_in_turns(store, TENANT, THE_DAY, now), False)
    finally:
        store.write_lock.observe = None
    with store.begin() as conn:
        ids = select(PeriodRoot.id).where(PeriodRoot.kind == "day", PeriodRoot.tenant == TENANT)
        for model in (PeriodMeter, PeriodSubtree):
            conn.execute(delete(model).where(model.period_id.in_(ids)))  # type: ignore[attr-defined]
        conn.execute(delete(RootOutbox).where(RootOutbox.tenant == TENANT))
        conn.execute(delete(PeriodRoot).where(PeriodRoot.id.in_(ids)))
    what = f"{built.windows} windows  {built.root}" if built else "nothing built"
    return seconds, peak, f"write turn held at most {max(holds, default=0.0):.2f} s  {what}"


def proof_run(store: Store, now: datetime, traced: bool, meters: int) -> tuple[float, int, str]:
    """The day proof of one window of the middle meter (what GET /v1/meters/{id}/proof?period=day
    answers) after the day is built (not measured): seconds, peak KiB, the proof's root and length."""
    with rolled_back(store) as conn:
        build_period(conn, TENANT, THE_DAY, now)
        meter = conn.execute(select(Meter).where(Meter.entity_id == entity_id(meters // 2))).one()
        start = DAY_START + timedelta(hours=5)
        seconds, peak, found = measured(lambda: window_proof(conn, meter, start, "day", LENGTH), traced)
    proof = found.proof
    return seconds, peak, f"{len(proof.steps)} steps  {proof.root.hex()}  verifies: {proof.verify()}"


def count_windows(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(Window)).scalar_one())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--meters", type=int, default=10_000)
    parser.add_argument("--windows", type=int, default=96)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--no-trace", action="store_true", help="skip the (slow) tracemalloc run")
    parser.add_argument("--proof", action="store_true", help="measure a day proof, not the day's build")
    parser.add_argument("--turns", action="store_true", help="build as the closer does, in turns (SQLite)")
    parser.add_argument("--url", help="a store URL (PostgreSQL); default: a SQLite file at --db")
    parser.add_argument("--db", default=None, help="SQLite file, kept and reused (default under /tmp)")
    args = parser.parse_args()
    db = args.db or f"/tmp/trees_memory-{args.meters}x{args.windows}.sqlite3"
    store = open_store(args.url or f"sqlite:///{db}")
    migrate(store)
    with store.reading() as conn:
        have = count_windows(conn)
    if have == 0:
        t0 = time.perf_counter()
        load(store, args.meters, args.windows)
        print(f"loaded {args.meters} meters x {args.windows} windows in {time.perf_counter() - t0:.1f} s")
    elif have != args.meters * args.windows:
        raise SystemExit(
            f"the store holds {have} windows, not {args.meters * args.windows}: use another --db"
        )
    now = DAY_START + timedelta(days=2)
    for run in range(args.runs):
        for traced in (False,) if args.no_trace or args.turns else (False, True):
            if args.proof:
                seconds, peak, what = proof_run(store, now, traced, args.meters)
            elif args.turns:
                seconds, peak, what = turns_run(store, now)
            else:
                seconds, peak, what = build_run(store, now, traced)
            kind = "tracemalloc peak" if traced else "VmHWM - VmRSS"
            print(f"run {run}: {seconds:6.2f} s  {kind:>16} {peak / 1024:8.1f} MiB  {what}")
        print(f"run {run}: RssAnon after {status_kib('RssAnon') / 1024:.1f} MiB")
    store.dispose()


if __name__ == "__main__":
    main()
