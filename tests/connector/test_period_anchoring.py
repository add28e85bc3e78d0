"""From notifications to an anchored tenant root: ingest, close, build the period trees, anchor the
windows and the roots on a live dev ledger, and prove a window through the query API."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from connector.closer import close_due_windows
from connector.core.trees import Proof
from connector.keystore import Keystore
from connector.ledger.client import DriverClient
from connector.ledger.root_writer import RootWriter
from connector.ledger.writer import LedgerWriter
from connector.periods import build_due_periods
from connector.proofcheck import check_ledger
from connector.store.models import LedgerOutbox
from connector.store.tree_models import PeriodRoot, RootOutbox
from tests.connector import payloads as p

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def _until_confirmed(store, dispatch, table) -> None:  # type: ignore[no-untyped-def]
    for _ in range(60):
        dispatch()
        with store.reading() as conn:
            statuses = conn.execute(select(table.status)).scalars().all()
        if statuses and all(s == "confirmed" for s in statuses):
            return
        time.sleep(0.1)
    raise AssertionError(statuses)


def _anchor_all(store, settings, keystore, url: str) -> None:  # type: ignore[no-untyped-def]
    """Run the meters' writer, then the root writer, until every row of each outbox is confirmed."""
    real = lambda: datetime.now(UTC) + timedelta(days=3650)  # noqa: E731 - rows are due (queued in 2026)
    with LedgerWriter(settings.ledger, store, keystore, [url], real) as writer:
        _until_confirmed(store, writer.dispatch_once, LedgerOutbox)
    _until_confirmed(store, RootWriter(settings, store, keystore, [url], real).dispatch_once, RootOutbox)


def test_notified_readings_end_in_an_anchored_root_that_proves_each_window(client, store, settings, ledger):
    """Three meters, four windows: 4 window roots and 1 day root, each on the ledger as the tenant asset's
    TRANSFER; the API's proof of every window verifies and matches the ledger."""
    for meter in range(3):
        for minute in range(0, 60, 5):
            when = (T0 + timedelta(minutes=minute)).isoformat().replace("+00:00", "Z")
            body = p.normalized(f"urn:ngsi-ld:SMX:A{meter}", when, 100 * (meter + 1) + minute)
            assert client.post("/notify", data=body, headers=p.ORION_HEADERS).status_code == 200
    later = T0 + timedelta(days=1, hours=1)
    assert len(close_due_windows(store, settings, later)) == 12
    built = build_due_periods(store, settings, later)
    assert sorted(b.period.kind for b in built) == ["day"] + ["window"] * 4
    keystore = Keystore(settings.keystore.path)
    _anchor_all(store, settings, keystore, ledger.url)
    with store.reading() as conn:
        assert conn.execute(select(PeriodRoot.id)).all()
    reader = DriverClient([ledger.url], settings.ledger)
    for meter in range(3):
        for w in range(4):
            start = (T0 + timedelta(minutes=15 * w)).isoformat()
            r = client.get(
                f"/v1/meters/urn:ngsi-ld:SMX:A{meter}/proof",
                query_string={"window": start},
            )
            assert r.status_code == 200, r.json
            proof = Proof.from_dict(r.json)
            assert proof.verify()
            assert check_ledger(proof, r.json["ledger"]["tx_id"], reader).ok


def test_the_running_connector_builds_and_anchors_period_roots(settings, clock):
    """A started connector (embedded dev ledger, scheduled jobs) builds the trees of closed periods and
    anchors every root on its ledger, beside the meters' TRANSFERs, with no call from outside."""
    from connector.service import Connector
    from tests.api import history as h

    quick = {"ledger.embedded_port": 0, "ledger.embedded_ws_port": 0, "ledger.dispatch_interval": 0.2}
    base = settings.replace(
        trees=settings.trees.__class__(enabled=True, interval=0.2, delay=0),
        ledger=settings.ledger.__class__(**{**settings.ledger.__dict__, **_ledger(quick)}),
    )
    clock.current = h.T0 + timedelta(days=2)
    connector = Connector(base, clock.now).start(serve_http=False)
    try:
        for n in range(2):
            meter = h.add_meter(connector.store, f"urn:m:{n}", "", "/a")
            h.close_windows(connector.store, base, meter, 3)
        for _ in range(300):
            with connector.store.reading() as conn:
                roots = conn.execute(select(RootOutbox.status)).scalars().all()
                meters = conn.execute(select(LedgerOutbox.status)).scalars().all()
            if len(roots) == 5 and set(roots) == {"confirmed"} and set(meters) == {"confirmed"}:
                break
            time.sleep(0.1)
        assert sorted(roots) == ["confirmed"] * 5  # the tenant's CREATE, 3 window roots and 1 day root
        assert len(meters) == 2 * 4
    finally:
        connector.stop()


def _ledger(overrides: dict[str, object]) -> dict[str, object]:
    return {key.removeprefix("ledger."): value for key, value in overrides.items()}


def test_a_tenant_whose_root_create_died_of_its_key_gets_its_roots_anchored(client, store, settings, ledger):
    """A store as a connector made before keys were checked could leave it: the tenant's root asset key is
    one BigchainDB's schema rejects (42 base58 characters) and its CREATE dead with the ledger's schema
    error. The root writer gives the tenant a new key and anchors the CREATE and every root after it."""
    from bigchaindb_driver.crypto import generate_keypair
    from sqlalchemy import insert, update

    from connector.keystore import KeyPair, ledger_accepts
    from connector.ledger.roots import tenant_asset, tenant_metadata, tenant_ref
    from connector.ledger.transactions import serialize, sign_create
    from connector.store.tree_models import TenantAsset
    from tests.ledger.test_rejected_keys import REJECTED_SEED, SCHEMA_ERROR

    for minute in range(0, 30, 5):
        when = (T0 + timedelta(minutes=minute)).isoformat().replace("+00:00", "Z")
        body = p.normalized("urn:ngsi-ld:SMX:R0", when, 100 + minute)
        assert client.post("/notify", data=body, headers=p.ORION_HEADERS).status_code == 200
    later = T0 + timedelta(days=1, hours=1)
    assert close_due_windows(store, settings, later)
    assert build_due_periods(store, settings, later)
    keystore = Keystore(settings.keystore.path)
    with store.reading() as conn:
        tenant = conn.execute(select(RootOutbox.tenant)).scalars().first()
    bad = generate_keypair(REJECTED_SEED)
    assert not ledger_accepts(bad.public_key)
    keystore._open()
    keystore._overwrite("meter", tenant_ref(tenant), bad.public_key, bad.private_key.encode())
    bad_tx = sign_create(
        KeyPair(bad.public_key, bad.private_key), tenant_asset(tenant), tenant_metadata(tenant, T0)
    )
    with store.begin() as conn:
        conn.execute(insert(TenantAsset).values(tenant=tenant, public_key=bad.public_key))
        conn.execute(
            update(RootOutbox)
            .where(RootOutbox.tenant == tenant, RootOutbox.operation == "CREATE")
            .values(
                status="dead",
                attempts=1,
                tx_id=bad_tx["id"],
                tx_json=serialize(bad_tx),
                last_error=SCHEMA_ERROR,
            )
        )
    _anchor_all(store, settings, keystore, ledger.url)
    with store.reading() as conn:
        asset = conn.execute(select(TenantAsset.__table__).where(TenantAsset.tenant == tenant)).one()
    assert asset.public_key != bad.public_key and ledger_accepts(asset.public_key)
    created = DriverClient([ledger.url], settings.ledger).retrieve(asset.asset_id)
    assert created is not None and created["outputs"][0]["public_keys"] == [asset.public_key]
