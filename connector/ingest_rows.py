"""The rows of one group commit: its distinct readings, and what repeated a stored or earlier key.

A reading whose key (meter, attribute, observation time) is already taken is a duplicate when it has the
same type, value and unit, and a conflict otherwise: conflicts are kept in reading_conflicts as evidence
(the first reading stays the one fingerprinted) and listed in the notification's result.
"""

from __future__ import annotations

import json
from collections import Counter as Tally
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from connector.store.ingest_sql import Content, IngestSql, MeterKey, ReadingRow

if TYPE_CHECKING:
    from connector.ingest import Incoming, IngestResult, Prepared

ReadingKey = tuple[int, str, datetime]  # meter id, attribute, observation time


@dataclass
class Batch:
    """One group's distinct readings, bound for the store, and what repeated a key within the group."""

    rows: list[ReadingRow] = field(default_factory=list)
    windows: list[datetime] = field(default_factory=list)  # each row's window start
    owner: list[int] = field(default_factory=list)  # the item that brought each row
    attempted: Tally[tuple[int, datetime]] = field(default_factory=Tally)  # readings per open window
    # (item, row, index of the first row with that key) for every later reading of a key in this group
    repeats: list[tuple[int, ReadingRow, int]] = field(default_factory=list)
    stored: list[bool] = field(default_factory=list)


def reading_rows(
    items: list[Incoming], prepared: list[Prepared], meters: dict[MeterKey, tuple[int, datetime | None]]
) -> Batch:
    """One row per distinct reading of the group (bound for the store), its window start, which item
    brought it first, how many readings (duplicates included) each open (meter, window) received, and
    the group's repeats of a key (duplicates or conflicts of the first)."""
    batch = Batch()
    first: dict[ReadingKey, int] = {}
    for i, (item, prep) in enumerate(zip(items, prepared, strict=True)):
        received, correlator = prep.received, item.headers.correlator
        for mkey, attr, attr_type, at, at_bound, source, value, number, unit, ws, ws_bound in prep.rows:
            meter_id, frontier = meters[mkey]
            late = frontier is not None and ws <= frontier
            if not late:
                batch.attempted[(meter_id, ws)] += 1
            row = (meter_id, attr, attr_type, at_bound, received, source, value, number, unit, ws_bound, late,
                   correlator)  # fmt: skip
            key = (meter_id, attr, at)
            if key in first:  # the same key twice in this group: a duplicate or a conflict of the first
                batch.repeats.append((i, row, first[key]))
                continue
            first[key] = len(batch.rows)
            batch.owner.append(i)
            batch.windows.append(ws)
            batch.rows.append(row)
    return batch


def insert_readings(sql: IngestSql, batch: Batch, results: list[IngestResult]) -> None:
    """Insert the rows (duplicates of stored readings are skipped by the unique key) and tally outcomes."""
    batch.stored = stored = sql.insert_readings(batch.rows) if batch.rows else []
    late_per_meter: Tally[int] = Tally()
    stored_windows: Tally[tuple[int, datetime]] = Tally()
    for row, ws, i, ok in zip(batch.rows, batch.windows, batch.owner, stored, strict=True):
        if not ok:
            continue
        result = results[i]
        result.accepted += 1
        if row[10]:  # late
            result.late += 1
            late_per_meter[row[0]] += 1
        else:
            stored_windows[(row[0], ws)] += 1
    if batch.attempted:
        pending = sorted(batch.attempted.items())
        sql.mark_pending([(m, ws, n - stored_windows.get((m, ws), 0)) for (m, ws), n in pending])
    if late_per_meter:
        sql.add_late(dict(sorted(late_per_meter.items())))


def record_conflicts(
    sql: IngestSql, batch: Batch, results: list[IngestResult], entity_ids: dict[int, str]
) -> None:
    """Tell duplicates from conflicts among the readings not stored: a reading whose key holds the same
    type, value and unit is a duplicate; any other is a conflict, kept in reading_conflicts and listed in
    its item's result. The stored reading (the first one) stays the one fingerprinted."""
    unstored = [k for k, ok in enumerate(batch.stored) if not ok]
    if not unstored and not batch.repeats:
        return
    kept: dict[int, Content | None] = {k: content(batch.rows[k]) for k, ok in enumerate(batch.stored) if ok}
    kept.update(zip(unstored, sql.stored_contents([batch.rows[k] for k in unstored]), strict=True))
    candidates = [(batch.owner[k], batch.rows[k], kept[k]) for k in unstored]
    candidates += [(i, row, kept[first]) for i, row, first in batch.repeats]
    conflicts = [(i, row, old) for i, row, old in candidates if old is not None and content(row) != old]
    if not conflicts:
        return
    sql.insert_conflicts([row for _i, row, _old in conflicts])
    for i, row, old in conflicts:
        results[i].conflicts.append(
            {"id": entity_ids.get(row[0]), "attr": row[1], "observedAt": sql.time_text(row[3]),
             "value": json.loads(row[6]), "stored": json.loads(old[1])}
        )  # fmt: skip


def content(row: ReadingRow) -> Content:
    """What makes two readings of one key the same reading: attribute type, value and unit."""
    return (row[2], row[6], row[8])
