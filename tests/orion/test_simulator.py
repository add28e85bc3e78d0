"""The Orion-exact simulator against a loopback receiver, cross-checked with the connector's parser."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from demo.simulator import SimulationConfig, SimulationError, simulate
from ngsi.headers import resolve_headers
from ngsi.parse import parse_notification

from .receiver import Receiver, ServedReceiver

START = datetime(2026, 6, 15, 10, 0, tzinfo=UTC)  # a June morning: PV producing
CORRELATOR = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}; cbnotif=1$")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A fresh receiver on 127.0.0.1."""
    served = ServedReceiver()
    yield served.receiver
    served.stop()


def run(receiver: Receiver, **kw) -> tuple:
    values: dict[str, Any] = {
        "meters": 2,
        "rounds": 1,
        "speedup": 0,
        "start": START,
        "seed": 7,
        "target": receiver.url + "/notify",
    }
    values.update(kw)
    report = simulate(SimulationConfig(**values))
    return report, receiver.got


def test_normalized_headers_and_shape_are_orions(receiver):
    """normalized: Orion's headers exactly, one entity per notification shaped as reference/orion.md."""
    report, got = run(receiver, tenant="tk", service_path="/terni/district4")
    assert report.notifications == 2 and len(got) == 2
    h = got[0].headers
    assert h["Content-Type"] == "application/json; charset=utf-8"
    assert h["Fiware-Service"] == "tk"
    assert h["Fiware-Servicepath"] == "/terni/district4"
    assert h["Ngsiv2-Attrsformat"] == "normalized"
    assert h["User-Agent"].startswith("orion/4.")
    assert CORRELATOR.match(h["Fiware-Correlator"])
    body = got[0].body
    assert re.fullmatch(r"[0-9a-f]{24}", body["subscriptionId"])
    (entity,) = body["data"]
    ts = "2026-06-15T10:00:00.000Z"
    assert entity["id"] == "urn:ngsi-ld:SMX:SIM00001" and entity["type"] == "SMX"
    assert entity["P"]["type"] == "Number" and isinstance(entity["P"]["value"], float)
    assert entity["P"]["metadata"] == {"TimeInstant": {"type": "DateTime", "value": ts}}
    assert entity["TimeInstant"] == {"type": "DateTime", "value": ts, "metadata": {}}
    assert entity["serialNumber"] == {"type": "Text", "value": "SIM00001", "metadata": {}}
    assert set(entity) == {"id", "type", "P", "E", "TimeInstant", "serialNumber", "manufacturer"}
    assert got[0].raw.startswith(b'{"subscriptionId":"')  # compact JSON, as Orion writes it


def test_default_tenant_sends_no_fiware_service(receiver):
    """Orion sends no Fiware-Service header at all for the default tenant."""
    _, got = run(receiver)
    assert "Fiware-Service" not in got[0].headers and got[0].headers["Fiware-Servicepath"] == "/"


def test_key_values_shape(receiver):
    """keyValues: plain values, TimeInstant as a string, header says keyValues."""
    _, got = run(receiver, format="keyValues")
    (entity,) = got[0].body["data"]
    assert got[0].headers["Ngsiv2-Attrsformat"] == "keyValues"
    assert entity["TimeInstant"] == "2026-06-15T10:00:00.000Z" and isinstance(entity["E"], float)


def test_legacy_is_figure_16_and_batches(receiver):
    """legacy: NGSIv1 contextResponses with string values, no Ngsiv2-AttrsFormat; --batch groups meters."""
    report, got = run(receiver, format="legacy", meters=5, batch=3)
    assert [len(g.body["contextResponses"]) for g in got] == [3, 2]
    assert report.readings == 5
    assert "Ngsiv2-Attrsformat" not in got[0].headers
    response = got[0].body["contextResponses"][0]
    assert response["statusCode"] == {"code": "200", "reasonPhrase": "OK"}
    element = response["contextElement"]
    assert (element["type"], element["isPattern"], element["id"]) == (
        "SMX",
        "false",
        "urn:ngsi-ld:SMX:SIM00001",
    )
    p = element["attributes"][0]
    assert (p["name"], p["type"]) == ("P", "W") and isinstance(p["value"], str)
    float(p["value"])
    assert p["metadatas"] == [{"name": "TimeInstant", "type": "ISO8601", "value": "2026-06-15T10:00:00.000Z"}]
    assert got[0].body["originator"] == "localhost"


def test_ld_notification_shape_and_headers(receiver):
    """ld: what Orion-LD sends: ?subscriptionId= on the URL, urn:ngsi-ld:subscription: ids, NGSILD-Tenant,
    Link, User-Agent orionld/<version>, Ngsild-Attribute-Format, no Fiware-Correlator; Properties."""
    _, got = run(receiver, format="ld", tenant="t1")
    g = got[0]
    body = g.body
    assert g.query["subscriptionId"] == body["subscriptionId"]
    assert body["subscriptionId"].startswith("urn:ngsi-ld:subscription:")
    assert g.headers["Ngsild-Tenant"] == "t1" and "ngsi-ld-core-context" in g.headers["Link"]
    assert re.fullmatch(r"orionld/\d+\.\d+\.\d+", g.headers["User-Agent"])
    assert g.headers["Ngsild-Attribute-Format"] == "Normalized"
    assert "Fiware-Correlator" not in g.headers
    assert "Fiware-Service" not in g.headers and "Ngsiv2-Attrsformat" not in g.headers
    assert body["type"] == "Notification" and body["id"].startswith("urn:ngsi-ld:Notification:")
    p = body["data"][0]["P"]
    assert (p["type"], p["unitCode"], p["observedAt"]) == ("Property", "WTT", "2026-06-15T10:00:00.000Z")


