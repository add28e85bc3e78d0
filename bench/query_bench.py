"""Query API benchmark: one meter, a year of 15-minute windows (35,040) and 1-minute readings (525,600),
every window anchored as a signed TRANSFER on a dev ledger.

    .venv/bin/python -m bench.query_bench [--runs 20] [--days 365] [--store-url URL] [--data DIR]
                                          [--report docs/benchmarks/query.md]

The year is bulk-loaded (not through /notify): readings of one power attribute, windows closed with the
real fingerprint core (`seal_window`, chained) and written with the closer's `insert_window`, and per window
a TRANSFER built with the connector's own `transfer_metadata` and signed with its own `sign_transfer`
(one key, one asset, each TRANSFER spending the previous one). The signed transactions are written
straight into a dev ledger's storage (one block per day, each transaction checked with the ledger's own
`check_stateless`) and into the store's outbox as confirmed rows with their real ids and block heights.
`--data DIR` keeps the store and the ledger there and reuses them on the next run.

Everything is timed in-process through the Flask test client (routing, parameter parsing, SQL, JSON
encoding) against the dev ledger served over HTTP on loopback in the same process; `verify` is also timed
on the core with the ledger side read from the local index (`IndexLedger`), i.e. recomputation only.
Per row: wall-clock median and p95, and the process CPU time per request (less sensitive to other load).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import orjson
from flask import Flask
from sqlalchemy import insert, select, update

from connector.api import init_app
from connector.audit import IndexLedger, load_off_chain, verify_meter
from connector.closer import insert_window
from connector.core.fingerprint import chain_seed, seal_window
from connector.core.readings import StoredReading
from connector.keystore import KeyPair
from connector.ledger.metadata import create_asset, create_metadata, transfer_metadata
from connector.ledger.transactions import serialize, sign_create, sign_transfer
from connector.service import build_services, tune_gc
from connector.settings import Settings, load_settings
from connector.store.db import Store, migrate, open_store
from connector.store.models import LedgerOutbox, Meter, Reading, Window

T0 = datetime(2024, 1, 1, tzinfo=UTC)
WINDOW = timedelta(minutes=15)
ENTITY = "urn:ngsi-ld:SMX:bench"
PER_DAY = 96
DONE = "loaded.json"


def bench_key() -> KeyPair:
    """The meter's key pair, derived from a fixed seed (a benchmark fixture, never a real key)."""
    from bigchaindb_driver.crypto import generate_keypair

    pair = generate_keypair(b"query-bench-meter-key-seed-32by!")
    return KeyPair(pair.public_key, pair.private_key)


@dataclass
class Loader:
    """Writes the year into the store and the dev ledger's storage, one day per transaction and block."""

    store: Store
    settings: Settings
    ledger: Any  # devledger.storage.Storage
    key: KeyPair

    def load(self, days: int) -> int:
        meter = self._meter()
        create = sign_create(self.key, create_asset(meter, self.settings.ledger), create_metadata(meter))
        height = self._block([create])
        with self.store.begin() as conn:
            conn.execute(insert(LedgerOutbox).values(**_outbox(meter.id, None, T0, create, height, 0)))
            conn.execute(
                update(Meter)
                .where(Meter.id == meter.id)
                .values(public_key=self.key.public_key, asset_id=create["id"])
            )
        head, prev_tx, rng = meter.chain_seed, create["id"], random.Random(1)
        for day in range(days):
            head, prev_tx = self._day(meter, day, head, prev_tx, create["id"], rng)
        with self.store.begin() as conn:
            conn.execute(
                update(Meter).where(Meter.id == meter.id).values(chain_head=head, ledger_head_tx=prev_tx)
            )
        return int(meter.id)

    def _meter(self) -> Any:
        seed = chain_seed("", "/", ENTITY)
        values = dict(tenant="", service_path="/", entity_id=ENTITY, entity_type="SMX", first_seen=T0)
        with self.store.begin() as conn:
            meter_id = conn.execute(
                insert(Meter).values(**values, chain_seed=seed, chain_head=seed, late_since_close=0)
            ).inserted_primary_key[0]  # type: ignore[index]
            return conn.execute(select(Meter.__table__).where(Meter.id == meter_id)).one()

    def _day(self, meter: Any, day: int, head: str, prev_tx: str, asset_id: str, rng: random.Random) -> Any:
        spec_for = partial(self.settings.attribute_spec, "SMX")
        readings, windows = [], []
        for w in range(PER_DAY):
            ws = T0 + (day * PER_DAY + w) * WINDOW
            stored = [_reading(ws + timedelta(minutes=m), rng) for m in range(15)]
            cw = seal_window(stored, ws, ws + WINDOW, head, spec_for)
            head = cw.chain_hash
            readings += [_reading_row(meter.id, ws, r) for r in stored]
            windows.append(cw)
        with self.store.begin() as conn:
            conn.execute(insert(Reading), readings)
            signed = []
            for cw in windows:
                window_id = insert_window(conn, meter.id, cw, cw.end + timedelta(minutes=2))
                row = conn.execute(select(Window.__table__).where(Window.id == window_id)).one()
                tx = sign_transfer(self.key, asset_id, prev_tx, transfer_metadata(meter, row))  # type: ignore[arg-type]
                prev_tx = tx["id"]
                signed.append((window_id, cw.start, tx))
            height = self._block([tx for _w, _s, tx in signed])
            rows = [
                _outbox(meter.id, wid, start, tx, height, int(start.timestamp())) for wid, start, tx in signed
            ]
            conn.execute(insert(LedgerOutbox), rows)
        return head, prev_tx

    def _block(self, txs: list[dict[str, Any]]) -> int:
        from devledger.validation import check_stateless

        return int(self.ledger.append_block([check_stateless(tx) for tx in txs]))


