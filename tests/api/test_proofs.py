"""Inclusion proofs from the store (GET /v1/meters/{id}/proof), `verify --proof FILE` against the live
dev ledger, the summary directory (GET /v1/catalog) and the tamper experiment over period roots."""

from __future__ import annotations

import io
import json
import random
from argparse import Namespace
from collections.abc import Callable

import pytest
from sqlalchemy import select, update

from connector.commands.verify import handler
from connector.core.trees import Proof, periods_of
from connector.keystore import Keystore
from connector.store.models import Window
from connector.store.tree_models import PeriodRoot
from connector.trees_audit import audit_roots
from tests.api import history as h
from tests.api import portfolio as pf
from tests.api import tamper

T1 = {"Fiware-Service": "t1"}


@pytest.fixture
def anchored_portfolio(store, api_settings, ledger, tmp_path) -> Callable[..., pf.Portfolio]:
    """A portfolio of tenant t1 whose windows and period roots are all anchored on the dev ledger."""

    def make(n: int = 4) -> pf.Portfolio:
        keystore = Keystore(tmp_path / "keys")
        p = pf.add_portfolio(store, api_settings, n=n)
        h.anchor(store, api_settings, keystore, [ledger.url])
        pf.build(store, api_settings)
        pf.anchor_roots(store, api_settings, keystore, [ledger.url])
        return p

    return make


def _proof(client, entity_id: str, start, period: str = "window", headers=T1):  # type: ignore[no-untyped-def]
    return client.get(
        f"/v1/meters/{entity_id}/proof",
        query_string={"window": start.isoformat(), "period": period},
        headers=headers,
    )


def test_every_windows_proof_verifies_against_its_anchored_root(anchored_portfolio, client, store) -> None:
    """Each window's proof (window and day tree) leads to the stored root and names its confirmed TRANSFER."""
    p = anchored_portfolio()
    with store.reading() as conn:
        roots = {(r.kind, int(r.start.timestamp())): r.root for r in conn.execute(select(PeriodRoot))}
    for entity_id in p.meters:
        for start in p.starts:
            for kind in ("window", "day"):
                r = _proof(client, entity_id, start, kind)
                assert r.status_code == 200, r.json
                proof = Proof.from_dict(r.json)
                assert proof.verify() and proof.leaf.entity_id == entity_id
                assert r.json["root"] == roots[(kind, proof.period.start)]
                assert r.json["ledger"]["status"] == "confirmed" and len(r.json["ledger"]["tx_id"]) == 64


def test_proof_is_tenant_scoped_and_404_without_a_window_or_tree(anchored_portfolio, client, store) -> None:
    """Another tenant sees no meter; a start without a window, or a period not built yet, is a 404."""
    p = anchored_portfolio()
    assert _proof(client, "urn:m:hq", p.starts[0], headers={"Fiware-Service": "t2"}).status_code == 404
    missing = _proof(client, "urn:m:hq", p.starts[-1] + (p.starts[1] - p.starts[0]))
    assert missing.status_code == 404 and "no closed window" in missing.json["description"]
    bad = client.get("/v1/meters/urn:m:hq/proof", query_string={"window": "x"}, headers=T1)
    assert bad.status_code == 400


def test_a_window_closed_after_its_tree_was_built_has_no_proof(store, api_settings, client) -> None:
    """A window closed after its period's tree was built is in no tree: 404 saying so, and the proofs of
    the windows in the tree are unchanged."""
    p = pf.add_portfolio(store, api_settings, n=2)
    pf.build(store, api_settings)
    late = h.add_meter(store, "urn:m:late", "t1", "/north/g1")
    h.close_windows(store, api_settings, late, 1, start=p.starts[0])
    with store.begin() as conn:
        conn.execute(
            update(Window).where(Window.meter_id == late).values(closed_at=pf.LATER.replace(year=2030))
        )
    r = _proof(client, "urn:m:late", p.starts[0])
    assert r.status_code == 404 and "in no tree" in r.json["description"]
    assert _proof(client, "urn:m:001", p.starts[0]).status_code == 200
    assert pf.build(store, api_settings) == []  # built once: the late window does not rebuild the period


def test_a_period_whose_every_window_left_its_tree_is_a_409_not_a_500(store, api_settings, client) -> None:
    """Every window of a built period altered so none is in its tree any more (here: each one's closed_at
    moved past the build): the store no longer gives the stored root, so the proof says so (409)."""
    p = pf.add_portfolio(store, api_settings, n=2)
    pf.build(store, api_settings)
    with store.begin() as conn:
        conn.execute(
            update(Window).where(Window.start == p.starts[0]).values(closed_at=pf.LATER.replace(year=2030))
        )
    r = _proof(client, "urn:m:001", p.starts[0])
    assert r.status_code == 409 and "no longer give" in r.json["description"], r.json


