"""A load generator that runs in its own process: POSTs Orion notifications over HTTP with aiohttp.

Two modes: `max` (closed loop, N connections as fast as the connector answers) and `rate` (open loop at a
fixed rate, latency measured from the scheduled send time so queueing is not hidden).
Usage: python -m bench.loadgen URL --mode max|rate --seconds S [--rate R] [--connections N] [--batch K]
Prints one JSON line with the counts and latency percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import UTC, datetime, timedelta

import aiohttp

HEADERS = {
    "Content-Type": "application/json; charset=utf-8",
    "Fiware-Service": "bench",
    "Fiware-ServicePath": "/",
    "Fiware-Correlator": "bench; cbnotif=1",
}
T0 = datetime.now(UTC)  # current times, as Orion sends them: no window closes during a run


def normalized(i: int, meters: int) -> bytes:
    when = (T0 + timedelta(milliseconds=i)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    meta = f'"metadata":{{"TimeInstant":{{"type":"DateTime","value":"{when}"}}}}'
    power = f'"P":{{"type":"Number","value":{i % 5000}.5,{meta}}}'
    entity = f'{{"id":"urn:ngsi-ld:SMX:B{i % meters}","type":"SMX",{power}}}'
    return f'{{"subscriptionId":"bench","data":[{entity}]}}'.encode()


def legacy(i: int, entities: int) -> bytes:
    when = (T0 + timedelta(seconds=i)).isoformat().replace("+00:00", "Z")
    responses = [
        {
            "contextElement": {
                "type": "SMX",
                "isPattern": "false",
                "id": f"urn:ngsi-ld:SMX:L{e}",
                "attributes": [
                    {
                        "name": "P",
                        "type": "W",
                        "value": f"{(i + e) % 5000}.25",
                        "metadatas": [{"name": "TimeInstant", "type": "ISO8601", "value": when}],
                    }
                ],
            },
            "statusCode": {"code": "200", "reasonPhrase": "OK"},
        }
        for e in range(entities)
    ]
    return json.dumps(
        {"subscriptionId": "bench", "originator": "localhost", "contextResponses": responses}
    ).encode()


class Stats:
    def __init__(self) -> None:
        self.ok = 0
        self.failed = 0
        self.latencies: list[float] = []

    def summary(self, seconds: float, readings_per_notification: int) -> dict[str, float]:
        lat = sorted(self.latencies)

        def pct(q: float) -> float:
            return round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1000, 2) if lat else 0.0

        return {
            "ok": self.ok,
            "failed": self.failed,
            "seconds": round(seconds, 2),
            "notifications_per_s": round(self.ok / seconds, 1),
            "readings_per_s": round(self.ok * readings_per_notification / seconds, 1),
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
        }


async def _post(session: aiohttp.ClientSession, url: str, body: bytes, stats: Stats, t_sched: float) -> None:
    try:
        async with session.post(url, data=body, headers=HEADERS) as resp:
            await resp.read()
            if resp.status == 200:
                stats.ok += 1
            else:
                stats.failed += 1
    except aiohttp.ClientError:
        stats.failed += 1
    stats.latencies.append(time.perf_counter() - t_sched)


async def run_max(url: str, seconds: float, connections: int, make) -> tuple[Stats, float]:  # type: ignore[no-untyped-def]
    stats = Stats()
    counter = iter(range(10**9))
    start = time.perf_counter()
    deadline = start + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        while time.perf_counter() < deadline:
            await _post(session, url, make(next(counter)), stats, time.perf_counter())

    conn = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=conn) as session:
        await asyncio.gather(*(worker(session) for _ in range(connections)))
    return stats, time.perf_counter() - start


async def run_rate(url: str, seconds: float, rate: float, connections: int, make) -> tuple[Stats, float]:  # type: ignore[no-untyped-def]
    stats = Stats()
    start = time.perf_counter()
    conn = aiohttp.TCPConnector(limit=connections)
    tasks = []
    async with aiohttp.ClientSession(connector=conn) as session:
        for i in range(int(seconds * rate)):
            t_sched = start + i / rate
            delay = t_sched - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_post(session, url, make(i), stats, t_sched)))
        await asyncio.gather(*tasks)
    return stats, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--mode", choices=["max", "rate"], default="max")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--rate", type=float, default=1000)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--batch", type=int, default=0, help="legacy payloads with this many entities each")
    ap.add_argument("--meters", type=int, default=2000)
    ap.add_argument("--offset", type=int, default=0, help="first sequence number (keeps runs distinct)")
    args = ap.parse_args()

    def make(i: int) -> bytes:
        n = i + args.offset
        return legacy(n, args.batch) if args.batch else normalized(n, args.meters)

    if args.mode == "max":
        stats, took = asyncio.run(run_max(args.url, args.seconds, args.connections, make))
    else:
        stats, took = asyncio.run(run_rate(args.url, args.seconds, args.rate, args.connections, make))
    print(json.dumps(stats.summary(took, args.batch or 1)))


if __name__ == "__main__":
    main()