@pytest.mark.parametrize("fmt", ["normalized", "keyValues", "legacy", "ld"])
def test_every_format_parses_to_the_same_readings(receiver, fmt):
    """The connector's own parser reads P and E of every meter, timed by the observation, in each format."""
    _, got = run(receiver, format=fmt, meters=3)
    readings = []
    for g in got:
        parsed = parse_notification(g.body, resolve_headers(g.headers), START.replace(hour=23))
        readings += parsed.readings
        assert parsed.rejected == []
    by_attr = Counter(r.attr for r in readings if r.attr in ("P", "E"))
    assert by_attr == {"P": 3, "E": 3}
    assert {r.observed_at for r in readings if r.attr == "P"} == {START}


def test_same_seed_same_notifications_other_seed_differs(receiver):
    """With --seed the bodies and headers sent are identical run to run; another seed differs."""
    _, first = run(receiver, meters=4, rounds=3, duplicates=0.3, gaps=0.2, late=0.2, late_delay=60)
    snapshot = [(g.raw, g.headers["Fiware-Correlator"]) for g in first]
    receiver.got.clear()
    _, second = run(receiver, meters=4, rounds=3, duplicates=0.3, gaps=0.2, late=0.2, late_delay=60)
    assert [(g.raw, g.headers["Fiware-Correlator"]) for g in second] == snapshot
    receiver.got.clear()
    _, third = run(receiver, meters=4, rounds=3, seed=8)
    assert [g.raw for g in third] != [raw for raw, _ in snapshot]


def test_injected_duplicates_late_and_gaps_are_what_arrives(receiver):
    """Report counts equal what the receiver saw: repeated bodies, out-of-order readings, missing ones."""
    report, got = run(receiver, meters=20, rounds=10, duplicates=0.1, late=0.1, gaps=0.1, late_delay=180)
    bodies = Counter(g.raw for g in got)
    assert sum(n - 1 for n in bodies.values()) == report.duplicates > 0
    arrivals = [g.body["data"][0] for g in got]
    distinct = {(e["id"], e["TimeInstant"]["value"]) for e in arrivals}
    assert len(distinct) == 200 - report.gaps == report.readings
    assert 5 <= report.gaps <= 40 and 5 <= report.late <= 40
    latest = ""
    late_seen = set()
    for e in arrivals:
        ts = e["TimeInstant"]["value"]
        if ts < latest:
            late_seen.add((e["id"], ts))
        latest = max(latest, ts)
    assert len(late_seen) == report.late
    assert report.notifications == len(got) == report.readings + report.duplicates
    assert report.status_counts == {204: len(got)}


def test_non_2xx_answers_and_transport_failures_are_reported(receiver):
    """400 answers are counted by status (no readings delivered); a dead target counts failures."""
    receiver.status = 400
    report, _ = run(receiver, meters=3)
    assert report.status_counts == {400: 3} and report.readings == 0
    dead = simulate(
        SimulationConfig(target="http://127.0.0.1:9/notify", meters=2, rounds=1, speedup=0, seed=1)
    )
    assert dead.failures == 2 and dead.failure_reasons == {"ConnectionError": 2}


def test_compressed_time_paces_rounds_on_the_wall_clock(receiver):
    """interval 60 s at speedup 15: a round every 4 wall seconds; --duration 10 gives rounds at 0, 4, 8."""
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    cfg = SimulationConfig(
        target=receiver.url + "/n", meters=1, interval=60, speedup=15, duration=10, start=START
    )
    report = simulate(cfg, wall=lambda: now[0], sleep=sleep)
    assert report.rounds == 3 and slept == [4.0, 4.0]
    assert report.sim_end == START.replace(minute=2)


def test_rate_and_concurrency_deliver_everything(receiver):
    """--rate caps notifications per second; with 4 workers every notification still arrives once."""
    report, got = run(receiver, meters=10, rounds=2, rate=100, concurrency=4)
    assert report.notifications == len(got) == 20
    assert report.elapsed >= 0.15  # 20 notifications at 100/s take at least 0.19 s
    assert len({g.raw for g in got}) == 20


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"format": "values"}, "--format"),
        ({"gaps": 1.5}, "--gaps"),
        ({"rounds": None}, "--rounds or --duration"),
        ({"batch": 2}, "--batch"),
        ({"target": "ftp://x"}, "--target"),
    ],
)
def test_bad_configuration_is_refused(receiver, kw, message):
    """An unusable option raises SimulationError naming it, before anything is sent."""
    with pytest.raises(SimulationError, match=message):
        run(receiver, **kw)
    assert receiver.got == []


def test_prosumers_export_at_a_june_noon_consumers_always_import(receiver):
    """P is - for import: PV households go positive in June sunshine, pure consumers never do."""
    _, got = run(receiver, meters=8, prosumers=1.0)
    assert all(g.body["data"][0]["P"]["value"] > 0 for g in got)
    receiver.got.clear()
    _, got = run(receiver, meters=8, prosumers=0.0, rounds=3)
    assert all(g.body["data"][0]["P"]["value"] < 0 for g in got)


def test_energy_register_only_grows(receiver):
    """E is a cumulative import register: it never decreases from one round to the next."""
    _, got = run(receiver, meters=3, rounds=6, prosumers=0.5)
    series: dict[str, list[float]] = {}
    for g in got:
        e = g.body["data"][0]
        series.setdefault(e["id"], []).append(e["E"]["value"])
    assert all(s == sorted(s) and len(s) == 6 for s in series.values())