def _reading(at: datetime, rng: random.Random) -> StoredReading:
    p = Decimal(rng.randint(0, 500_000)) / 100
    return StoredReading("P", "Number", at, json.dumps(float(p)), p, "W")


def _reading_row(meter_id: int, ws: datetime, r: StoredReading) -> dict[str, Any]:
    return dict(
        meter_id=meter_id,
        attr=r.attr,
        attr_type=r.attr_type,
        observed_at=r.observed_at,
        received_at=r.observed_at,
        time_source="TimeInstant",
        value_json=r.value_json,
        number=str(r.number),
        unit=r.unit,
        window_start=ws,
        late=False,
    )


def _outbox(
    meter_id: int, window_id: int | None, start: datetime, tx: dict[str, Any], height: int, seq: int
) -> dict[str, Any]:
    return dict(
        idempotency_key=f"window:{window_id}" if window_id else f"create:{meter_id}",
        meter_id=meter_id,
        window_id=window_id,
        operation=tx["operation"],
        seq=seq,
        status="confirmed",
        attempts=1,
        next_attempt_at=start,
        tx_id=tx["id"],
        tx_json=serialize(tx),
        block_height=height,
        created_at=start,
        updated_at=start,
        confirmed_at=start,
    )


def prepare(data: Path, store_url: str | None, days: int) -> tuple[Store, Settings, int, float | None]:
    """Open (or build) the store and the ledger data in `data`; returns the meter id and load seconds."""
    from devledger.storage import Storage

    url = store_url or f"sqlite:///{data}/store.sqlite3"
    settings = load_settings(overrides={"store.url": url, "ledger.embedded": False})
    store = open_store(url)
    migrate(store)
    marker = data / DONE
    if marker.exists() and json.loads(marker.read_text()) == {"days": days, "url": url}:
        with store.reading() as conn:
            return store, settings, conn.execute(select(Meter.id)).scalar_one(), None
    started = time.perf_counter()
    ledger = Storage(data / "ledger")
    meter_id = Loader(store, settings, ledger, bench_key()).load(days)
    ledger.close()
    if store.dialect == "postgresql":
        # What autovacuum does soon after a bulk load: statistics and the visibility map that lets the
        # history index be read without the table.
        with store.write.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    marker.write_text(json.dumps({"days": days, "url": url}))
    return store, settings, meter_id, time.perf_counter() - started


@dataclass
class Row:
    name: str
    wall: list[float]
    cpu: list[float]

    def cells(self) -> str:
        med = statistics.median(self.wall) * 1000
        cpu = statistics.median(self.cpu) * 1000
        return f"| {self.name} | {len(self.wall)} | {med:.1f} | {p95(self.wall):.1f} | {cpu:.1f} |"


def p95(samples: list[float]) -> float:
    """The 95th percentile in milliseconds."""
    return statistics.quantiles(samples, n=20)[-1] * 1000 if len(samples) > 1 else samples[0] * 1000


def timed(name: str, fn: Callable[[], None], runs: int) -> Row:
    """`runs` calls of `fn` after one warm-up call: wall and process CPU seconds of each."""
    fn()
    row = Row(name, [], [])
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        row.cpu.append(time.process_time() - cpu)
        row.wall.append(time.perf_counter() - wall)
    return row


