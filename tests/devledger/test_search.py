"""Assets and metadata text search with MongoDB $text semantics."""

from __future__ import annotations

from .conftest import create, post


def ids(bdb, search: str, limit: int = 0, table: str = "assets") -> set[str]:
    """Ids found by an assets or metadata search."""
    endpoint = bdb.assets if table == "assets" else bdb.metadata
    return {item["id"] for item in endpoint.get(search=search, limit=limit)}


def test_asset_search_semantics(ledger, bdb, alice) -> None:
    """Case/diacritic insensitive, stemmed, ORed terms, phrases, negation, best match first, limit."""
    docs = {
        "cafe": create(alice, {"name": "Café Central", "kind": "meter"}),
        "meters": create(alice, {"name": "Smart Meters Hall", "tags": ["north", "grid"]}),
        "grid": create(alice, {"nested": {"deep": "power grid station"}}),
        "other": create(alice, {"name": "unrelated thing"}),
    }
    for tx in docs.values():
        post(ledger, tx)
    tid = {name: tx["id"] for name, tx in docs.items()}
    assert ids(bdb, "CAFE") == {tid["cafe"]}
    assert ids(bdb, "meter") == {tid["cafe"], tid["meters"]}
    assert ids(bdb, "central grid") == {tid["cafe"], tid["meters"], tid["grid"]}
    assert ids(bdb, '"power grid"') == {tid["grid"]}
    assert ids(bdb, '"grid power"') == set()
    assert ids(bdb, "grid -station") == {tid["meters"]}
    assert ids(bdb, "-grid") == set()
    assert ids(bdb, "nothingmatches") == set()
    assert len(bdb.assets.get(search="meter grid", limit=1)) == 1
    best = bdb.assets.get(search="smart meters hall")[0]
    assert best == {"data": docs["meters"]["asset"]["data"], "id": tid["meters"]}


def test_metadata_search(ledger, bdb, alice) -> None:
    """Metadata search returns {id, metadata} of the transactions whose metadata strings match."""
    tx = create(alice, metadata={"window": "reading window closed", "n": 3})
    post(ledger, tx)
    post(ledger, create(alice, metadata={"window": "open"}))
    assert bdb.metadata.get(search="closed") == [{"id": tx["id"], "metadata": tx["metadata"]}]
