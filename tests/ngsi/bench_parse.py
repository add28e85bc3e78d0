"""Micro-benchmark of the pure parser (not a test): `.venv/bin/python -m tests.ngsi.bench_parse`.

Prints microseconds per call, best of 7 runs, for the verbatim payloads and a 100-entity legacy batch.
"""

from __future__ import annotations

import timeit
from collections.abc import Callable

from ngsi.headers import resolve_headers
from ngsi.model import Headers
from ngsi.parse import parse_notification
from tests.ngsi.helpers import RECEIVED, payload

ORION_HEADERS = {
    "Fiware-Service": "tk",
    "Fiware-ServicePath": "/terni/district_4",
    "Fiware-Correlator": "9e10fc36; cbnotif=1",
    "Ngsiv2-AttrsFormat": "normalized",
    "Content-Type": "application/json; charset=utf-8",
    "User-Agent": "orion/4.0.0",
}


def best_us(call: Callable[[], object], number: int) -> float:
    """Microseconds per call of `call`, the best of 7 runs of `number` calls."""
    return min(timeit.repeat(call, number=number, repeat=7)) / number * 1e6


def legacy_batch(size: int) -> dict:
    """The reference legacy payload carrying `size` meters."""
    body = payload("legacy.json")
    element = body["contextResponses"][0]
    body["contextResponses"] = [
        {**element, "contextElement": {**element["contextElement"], "id": f"m{i}"}} for i in range(size)
    ]
    return body


def main() -> None:
    """Print the figures."""
    v2, plain = Headers("", "/", None, "normalized"), Headers("", "/")
    payload_n, payload_l, payload_ld = payload("normalized.json"), payload("legacy.json"), payload("ld.json")
    batch = legacy_batch(100)
    cases = [
        ("normalized", lambda: parse_notification(payload_n, v2, RECEIVED), 20000),
        ("legacy (1 entity)", lambda: parse_notification(payload_l, plain, RECEIVED), 20000),
        ("ld (2 attributes)", lambda: parse_notification(payload_ld, plain, RECEIVED), 20000),
        ("legacy x100", lambda: parse_notification(batch, plain, RECEIVED), 300),
        ("resolve_headers", lambda: resolve_headers(ORION_HEADERS), 20000),
    ]
    for name, call, number in cases:
        print(f"{name:20s} {best_us(call, number):8.1f} us/call")


if __name__ == "__main__":
    main()
