"""The on-ledger shapes (legal keys, exact names, size limit) and the error classifier's verdicts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import requests
from bigchaindb_driver.exceptions import BigchaindbException, MissingPrivateKeyError
from bigchaindb_driver.exceptions import TimeoutError as DriverTimeout
from sqlalchemy import select

from connector.ledger.errors import Verdict, classify
from connector.ledger.metadata import (
    MAX_METADATA_BYTES,
    OMITTED_KEY,
    MetadataError,
    check_legal,
    create_asset,
    create_metadata,
    omitted_digest,
    transfer_metadata,
)
from connector.ledger.testing import FakeLedger, http_error
from connector.store.models import LedgerOutbox, Meter, Window

from .helpers import add_meter, add_window, summary

IT = "Invalid transaction "
START = datetime(2019, 3, 18, 16, 0, tzinfo=UTC)


def make_meter(**kw) -> Meter:  # type: ignore[no-untyped-def]
    values = dict(
        tenant="edream",
        service_path="/meters",
        entity_id="urn:ngsi-ld:SMX:BBB6099",
        entity_type="SMX",
        serial_number=None,
        manufacturer=None,
        first_seen=START,
        chain_seed="ab" * 32,
    )
    return Meter(**{**values, **kw})


def make_window(n_attrs: int = 2) -> Window:
    return Window(
        start=START,
        end=START + timedelta(minutes=15),
        closed_at=START + timedelta(minutes=17, seconds=0.275),
        reading_count=9,
        duplicate_count=1,
        late_count=2,
        summary_json=json.dumps(summary(START, n_attrs), sort_keys=True, separators=(",", ":")),
        energy_wh="-5.025",
        fingerprint="f" * 64,
        prev_chain_hash="0" * 64,
        chain_hash="c" * 64,
    )


def test_transfer_metadata_shape() -> None:
    """The TRANSFER metadata has exactly the documented names and values, decimals as strings."""
    meta = transfer_metadata(make_meter(), make_window())
    assert meta == {
        "schema": "smartmeter-connector/window/v1",
        "meter": "urn:ngsi-ld:SMX:BBB6099",
        "window": {"start": "2019-03-18T16:00:00.000Z", "end": "2019-03-18T16:15:00.000Z"},
        "recvTime": "2019-03-18T16:17:00.275Z",
        "attributes": summary(START, 2),
        "fingerprint": "f" * 64,
        "chain_hash": "c" * 64,
        "prev_chain_hash": "0" * 64,
        "counts": {"readings": 9, "duplicates": 1, "late": 2},
    }
    assert meta["attributes"][0]["mean"] == "-20.1"


def test_create_shape_with_and_without_attributes(settings) -> None:
    """CREATE uses the reported serial number and manufacturer, else the entity id and the default."""
    plain = create_asset(make_meter(), settings.ledger)["data"]["meter"]
    assert plain == {
        "serial_number": "urn:ngsi-ld:SMX:BBB6099",
        "manufacturer": settings.ledger.default_manufacturer,
        "entity_id": "urn:ngsi-ld:SMX:BBB6099",
        "entity_type": "SMX",
        "fiware_service": "edream",
        "fiware_servicepath": "/meters",
    }
    named = create_asset(make_meter(serial_number="eDream0001", manufacturer="Smeter"), settings.ledger)
    assert named["data"]["meter"]["serial_number"] == "eDream0001"
    assert named["data"]["meter"]["manufacturer"] == "Smeter"
    meta = create_metadata(make_meter())
    assert meta == {
        "schema": "smartmeter-connector/meter/v1",
        "registered_at": "2019-03-18T16:00:00.000Z",
        "chain_seed": "ab" * 32,
    }


def test_many_attributes_fit_and_too_many_are_bounded() -> None:
    """24 attributes are written whole; 60 are cut to the byte limit, the rest counted and digested."""
    meta = transfer_metadata(make_meter(), make_window(24))
    assert len(json.dumps(meta, separators=(",", ":"))) < MAX_METADATA_BYTES and OMITTED_KEY not in meta
    window = make_window(60)
    meta = transfer_metadata(make_meter(), window)
    assert len(json.dumps(meta, separators=(",", ":"), sort_keys=True)) <= MAX_METADATA_BYTES
    full = json.loads(window.summary_json)
    kept = {e["attr"] for e in meta["attributes"]}
    left = [e for e in full if e["attr"] not in kept]
    assert meta["attributes"] == [e for e in full if e["attr"] in kept] and left
    assert meta[OMITTED_KEY] == {"count": len(left), "digest": omitted_digest(left)}


@pytest.mark.parametrize("key", ["a.b", "$where", "nul\x00", "language"])
def test_illegal_keys_are_refused(key: str) -> None:
    """Keys BigchainDB rejects (".", "$" first, NUL) or misreads ("language") are refused before signing."""
    with pytest.raises(MetadataError):
        check_legal({"ok": [{key: 1}]}, "metadata")


def test_oversized_window_is_sent_bounded_not_dead(store, clock, make_writer) -> None:
    """A window of 60 attributes is anchored with bounded metadata: nothing is marked dead."""
    from connector.ledger.outbox import enqueue_create, enqueue_transfer

    meter_id = add_meter(store, "urn:ngsi-ld:SMX:big", clock.now())
    window_id = add_window(store, meter_id, START, clock.now(), n_attrs=60)
    with store.begin() as conn:
        enqueue_create(conn, meter_id, clock.now())
        enqueue_transfer(conn, meter_id, window_id, int(START.timestamp()), clock.now())
    fake = FakeLedger()
    counts = make_writer(client_factory=lambda: fake).dispatch_once()
    assert counts.get("dead", 0) == 0 and len(fake.committed) == 2
    with store.reading() as conn:
        row = conn.execute(select(LedgerOutbox).where(LedgerOutbox.window_id == window_id)).one()
    assert row.status == "confirmed" and OMITTED_KEY in json.loads(row.tx_json)["metadata"]


@pytest.mark.parametrize(
    ("exc", "verdict"),
    [
        (requests.ConnectionError("refused"), Verdict.TRANSIENT),
        (requests.ReadTimeout("slow"), Verdict.TRANSIENT),
        (DriverTimeout([]), Verdict.TRANSIENT),
        (http_error(500, "commit timeout"), Verdict.TRANSIENT),
        (http_error(502), Verdict.TRANSIENT),
        (http_error(503), Verdict.TRANSIENT),
        (http_error(504), Verdict.TRANSIENT),
        (http_error(429), Verdict.TRANSIENT),
        (
            http_error(400, "Invalid transaction (InvalidSignature): Transaction signature is invalid."),
            Verdict.PERMANENT,
        ),
        (http_error(400, IT + "schema: 'x' is not valid"), Verdict.PERMANENT),
        (
            http_error(400, 'Invalid transaction (DoubleSpend): tx "ab" spends inputs twice'),
            Verdict.PERMANENT,
        ),
        (
            http_error(400, "Invalid transaction (DuplicateTransaction): transaction `ab` already exists"),
            Verdict.CONFLICT,
        ),
        (
            http_error(400, "Invalid transaction (DoubleSpend): input `ab` was already spent"),
            Verdict.CONFLICT,
        ),
        (
            http_error(400, "Invalid transaction (InputDoesNotExist): input `ab` doesn't exist"),
            Verdict.CONFLICT,
        ),
        (TimeoutError(), Verdict.TRANSIENT),  # the driver's connection.py raises the builtin one
        (requests.exceptions.ChunkedEncodingError("broke off"), Verdict.TRANSIENT),
        (requests.exceptions.InvalidURL("bad node URL"), Verdict.TRANSIENT),
        (http_error(401), Verdict.TRANSIENT),
        (MissingPrivateKeyError(), Verdict.PERMANENT),
        (TypeError("Object of type Decimal is not JSON serializable"), Verdict.PERMANENT),
        (BigchaindbException("something new"), Verdict.PERMANENT),
        (requests.exceptions.RetryError("no evidence"), Verdict.PERMANENT),
        (KeyError("id"), Verdict.PERMANENT),
    ],
)
def test_classifier(exc: BaseException, verdict: Verdict) -> None:
    """Each BigchainDB failure gets the documented verdict; one without evidence is permanent."""
    assert classify(exc).verdict is verdict


@pytest.mark.parametrize("exc", [TypeError("x"), BigchaindbException("y"), AttributeError("z")])
def test_unknown_errors_are_named_unknown(exc: BaseException) -> None:
    """An error without evidence is permanent and its reason says it is unknown (for the alert)."""
    found = classify(exc)
    assert found.verdict is Verdict.PERMANENT and found.reason.startswith("unknown error: ")