def measure(client: Any, store: Store, settings: Settings, meter_id: int, runs: int, days: int) -> list[Row]:
    """Every benchmark row (see the module docstring)."""
    rng = random.Random(2)
    total = days * PER_DAY
    base = f"/v1/meters/{ENTITY}"
    few = max(5, runs // 3)

    svc = client.application.extensions["connector"]

    def get(path: str) -> dict[str, Any]:
        answer = client.get(base + path)
        assert answer.status_code == 200, answer.get_data(as_text=True)[:500]
        # orjson: the client's parse of a month's verdicts (9 MB) is not the server's work.
        return orjson.loads(answer.get_data())  # type: ignore[no-any-return]

    def page(source: str) -> None:
        offset = rng.randrange(0, max(1, total - 1000))
        body = get(f"/history?limit=1000&offset={offset}&source={source}")
        assert len(body["windows"]) == min(1000, total) and body["total"] == total

    def daily() -> None:
        assert get("/history?aggregate=day&limit=1000")["total"] == days

    def daily_cold() -> None:
        svc.folds.clear()
        daily()

    def span_start(span: timedelta) -> datetime:
        return T0 + timedelta(days=rng.randrange(0, max(1, days - span.days + 1)))

    def verify_route(span: timedelta, start: datetime | None = None) -> None:
        start = start or span_start(span)
        query = f"from={start.isoformat()}&to={(start + span).isoformat()}".replace("+", "%2B")
        body = get(f"/verify?{query}")
        assert body["verdict"] == "ok" and len(body["windows"]) == span / WINDOW, body["counts"]

    def verify_core(span: timedelta) -> None:
        start = span_start(span)
        with store.reading() as conn:
            off = load_off_chain(conn, meter_id, start, start + span)
            history = IndexLedger(conn, meter_id).window_transfers("", start, start + span)
        seed = chain_seed("", "/", ENTITY)
        spec_for = partial(settings.attribute_spec, "SMX")
        verdicts = verify_meter(off, history, seed, spec_for, start, start + span)
        assert all(v.status == "ok" for v in verdicts) and len(verdicts) == span / WINDOW

    def verify_cold(span: timedelta) -> None:
        svc.chains.clear()
        svc.sealed.clear()
        verify_route(span)

    day, month = timedelta(days=1), timedelta(days=min(30, days))
    one_month = span_start(month)
    # The collector as the server process tunes it once started (connector.service.tune_gc): here the
    # default thresholds ran full collections over the loaded year and the client's parsed answers, a
    # cost of this in-process harness that a server's requests do not pay.
    tune_gc()
    return [
        timed("history page, limit=1000, random offset (local index)", lambda: page("index"), runs),
        timed("history page, limit=1000, random offset, source=ledger", lambda: page("ledger"), few),
        timed("history aggregate=day over the year (local index), buckets kept", daily, runs),
        timed("history aggregate=day over the year (local index), cold: nothing kept", daily_cold, few),
        timed("verify route, one day (96 windows), random day, dev ledger", lambda: verify_route(day), runs),
        timed(
            "verify route, one month (2,880 windows), same month again",
            lambda: verify_route(month, one_month),
            runs,
        ),
        timed("verify route, one month, cold: chain and windows not kept", lambda: verify_cold(month), few),
        timed("verify core, one day, ledger side from the index", lambda: verify_core(day), runs),
        timed("verify core, one month, ledger side from the index", lambda: verify_core(month), few),
    ]


def main() -> None:
    from devledger.server import start_ledger

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store-url", help="default: a SQLite file in the data folder")
    parser.add_argument(
        "--data", help="folder for the store and the ledger, reused when loaded (default: temp)"
    )
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--report", default="docs/benchmarks/query.md", help="results are written into it")
    args = parser.parse_args()
    data = Path(args.data or tempfile.mkdtemp(prefix="query-bench-"))
    data.mkdir(parents=True, exist_ok=True)
    store, settings, meter_id, loaded = prepare(data, args.store_url, args.days)
    load_note = f"loaded in {loaded:.0f} s" if loaded is not None else f"reused from {data}"
    print(f"store {store.dialect}, {args.days} days: {load_note}", flush=True)
    ledger = start_ledger(port=0, ws_port=0, data_dir=data / "ledger")
    try:
        app = Flask("bench")
        app.extensions["connector"] = build_services(settings, store, ledger_urls=[ledger.url])
        init_app(app)
        load_before = os.getloadavg()
        rows = measure(app.test_client(), store, settings, meter_id, args.runs, args.days)
        load_after = os.getloadavg()
    finally:
        ledger.stop()
    table = results_table(rows, store.dialect, args.days, load_note, load_before, load_after)
    print(table)
    write_report(Path(args.report), table)


def results_table(
    rows: list[Row], dialect: str, days: int, note: str, before: tuple[float, ...], after: tuple[float, ...]
) -> str:
    """The results as the Markdown block the report holds."""
    lines = [
        f"Run of {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, store {dialect}, {days} days ({note}), "
        f"load average {before[0]:.2f} before and {after[0]:.2f} after:",
        "",
        "| measurement | runs | median ms | p95 ms | CPU ms (median) |",
        "|---|---|---|---|---|",
        *[r.cells() for r in rows],
    ]
    return "\n".join(lines)


BEGIN, END = "<!-- results: begin -->", "<!-- results: end -->"


def write_report(path: Path, table: str) -> None:
    """Replace the results block of `path` (between the BEGIN and END markers) with `table`."""
    text = path.read_text() if path.exists() else f"# Query API benchmark\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text:
        text += f"\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    path.write_text(f"{head}{BEGIN}\n{table}\n{END}{tail}")


if __name__ == "__main__":
    main()
