"""What the connector writes on BigchainDB: a meter's asset (CREATE) and a window's metadata (TRANSFER).

Both shapes are documented in docs/ledger-format.md; the verifier rebuilds them with these same functions
and compares. Every key is legal for BigchainDB (no ".", no NUL, no leading "$"; no key named "language"),
decimals stay strings exactly as the store keeps them, times are ISO 8601 UTC with a "Z".
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from connector.core.canonical import canonical_json
from connector.settings import LedgerSettings
from connector.store.models import Meter, Window

WINDOW_SCHEMA = "smartmeter-connector/window/v1"
METER_SCHEMA = "smartmeter-connector/meter/v1"
# Tendermint caps a transaction at about 10 kB in BigchainDB deployments (reference/bigchaindb.md); the
# rest of a TRANSFER (ids, keys, signature) takes about 1 kB, so window metadata is kept within this.
MAX_METADATA_BYTES = 8_000
# Past MAX_METADATA_BYTES, per-attribute summaries are left out (configured kinds are kept first) and
# replaced by their count and digest under this key; the chain hash still covers every summary.
OMITTED_KEY = "attributes_omitted"
_ENTRY_RESERVE = 200  # bytes kept for OMITTED_KEY's own member: {"count": n, "digest": "<64 hex>"}


class MetadataError(ValueError):
    """The data cannot be written as BigchainDB metadata (an illegal key, or too large)."""


@lru_cache(maxsize=1024)  # a round's windows share their bounds and close times: 3 us each otherwise
def iso(moment: datetime) -> str:
    """`moment` as ISO 8601 UTC with milliseconds and a trailing Z (e.g. 2019-03-18T16:13:45.275Z)."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def meter_ref(meter: Meter) -> str:
    """The keystore name of a meter's key pair: "tenant|service_path|entity_id"."""
    return f"{meter.tenant}|{meter.service_path}|{meter.entity_id}"


def create_asset(meter: Meter, ledger: LedgerSettings) -> dict[str, Any]:
    """The asset of a meter's CREATE: `{"data": {"meter": {...}}}` after seed 003's Figure 18.

    Serial number and manufacturer come from the meter's configured attributes when it reported them; else
    the entity id and `ledger.default_manufacturer`.
    """
    asset = {
        "data": {
            "meter": {
                "serial_number": meter.serial_number or meter.entity_id,
                "manufacturer": meter.manufacturer or ledger.default_manufacturer,
                "entity_id": meter.entity_id,
                "entity_type": meter.entity_type,
                "fiware_service": meter.tenant,
                "fiware_servicepath": meter.service_path,
            }
        }
    }
    check_legal(asset["data"], "asset")
    return asset


def create_metadata(meter: Meter) -> dict[str, Any]:
    """The metadata of a meter's CREATE: registration time and the seed of its fingerprint chain."""
    return {"schema": METER_SCHEMA, "registered_at": iso(meter.first_seen), "chain_seed": meter.chain_seed}


def transfer_metadata(meter: Meter, window: Window) -> dict[str, Any]:
    """The metadata of a window's TRANSFER (Figure 19 extended), at most MAX_METADATA_BYTES whatever the
    window holds (see `bound_attributes`); raises MetadataError if it is not legal BigchainDB metadata."""
    metadata: dict[str, Any] = {
        "schema": WINDOW_SCHEMA,
        "meter": meter.entity_id,
        "window": {"start": iso(window.start), "end": iso(window.end)},
        "recvTime": iso(window.closed_at),
        "attributes": json.loads(window.summary_json),
        "fingerprint": window.fingerprint,
        "chain_hash": window.chain_hash,
        "prev_chain_hash": window.prev_chain_hash,
        "counts": {
            "readings": window.reading_count,
            "duplicates": window.duplicate_count,
            "late": window.late_count,
        },
    }
    check_legal(metadata, "metadata")
    size = _size(metadata)
    if size > MAX_METADATA_BYTES:
        summary = metadata["attributes"]
        room = MAX_METADATA_BYTES - (size - _size(summary)) - _ENTRY_RESERVE
        metadata["attributes"], metadata[OMITTED_KEY] = bound_attributes(summary, room)
    return metadata


def bound_attributes(summary: list[dict[str, Any]], room: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The summaries kept within `room` bytes, and the count and digest of those left out.

    Summaries of configured attributes (kind power or energy_register) are taken first, then the others,
    each in attribute order, as long as they fit; the kept ones stay in attribute order. The digest is
    `omitted_digest` of the left-out summaries in attribute order.
    """
    ordered = sorted(range(len(summary)), key=lambda k: summary[k].get("kind") == "stats")  # stable
    chosen: set[int] = set()
    used = 2  # the list's brackets
    for k in ordered:
        cost = _size(summary[k]) + 1  # and its comma
        if used + cost <= room:
            chosen.add(k)
            used += cost
    kept = [s for k, s in enumerate(summary) if k in chosen]
    left = [s for k, s in enumerate(summary) if k not in chosen]
    return kept, {"count": len(left), "digest": omitted_digest(left)}


def omitted_digest(entries: list[dict[str, Any]]) -> str:
    """SHA-256 (hex) of the canonical JSON (docs/fingerprint.md) of the left-out summaries, in order."""
    return hashlib.sha256(canonical_json(entries)).hexdigest()


def _size(value: Any) -> int:
    # Keys unsorted: the order moves no byte in or out, and sorting was a fifth of the cost.
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def check_legal(value: Any, where: str) -> None:
    """Raise MetadataError if any key inside `value` is one BigchainDB rejects or misreads."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or "." in key or "\x00" in key or key.startswith("$"):
                raise MetadataError(f"invalid key name {key!r} in {where}")
            if key == "language":
                # BigchainDB hands "language" to MongoDB text search, which rejects unknown languages.
                raise MetadataError(f"the key name 'language' is reserved in {where}")
            check_legal(item, where)
    elif isinstance(value, list):
        for item in value:
            check_legal(item, where)
