"""GET /v1/meters/{entity_id}/verify (tamper verification against the ledger) and /settlement."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from flask import Response

from connector.api import present, queries
from connector.api.base import ApiBlueprint, request_scope
from connector.api.errors import BadParameter, NotFound
from connector.api.history import chain_reader
from connector.api.schemas import RangeArgs, SettlementSchema, VerifyArgs, VerifySchema
from connector.audit import (
    LedgerHistory,
    WindowVerdict,
    collector_paused,
    load_off_chain,
    overall,
    verify_meter,
)
from connector.audit_cache import SealMemo
from connector.context import services

# One request verifies at most this many windows (a month of 15-minute windows is 2,976); the command
# line verifies any range in chunks.
MAX_VERIFY_WINDOWS = 3000

blp = ApiBlueprint("verify", __name__, url_prefix="/v1/meters", description="Tamper verification, settlement")


@blp.route("/<path:entity_id>/verify")
@blp.arguments(VerifyArgs, location="query", as_kwargs=True)
@blp.response(200, VerifySchema)
@blp.errors(404, 409, 503)
def verify(entity_id: str, from_: datetime | None = None, to: datetime | None = None) -> Response:
    """Recompute every window in [from, to) from the off-chain readings and compare with the ledger.

    Without from/to: the meter's whole history (400 if that is more than MAX_VERIFY_WINDOWS windows).
    """
    svc = services()
    with svc.store.reading() as conn:
        meter = queries.find_meter(conn, request_scope(), entity_id)
        from_, to = _bounded(conn, meter.id, from_, to)
        conflicts = queries.conflicts(conn, meter.id, from_, to, None)
        # A month is 43,200 fresh readings and 2,880 verdicts, none in a cycle: the cyclic collector would
        # only walk them (and every cached object) over and over, a fifth of the answer's time.
        with collector_paused():
            off_chain = load_off_chain(conn, meter.id, from_, to)
    history = chain_reader().window_transfers(meter.asset_id, from_, to) if meter.asset_id else None
    spec_for = partial(svc.settings.attribute_spec, meter.entity_type)
    seal = SealMemo(svc.sealed, meter.entity_type, spec_for)
    with collector_paused():
        verdicts = verify_meter(
            off_chain, history or _empty_history(), meter.chain_seed, spec_for, from_, to, seal
        )
        del off_chain
        verdict, counts = overall(verdicts)
        by_window: dict[datetime, list[Any]] = {}
        for c in conflicts:
            by_window.setdefault(c.window_start, []).append(c)
        body = {
            "entityId": entity_id,
            "assetId": meter.asset_id,
            "verdict": verdict,
            "counts": counts,
            "windows": [verdict_dict(v, by_window.get(v.start, ())) for v in verdicts],
        }
        return present.json_response(body)


def _empty_history() -> Any:
    return LedgerHistory([], from_genesis=True)


def _bounded(conn: Any, meter_id: int, from_: datetime | None, to: datetime | None) -> tuple[Any, Any]:
    length = timedelta(seconds=services().settings.window.length)
    first, last = queries.window_bounds(conn, meter_id)
    lo = from_ or first
    hi = to or (last + length if last else None)
    if lo and hi and (hi - lo) / length > MAX_VERIFY_WINDOWS:
        raise BadParameter(
            f"the range spans more than {MAX_VERIFY_WINDOWS} windows; narrow from/to "
            "(the verify command checks any range)"
        )
    return from_, to


def verdict_dict(v: WindowVerdict, conflicts: Sequence[Any] = ()) -> dict[str, Any]:
    """One window's verdict as the API (and the command's JSON) shows it, with the conflicting readings
    (from `conflicts`, any window's) that belong to this window."""
    return {
        "start": v.start,
        "end": v.end,
        "status": v.status,
        "txId": v.tx_id,
        "problems": v.problems,
        "ledger": v.ledger,
        "recomputed": v.recomputed,
        "lateReadings": [present.reading(r) for r in v.late],
        "conflicts": [present.reading(c) for c in conflicts if c.window_start == v.start],
    }


@blp.route("/<path:entity_id>/settlement")
@blp.arguments(RangeArgs, location="query", as_kwargs=True)
@blp.response(200, SettlementSchema)
@blp.errors(404, 409)
def settlement(entity_id: str, from_: datetime | None = None, to: datetime | None = None) -> dict[str, Any]:
    """The meter's settlement rows on Ethereum (404 when Ethereum settlement is not configured)."""
    svc = services()
    if not svc.settings.ethereum.enabled:
        raise NotFound("settlement not configured (ethereum.enabled is false)")
    with svc.store.reading() as conn:
        meter = queries.find_meter(conn, request_scope(), entity_id)
    from connector.ethereum.report import settlement_rows

    return {"entityId": entity_id, "rows": settlement_rows(svc.store, meter.id, from_, to)}
