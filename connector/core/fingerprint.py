"""Digital fingerprints of windows (seed 004, Algorithms 1 and 2) and the meter's hash chain.

Algorithm 1 (`fingerprint`) hash-links every reading of a window, in canonical order, starting from the
meter's previous chain hash. Algorithm 2 (`chain_hash`) links the window's summary and fingerprint to the
previous window's chain hash. `seal_window` does both; the verifier calls it again on the stored readings
and compares. The exact byte encodings are in docs/fingerprint.md.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any

from connector.core.aggregate import summarize, window_energy_wh
from connector.core.canonical import CanonicalError, canonical_json, decimal_text, time_text, utf8
from connector.core.kinds import AttributeSpec
from connector.core.readings import StoredReading

__all__ = [
    "SEED_DOMAIN",
    "CanonicalError",
    "ClosedWindow",
    "StoredReading",
    "canonical_json",
    "canonical_order",
    "chain_hash",
    "chain_record_json",
    "chain_seed",
    "closed_window",
    "seal_window",
    "fingerprint",
    "fingerprint_steps",
    "reading_record",
    "reading_record_json",
    "summary_json_bytes",
]

SEED_DOMAIN = "smartmeter-connector/v1"
_HASH = re.compile(r"[0-9a-f]{64}")


def _require_hash(value: str, name: str) -> str:
    if not isinstance(value, str) or not _HASH.fullmatch(value):
        raise ValueError(f"{name} must be 64 lowercase hex characters (a SHA-256 digest), got {value!r}")
    return value


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_order(readings: Sequence[StoredReading]) -> list[StoredReading]:
    """Readings by observation time, then attribute name (code point order), then record bytes.

    The last key only matters for two readings of one attribute at one instant, which the store's unique
    key forbids; it keeps the order, and so the fingerprint, independent of arrival order regardless.
    """
    ordered = sorted(readings, key=lambda r: (r.observed_at, r.attr))
    keys = [(r.observed_at, r.attr) for r in ordered]
    if len(set(keys)) < len(keys):
        ordered.sort(key=lambda r: (r.observed_at, r.attr, canonical_json(reading_record(r, ""))))
    return ordered


def reading_record(r: StoredReading, prev: str) -> dict[str, Any]:
    """The object hashed for one reading: M(t_k), t_k and H(t_{k-1}) (`prev`)."""
    return {
        "attr": r.attr,
        "number": None if r.number is None else decimal_text(r.number),
        "observed_at": time_text(r.observed_at),
        "prev": prev,
        "type": r.attr_type,
        "unit": r.unit,
        "value": r.value_json,
    }


def reading_record_json(r: StoredReading, prev: str) -> bytes:
    """`canonical_json(reading_record(r, prev))`, written directly (its keys are fixed and already in
    order) when every text field is a str or None; the general encoder otherwise. The same bytes: each
    string goes through the very escaper `json.dumps` uses, and tests compare both on many readings."""
    if not (
        _str_or_none(r.attr)
        and _str_or_none(r.attr_type)
        and _str_or_none(r.unit)
        and _str_or_none(r.value_json)
        and _str_or_none(prev)
        and r.observed_at.tzinfo is UTC
    ):
        return canonical_json(reading_record(r, prev))
    number = "null" if r.number is None else f'"{decimal_text(r.number)}"'
    text = (
        f'{{"attr":{_string(r.attr)},"number":{number},"observed_at":"{time_text(r.observed_at)}",'
        f'"prev":{_string(prev)},"type":{_string(r.attr_type)},"unit":{_string(r.unit)},'
        f'"value":{_string(r.value_json)}}}'
    )
    return utf8(text)


def _str_or_none(text: object) -> bool:
    return text is None or type(text) is str


def _string(text: str | None) -> str:
    return "null" if text is None else encode_basestring(text)


def fingerprint_steps(readings: Sequence[StoredReading], seed_hex: str) -> Iterator[tuple[bytes, str]]:
    """Each step of Algorithm 1: `(canonical bytes hashed, H(t_k))` in canonical order (for audits)."""
    h = _require_hash(seed_hex, "seed")
    for r in canonical_order(readings):
        data = reading_record_json(r, h)
        h = _sha256_hex(data)
        yield data, h


def fingerprint(readings: Sequence[StoredReading], seed_hex: str) -> str:
    """Algorithm 1: H(t_k) = SHA-256(canonical({M(t_k), t_k, H(t_{k-1})})) over all readings, H(t_0) = seed.

    Covers numeric and non-numeric readings alike. An empty window's fingerprint is the seed itself, as
    the algorithm's loop does not run. The result does not depend on the order of `readings`.
    """
    h = _require_hash(seed_hex, "seed")
    for r in canonical_order(readings):  # fingerprint_steps without keeping each step's bytes
        h = _sha256_hex(reading_record_json(r, h))
    return h


def chain_record(
    summary: Sequence[dict[str, Any]], fingerprint: str, prev_chain_hash: str, start: datetime, end: datetime
) -> dict[str, Any]:
    """The object hashed for one window by Algorithm 2."""
    return {
        "end": time_text(end),
        "fingerprint": _require_hash(fingerprint, "fingerprint"),
        "prev": _require_hash(prev_chain_hash, "prev_chain_hash"),
        "start": time_text(start),
        "summary": list(summary),
    }


def chain_hash(
    summary: Sequence[dict[str, Any]],
    fingerprint: str,
    prev_chain_hash: str,
    window_start: datetime,
    window_end: datetime,
) -> str:
    """Algorithm 2: H(T_i) = SHA-256(canonical({summary, fingerprint, H(T_{i-1}), start, end}))."""
    data = chain_record_json(
        summary_json_bytes(summary), fingerprint, prev_chain_hash, window_start, window_end
    )
    return _sha256_hex(data)


def chain_record_json(
    summary_json: bytes, fingerprint: str, prev_chain_hash: str, start: datetime, end: datetime
) -> bytes:
    """`canonical_json(chain_record(...))` around the summary's canonical bytes `summary_json`, written
    directly: the record's keys are fixed and already in order, and its other values (hex digests, UTC
    time texts) need no escaping. Tests compare it with the general encoder."""
    end_text = time_text(end)
    fp = _require_hash(fingerprint, "fingerprint")
    prev = _require_hash(prev_chain_hash, "prev_chain_hash")
    head = (
        f'{{"end":"{end_text}","fingerprint":"{fp}","prev":"{prev}","start":"{time_text(start)}","summary":'
    )
    return head.encode("ascii") + summary_json + b"}"


def summary_json_bytes(summary: Sequence[dict[str, Any]]) -> bytes:
    """`canonical_json(list(summary))`; when every entry is a dict of str keys and str, int or None values
    (as `summarize` gives) json.dumps takes it as it is, without the general encoder's walk: the same
    bytes, as that walk leaves such values unchanged."""
    if all(
        type(s) is dict and all(type(k) is str and _plain_value(v) for k, v in s.items()) for s in summary
    ):
        return utf8(json.dumps(list(summary), sort_keys=True, separators=(",", ":"), ensure_ascii=False))
    return canonical_json(list(summary))


def _plain_value(v: Any) -> bool:
    return v is None or type(v) is str or type(v) is int


def chain_seed(tenant: str, service_path: str, entity_id: str) -> str:
    """H(T_0) of a meter: SHA-256 of canonical {"domain", "entity_id", "service_path", "tenant"}.

    `tenant` is "" for Orion's default tenant; `service_path` as stored (e.g. "/").
    """
    identity = {"domain": SEED_DOMAIN, "entity_id": entity_id, "service_path": service_path, "tenant": tenant}
    return _sha256_hex(canonical_json(identity))


@dataclass(frozen=True)
class ClosedWindow:
    """A closed window of one meter: what the closer stores and the verifier recomputes."""

    start: datetime
    end: datetime
    summary: list[dict[str, Any]]
    energy_wh: Decimal | None  # see aggregate.window_energy_wh
    reading_count: int  # all readings, numeric or not
    fingerprint: str
    prev_chain_hash: str
    chain_hash: str
    # summary_json's text when the window was sealed here (its chain hash was computed over those bytes)
    summary_text: str | None = field(default=None, repr=False, compare=False)

    @property
    def summary_json(self) -> str:
        """The summary as canonical JSON text (what the store's summary_json column holds)."""
        if self.summary_text is not None:
            return self.summary_text
        return canonical_json(self.summary).decode("utf-8")


def seal_window(
    readings: Sequence[StoredReading],
    start: datetime,
    end: datetime,
    prev_chain_hash: str,
    spec_for: Callable[[str], AttributeSpec],
) -> ClosedWindow:
    """Summarize, fingerprint (seeded with `prev_chain_hash`) and chain one window `[start, end)`.

    Raises ValueError if a reading lies outside the window or the bounds are not an interval.
    """
    if start.utcoffset() is None or end.utcoffset() is None:
        raise ValueError("window bounds must be timezone-aware UTC, not naive")
    if not start < end:
        raise ValueError(f"window start {start} must be before its end {end}")
    outside = [r for r in readings if not start <= r.observed_at < end]
    if outside:
        raise ValueError(f"{len(outside)} reading(s) outside [{start}, {end}), e.g. {outside[0].observed_at}")
    summary, fp = summarize(readings, spec_for), fingerprint(readings, prev_chain_hash)
    return closed_window(start, end, summary, fp, prev_chain_hash, len(readings))


def closed_window(
    start: datetime,
    end: datetime,
    summary: list[dict[str, Any]],
    fp: str,
    prev_chain_hash: str,
    reading_count: int,
) -> ClosedWindow:
    """The window sealed from its summary and fingerprint: its energy and chain hash (Algorithm 2)."""
    summary_json = summary_json_bytes(summary)  # once, for the chain hash and the stored column
    return ClosedWindow(
        start=start,
        end=end,
        summary=summary,
        energy_wh=window_energy_wh(summary),
        reading_count=reading_count,
        fingerprint=fp,
        prev_chain_hash=prev_chain_hash,
        chain_hash=_sha256_hex(chain_record_json(summary_json, fp, prev_chain_hash, start, end)),
        summary_text=summary_json.decode("utf-8"),
    )