def _write(tmp_path, body: dict) -> str:
    path = tmp_path / "proof.json"
    path.write_text(json.dumps(body))
    return str(path)


def _check(path: str, settings, **kw) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    out = io.StringIO()
    args = Namespace(proof=path, ledger_url=kw.get("ledger_url"), rpc_url=kw.get("rpc_url"), contract=None)
    return handler(args, settings, out), out.getvalue()


def test_verify_proof_checks_a_proof_against_the_ledger_only(
    anchored_portfolio, client, api_settings, ledger, tmp_path
) -> None:
    """`verify --proof FILE` with no store: ok for the API's proof; a changed energy, root or transaction
    id fails and says where."""
    p = anchored_portfolio(n=2)
    body = _proof(client, "urn:m:001", p.starts[1]).json
    no_store = api_settings.replace(store=api_settings.store.__class__(url="sqlite:////nonexistent/x.db"))
    code, text = _check(_write(tmp_path, body), no_store, ledger_url=[ledger.url])
    assert code == 0 and "proof: OK" in text and "ledger    ok" in text
    forged = json.loads(json.dumps(body))
    forged["leaf"]["energy_wh"] += 1
    code, text = _check(_write(tmp_path, forged), no_store, ledger_url=[ledger.url])
    assert code == 1 and "does not lead to the root" in text
    other = _proof(client, "urn:m:001", p.starts[0]).json
    swapped = {**body, "ledger": other["ledger"]}  # the other interval's root transaction
    code, text = _check(_write(tmp_path, swapped), no_store, ledger_url=[ledger.url])
    assert code == 1 and "root: ledger" in text
    assert _check(str(tmp_path / "absent.json"), no_store)[0] == 2


def test_catalog_lists_what_exists_per_meter_and_period_without_readings(anchored_portfolio, client) -> None:
    """Per meter and day: windows, attributes with units, meter and tenant roots, the root's transaction;
    filtered by type, service-path prefix (whole segments) and time; scoped to the tenant."""
    p = anchored_portfolio(n=8)
    body = client.get("/v1/catalog", headers=T1).json
    assert body["total"] == 8  # 4 meters x 2 days
    first = body["entries"][0]
    assert first["windows"] == 4 and first["attributes"] == [
        {"attr": "E", "unit": "kWh"},
        {"attr": "P", "unit": "W"},
    ]
    assert first["ledger"]["status"] == "confirmed" and "readings" not in json.dumps(body)
    north = client.get("/v1/catalog", query_string={"servicePath": "/north"}, headers=T1).json
    assert {e["entityId"] for e in north["entries"]} == {"urn:m:001", "urn:m:002"}
    assert client.get("/v1/catalog", query_string={"servicePath": "/nor"}, headers=T1).json["total"] == 0
    assert client.get("/v1/catalog", query_string={"type": "other"}, headers=T1).json["total"] == 0
    day2 = client.get("/v1/catalog", query_string={"from": p.starts[4].isoformat()}, headers=T1).json
    assert day2["total"] == 4
    windows = client.get("/v1/catalog", query_string={"period": "window"}, headers=T1).json
    assert windows["total"] == 32 and all(e["windows"] == 1 for e in windows["entries"])
    assert client.get("/v1/catalog", headers={"Fiware-Service": "t2"}).json["total"] == 0


def test_tamper_changes_exactly_the_affected_roots_and_untouched_proofs_verify(
    anchored_portfolio, client, store, api_settings, ledger, tmp_path
) -> None:
    """After salt-and-pepper noise in some windows of one meter, the recomputed tenant root differs for
    exactly the window periods and days of those windows; every untouched window's proof still verifies
    against its anchored root on the ledger."""
    p = anchored_portfolio(n=8)
    with store.reading() as conn:
        assert all(a.matches for a in audit_roots(conn, api_settings, "t1"))
    altered = tamper.salt_and_pepper(store, p.meters["urn:m:002"], p.starts, 0.25, random.Random(7))
    affected = {q for s in altered for q in periods_of(int(s.timestamp()), api_settings.window.length)}
    with store.reading() as conn:
        audits = audit_roots(conn, api_settings, "t1")
    assert {a.period for a in audits if not a.matches} == affected
    assert len(audits) == 10 and len(affected) < 10
    for entity_id in p.meters:
        for start in p.starts:
            if entity_id == "urn:m:002" and start in altered:
                continue
            body = _proof(client, entity_id, start).json
            code, text = _check(_write(tmp_path, body), api_settings, ledger_url=[ledger.url])
            assert code == 0, text
