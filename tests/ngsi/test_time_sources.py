"""Observation time: first match wins, in the order reference/orion.md gives."""

# ruff: noqa: E501  (tables of exact messages read best one case per line)

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ngsi.model import TIME_SOURCES
from tests.ngsi.helpers import RECEIVED, parse, utc

T = {k: f"2024-03-18T16:0{k}:00Z" for k in range(10)}  # distinct times, one per candidate


def at(k: int) -> datetime:
    """The time T[k] as an aware datetime."""
    return datetime(2024, 3, 18, 16, k, tzinfo=UTC)


def dt(k: int) -> dict:
    """A normalized DateTime attribute or metadata entry holding T[k]."""
    return {"type": "DateTime", "value": T[k]}


def entity(meta: dict | None = None, **entity_attrs: dict) -> dict:
    """A normalized entity with P (metadata `meta`) and the given entity-level attributes."""
    p = {"type": "Number", "value": 1, "metadata": meta or {}}
    return {"id": "m1", "type": "SMX", "P": p, **entity_attrs}


# (case, entity, configured time attribute, expected source, expected time)
ORDER = [
    ("configured beats everything", entity({"TimeInstant": dt(1)}, measuredAt=dt(0), TimeInstant=dt(2)),
     "measuredAt", "configured", at(0)),
    ("metadata TimeInstant beats entity TimeInstant", entity({"TimeInstant": dt(1)}, TimeInstant=dt(2)),
     "", "metadata", at(1)),
    ("configured attribute absent: next rule", entity({"TimeInstant": dt(1)}), "measuredAt", "metadata", at(1)),
    ("entity TimeInstant beats observedAt metadata", entity({"observedAt": dt(3)}, TimeInstant=dt(2)),
     "", "entity", at(2)),
    ("observedAt metadata beats dateObserved", entity({"observedAt": dt(3)}, dateObserved=dt(4)),
     "", "observedAt", at(3)),
    ("entity observedAt", entity(observedAt=dt(3), dateObserved=dt(4)), "", "observedAt", at(3)),
    ("dateObserved metadata beats timestamp", entity({"dateObserved": dt(4)}, timestamp=dt(5)),
     "", "dateObserved", at(4)),
    ("entity dateObserved beats timestamp metadata", entity({"timestamp": dt(5)}, dateObserved=dt(4)),
     "", "dateObserved", at(4)),
    ("timestamp beats dateModified", entity({"dateModified": dt(6)}, timestamp=dt(5)), "", "timestamp", at(5)),
    ("dateModified metadata", entity({"dateModified": dt(6)}), "", "dateModified", at(6)),
    ("entity dateModified", entity(dateModified=dt(6)), "", "dateModified", at(6)),
    ("nothing: receipt", entity(), "", "receipt", RECEIVED),
    ("unrelated metadata: receipt", entity({"accuracy": dt(7)}), "", "receipt", RECEIVED),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "body", "time_attr", "source", "expected"), ORDER, ids=[c[0] for c in ORDER]
)
def test_first_time_source_in_order_wins(case, body, time_attr, source, expected):
    """Each rule of the order applies when every earlier one is absent; the reading says which."""
    result = parse({"data": [body]}, "normalized", time_attribute=time_attr)
    assert [(r.attr, r.time_source, r.observed_at) for r in result.readings] == [("P", source, expected)]
    assert source in TIME_SOURCES


def test_ld_observed_at_and_legacy_metadata_sources():
    """observedAt of an NGSI-LD property and TimeInstant metadatas of NGSIv1 are honoured."""
    ld = {
        "type": "Notification",
        "data": [{"id": "u:1", "type": "T", "P": {"type": "Property", "value": 1, "observedAt": T[3]}}],
    }
    legacy = {"contextResponses": [{"contextElement": {"id": "m", "type": "T", "attributes": [
        {"name": "P", "type": "W", "value": "1", "metadatas": [{"name": "dateObserved", "value": T[4]}]},
        {"name": "TimeInstant", "type": "ISO8601", "value": T[2]}]}}]}  # fmt: skip
    assert [(r.time_source, r.observed_at) for r in parse(ld).readings] == [("observedAt", at(3))]
    assert [(r.time_source, r.observed_at) for r in parse(legacy).readings] == [("entity", at(2))]


def test_keyvalues_entity_time_attributes_are_plain_strings():
    """In keyValues the entity's TimeInstant is a plain string and is not itself a reading."""
    result = parse({"data": [{"id": "r", "type": "Room", "t": 21, "TimeInstant": T[2]}]}, "keyValues")
    assert [(r.attr, r.time_source, r.observed_at) for r in result.readings] == [("t", "entity", at(2))]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2019-03-18T16:13:45.275Z", datetime(2019, 3, 18, 16, 13, 45, 275000, tzinfo=UTC)),
        ("2019-03-18T18:13:45.275+02:00", datetime(2019, 3, 18, 16, 13, 45, 275000, tzinfo=UTC)),
        ("2019-03-18T11:13:45-05:00", datetime(2019, 3, 18, 16, 13, 45, tzinfo=UTC)),
        ("2019-03-18T16:13:45.123456789Z", datetime(2019, 3, 18, 16, 13, 45, 123456, tzinfo=UTC)),
        ("2019-03-18T16:13:45.1Z", datetime(2019, 3, 18, 16, 13, 45, 100000, tzinfo=UTC)),
        ("2019-03-18T16:13:45", datetime(2019, 3, 18, 16, 13, 45, tzinfo=UTC)),  # no offset: UTC
        ("2019-03-18", datetime(2019, 3, 18, tzinfo=UTC)),
    ],
)
def test_iso_times_become_aware_utc(text, expected):
    """Z, offsets, long fractions and offset-less times all become the same aware UTC instant."""
    [reading] = parse({"data": [entity({"TimeInstant": {"type": "DateTime", "value": text}})]}).readings
    assert reading.observed_at == expected
    assert reading.observed_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "value",
    ["yesterday", "", "2019-13-01T00:00:00Z", "0001-01-01T00:00:00+01:00", 1552925625, None, "9" * 100],
)
def test_unparseable_attribute_time_falls_back_to_the_next_source(value):
    """An attribute's TimeInstant metadata that is no date-time is passed over: the entity's time is used."""
    body = entity({"TimeInstant": {"type": "DateTime", "value": value}}, TimeInstant=dt(2))
    body["Q"] = {"type": "Number", "value": 2, "metadata": {"TimeInstant": dt(1)}}
    result = parse({"data": [body]}, "normalized")
    assert result.rejected == []
    got = {r.attr: (r.time_source, r.observed_at) for r in result.readings}
    assert got == {"P": ("entity", utc(T[2])), "Q": ("metadata", utc(T[1]))}


def test_bad_entity_time_is_an_ordinary_attribute_and_no_time_source():
    """An entity TimeInstant that is no date-time is stored as a reading and the others fall back."""
    body = entity(TimeInstant={"type": "DateTime", "value": "soon"})
    body["Q"] = {"type": "Number", "value": 2, "metadata": {"TimeInstant": dt(1)}}
    result = parse({"data": [body]}, "normalized")
    assert result.rejected == []
    got = {r.attr: (r.time_source, r.value) for r in result.readings}
    assert got == {"P": ("receipt", 1), "Q": ("metadata", 2), "TimeInstant": ("receipt", "soon")}
