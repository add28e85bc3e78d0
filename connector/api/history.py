"""GET /v1/meters/{entity_id}/history: each window's TRANSFER id, block height and metadata.

From the local index of confirmed transactions by default; `source=ledger` reads BigchainDB through the
driver; `aggregate=hour|day` folds the windows (see folding.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flask import Response

from connector.api import folding, present, queries
from connector.api.base import ApiBlueprint, request_scope
from connector.api.buckets import aggregated
from connector.api.errors import NotFound
from connector.api.schemas import HistoryArgs, HistoryPageSchema
from connector.audit import DriverLedger
from connector.audit_cache import CachedLedger
from connector.context import services
from connector.core.aggregate import window_energy_wh
from connector.ledger.client import DriverClient

blp = ApiBlueprint("history", __name__, url_prefix="/v1/meters", description="Anchored history of a meter")


@blp.route("/<path:entity_id>/history")
@blp.arguments(HistoryArgs, location="query", as_kwargs=True)
@blp.response(200, HistoryPageSchema)
@blp.errors(404, 409, 503)
def history(entity_id: str, **args: Any) -> Response:
    """The meter's anchored windows, one page at a time, optionally folded into hours or days."""
    page: dict[str, Any] = {
        "entityId": entity_id,
        "source": args["source"],
        "limit": args["limit"],
        "offset": args["offset"],
        "order": args["order"],
        "aggregate": args.get("aggregate"),
    }
    with services().store.reading() as conn:
        meter = queries.find_meter(conn, request_scope(), entity_id)
        if args.get("aggregate"):
            page.update(_aggregated(conn, meter, args))
        elif args["source"] == "ledger":
            page.update(_from_ledger(meter, args))
        else:
            total, rows = queries.history_page(
                conn, meter.id, args["from_"], args["to"], args["limit"], args["offset"], args["order"]
            )
            items = [present.history_item(r, _metadata(conn, r, meter)) for r in rows]
            page.update(total=total, windows=items)
    return present.json_response(page)


def _metadata(conn: Any, row: Any, meter: Any) -> Any:
    return present.stored_metadata(row, meter, lambda: queries.window_row(conn, row.id))


def _aggregated(conn: Any, meter: Any, args: dict[str, Any]) -> dict[str, Any]:
    buckets: list[Any]
    if args["source"] == "ledger":
        buckets = [b.as_dict() for b in folding.fold(_ledger_fold_items(meter, args), args["aggregate"])]
    else:
        cache = services().folds
        buckets = aggregated(conn, meter.id, args["from_"], args["to"], args["aggregate"], cache)
    if args["order"] == "desc":
        buckets.reverse()
    return {"total": len(buckets), "buckets": buckets[args["offset"] : args["offset"] + args["limit"]]}


def _from_ledger(meter: Any, args: dict[str, Any]) -> dict[str, Any]:
    pairs = _ledger_pairs(ledger_reader(), meter, args)
    if args["order"] == "desc":
        pairs.reverse()
    chosen = pairs[args["offset"] : args["offset"] + args["limit"]]
    heights = block_heights([w.tx_id for w, _tx in chosen], ledger_reader)
    items = [
        {"start": w.start, "end": w.end, "txId": w.tx_id, "blockHeight": height, "metadata": tx["metadata"]}
        for (w, tx), height in zip(chosen, heights, strict=True)
    ]
    return {"total": len(pairs), "windows": items}


# BigchainDB answers one block lookup per request; a page asks up to this many at a time.
BLOCK_LOOKUP_THREADS = 8


def block_heights(tx_ids: list[str], new_reader: Callable[[], DriverLedger]) -> list[int | None]:
    """The block height of each of `tx_ids`, in order, looked up by up to BLOCK_LOOKUP_THREADS threads;
    raises LedgerReadError. The readers share the bounded client of `ledger_reader` (urllib3's pool is
    thread-safe), so the threads add no connections beyond its bound."""
    workers = min(BLOCK_LOOKUP_THREADS, len(tx_ids))
    if workers <= 1:
        reader = new_reader()
        return [reader.block_height(tx_id) for tx_id in tx_ids]
    readers = [new_reader() for _ in range(workers)]
    chunks = [tx_ids[i::workers] for i in range(workers)]

    def lookup(i: int) -> list[int | None]:
        return [readers[i].block_height(tx_id) for tx_id in chunks[i]]

    with ThreadPoolExecutor(workers, thread_name_prefix="block-lookup") as pool:
        found = list(pool.map(lookup, range(workers)))
    heights: list[int | None] = [None] * len(tx_ids)
    for i, chunk_heights in enumerate(found):
        heights[i::workers] = chunk_heights
    return heights


def _ledger_fold_items(meter: Any, args: dict[str, Any]) -> Iterator[folding.FoldItem]:
    for w, tx in _ledger_pairs(ledger_reader(), meter, args):
        energy = window_energy_wh(w.summary)
        readings = int((tx["metadata"].get("counts") or {}).get("readings", 0))
        yield w.start, readings, None if energy is None else str(energy), w.summary


def _ledger_pairs(reader: DriverLedger, meter: Any, args: dict[str, Any]) -> list[Any]:
    if not meter.asset_id:
        return []
    from_, to = args["from_"], args["to"]
    return [
        (w, tx)
        for w, tx in reader.transfers(meter.asset_id)
        if (from_ is None or w.start >= from_) and (to is None or w.start < to)
    ]


def ledger_reader() -> DriverLedger:
    """A DriverLedger on the connector's BigchainDB nodes, over the process's shared bounded client
    (`Services.ledger_reads`); NotFound (404) when no ledger is configured."""
    return DriverLedger(_shared_client())


def chain_reader() -> CachedLedger:
    """A CachedLedger over the shared client and the process's chain cache (`Services.chains`); NotFound
    (404) when no ledger is configured."""
    return CachedLedger(_shared_client(), services().chains)


def _shared_client() -> DriverClient:
    svc = services()
    urls = svc.ledger_urls or svc.settings.ledger.urls
    if not urls or not svc.settings.ledger.enabled:
        raise NotFound("no ledger configured (ledger.urls, or the embedded dev ledger)")
    return svc.ledger_reads.client(urls, svc.settings.ledger)
