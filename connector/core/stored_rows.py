"""Sealing a window straight from the store's reading rows: what the verifier recomputes on every request.

A row is the reading's columns the fingerprint covers, as text: (attr, attr_type, observed_at, value_json,
number, unit), `observed_at` in its canonical UTC text (`time_text`, docs/fingerprint.md) and `number` as
the decimal text the store keeps. `seal_rows` gives exactly `seal_window` over the rows as StoredReadings
(the same ClosedWindow, or the same error), in one pass over the rows instead of a StoredReading, a
canonical record and a summary walk per reading: a month of one-minute readings is 43,200 of them. The pass
applies to the rows a store normally holds (text columns as str or None, decimal texts in canonical form
already, no two readings of one attribute at one instant); any other window is sealed by `seal_window`
itself, so the general code stays the definition and this is only a shorter road to its result.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from hashlib import sha256
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from operator import itemgetter
from typing import Any

from connector.core.aggregate import attribute_summary
from connector.core.canonical import decimal_text, time_text
from connector.core.fingerprint import ClosedWindow, closed_window, seal_window
from connector.core.kinds import AttributeSpec
from connector.core.readings import StoredReading

Row = tuple[str, str | None, str, str, str | None, str | None]

_TIME = "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[.][0-9]{6}Z"
_TIME_TEXT = re.compile(_TIME)
# Texts joined by "\n": every one of them a canonical time text (the separator keeps them apart).
_TIME_TEXTS = re.compile(f"(?:{_TIME}\n)*{_TIME}")
_HASH = re.compile(r"[0-9a-f]{64}")
# A decimal text that `decimal_text(Decimal(text))` writes back unchanged (most are: the shortcut skips
# that round trip): plain digits, no exponent, no "+", no leading zeros, no trailing fraction zeros, not
# "-0"; at most 100 digits before and after the point, far within what a plain form may have.
_DECIMAL = r"(?:0|-?[1-9][0-9]{0,99}(?:[.][0-9]{0,99}[1-9])?|-?0[.][0-9]{0,99}[1-9])"
_CANONICAL_DECIMALS = re.compile(f"(?:{_DECIMAL}\n)*{_DECIMAL}")
_BY_TIME_THEN_ATTR = itemgetter(2, 0)


def parse_time_text(text: str) -> datetime:
    """The aware UTC time a canonical time text stands for; ValueError for any other text."""
    if type(text) is not str or not _TIME_TEXT.fullmatch(text):
        raise ValueError(f"not a canonical UTC time text: {text!r}")
    return datetime.fromisoformat(text)


def stored_reading(row: Row) -> StoredReading:
    """A row as the fingerprint core's StoredReading; ValueError or ArithmeticError if unreadable."""
    attr, attr_type, observed_at, value_json, number, unit = row
    at = parse_time_text(observed_at)
    return StoredReading(attr, attr_type, at, value_json, None if number is None else Decimal(number), unit)


def seal_rows(
    rows: Sequence[Row],
    start: datetime,
    end: datetime,
    prev_chain_hash: str,
    spec_for: Callable[[str], AttributeSpec],
) -> ClosedWindow:
    """`seal_window([stored_reading(r) for r in rows], start, end, prev_chain_hash, spec_for)`: the same
    window, or the same ValueError or ArithmeticError."""
    try:
        sealed = _sealed_in_one_pass(rows, start, end, prev_chain_hash, spec_for)
    except (TypeError, ValueError, ArithmeticError):
        sealed = None  # the general path says what is wrong (or that nothing is: then it seals the window)
    if sealed is not None:
        return sealed
    return seal_window([stored_reading(r) for r in rows], start, end, prev_chain_hash, spec_for)


def _sealed_in_one_pass(
    rows: Sequence[Row],
    start: datetime,
    end: datetime,
    prev: str,
    spec_for: Callable[[str], AttributeSpec],
) -> ClosedWindow | None:
    # None where the one pass does not apply; raises where a value is of another type or unreadable. The
    # checks and conversions go over whole columns at once; only the hash chain steps row by row.
    if start.tzinfo is not UTC or end.tzinfo is not UTC or not start < end or not _is_hash(prev):
        return None
    ordered = sorted(rows, key=_BY_TIME_THEN_ATTR)  # the canonical order when no key repeats
    texts = [r[2] for r in ordered]
    if ordered and not (
        _all_time_texts(texts) and time_text(start) <= texts[0] and texts[-1] < time_text(end)
    ):
        return None  # canonical time texts sort and compare as the times they stand for
    if len(set(map(_BY_TIME_THEN_ATTR, ordered))) < len(ordered):
        return None  # two readings of one attribute at one instant: the general order decides
    times = list(map(datetime.fromisoformat, texts))  # ValueError for a date that does not exist
    h = prev
    for head, tail in zip(*_record_parts(ordered), strict=True):
        h = sha256(head + h.encode() + tail).hexdigest()
    summary = _summary(ordered, times, spec_for)
    return closed_window(start, end, summary, h, prev, len(rows))


def _record_parts(ordered: list[Row]) -> tuple[list[bytes], list[bytes]]:
    # Each reading's canonical record (reading_record_json) around its "prev" value, as UTF-8.
    esc = encode_basestring
    numbers = _numbers_json([r[4] for r in ordered])
    heads = [
        f'{{"attr":{esc(a)},"number":{n},"observed_at":"{t}","prev":"'.encode()
        for (a, _ty, t, _v, _n, _u), n in zip(ordered, numbers, strict=True)
    ]
    kinds = {ty_u: (_text_json(ty_u[0]), _text_json(ty_u[1])) for ty_u in {(r[1], r[5]) for r in ordered}}
    tails = [
        f'","type":{kinds[ty, u][0]},"unit":{kinds[ty, u][1]},"value":{esc(v)}}}'.encode()
        for _a, ty, _t, v, _n, u in ordered
    ]
    return heads, tails


def _numbers_json(numbers: list[str | None]) -> list[str]:
    # The record's "number" values: the texts themselves when all are canonical already (one match over
    # all), else each as StoredReading reads it and decimal_text writes it.
    present = [n for n in numbers if n is not None]
    if present and _CANONICAL_DECIMALS.fullmatch("\n".join(present)):
        return ["null" if n is None else f'"{n}"' for n in numbers]
    return ["null" if n is None else f'"{decimal_text(Decimal(n))}"' for n in numbers]


def _summary(
    ordered: list[Row], times: list[datetime], spec_for: Callable[[str], AttributeSpec]
) -> list[dict[str, Any]]:
    # summarize(): per numeric attribute (in code point order) its readings in time order.
    numeric = [i for i, r in enumerate(ordered) if r[4] is not None]
    by_attr: dict[str, list[int]] = {}
    for i in numeric:
        by_attr.setdefault(ordered[i][0], []).append(i)
    summary = []
    for attr in sorted(by_attr):
        picked = by_attr[attr]
        numbers = [Decimal(ordered[i][4]) for i in picked]  # type: ignore[arg-type]
        first, last = ordered[picked[0]], ordered[picked[-1]]
        column = [times[i] for i in picked]
        summary.append(attribute_summary(attr, first[1], numbers, column, spec_for(attr), first[2], last[2]))
    return summary


def _all_time_texts(texts: list[str]) -> bool:
    # One match over all of them: each text 27 characters (so none holds the separator) and canonical.
    joined = "\n".join(texts)
    return len(joined) == 28 * len(texts) - 1 and _TIME_TEXTS.fullmatch(joined) is not None


def _is_hash(value: object) -> bool:
    return type(value) is str and _HASH.fullmatch(value) is not None


def _text_json(text: Any) -> str:
    # What the canonical encoder writes for a str or None (the escaper json.dumps uses); TypeError else.
    if text is None:
        return "null"
    if type(text) is not str:
        raise TypeError("not a text column")
    return encode_basestring(text)  # type: ignore[no-any-return]
