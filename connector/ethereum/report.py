"""Settlement rows from the store: relay status, Ethereum tx, plan, imbalance and charge per interval.

Imbalance and charge are computed with the contract's own formula (`contract.charge_for`) from the relayed
energy, the uploaded plan and the parameters stored at deployment, so the answer needs no node.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.orm import aliased

from connector.ethereum.contract import charge_for
from connector.ethereum.deploy import PARAMS_KEY
from connector.ethereum.models import EthTransaction, Plan, RelayOutbox
from connector.store.db import Store
from connector.store.models import Meter, State, Window


def settlement_params(conn: Any) -> tuple[int, int]:
    """(price micro-EUR per kWh, tolerance Wh) as deployed; (200000, 0) before any deployment."""
    text = conn.execute(select(State.value).where(State.key == PARAMS_KEY)).scalar()
    params = json.loads(text) if text else {}
    return int(params.get("price_micro_eur_per_kwh", 200_000)), int(params.get("tolerance_wh", 0))


def settlement_rows(
    store: Store, meter_id: int | None, from_: datetime | None, to: datetime | None
) -> list[dict[str, Any]]:
    """Relayed intervals of one meter (all meters when meter_id is None) with start in [from_, to),
    oldest first: meter, interval, actual/planned/imbalance Wh, charge in EUR, relay status, eth tx, block.
    Imbalance and charge are None until a plan exists."""
    settle_tx = aliased(EthTransaction)
    query = (
        select(
            RelayOutbox.interval_start,
            RelayOutbox.energy_wh,
            RelayOutbox.status,
            Meter.entity_id,
            Window.end,
            EthTransaction.tx_hash,
            EthTransaction.block_number,
            Plan.planned_wh,
            settle_tx.status.label("settle_status"),
        )
        .join(Meter, Meter.id == RelayOutbox.meter_id)
        .join(Window, Window.id == RelayOutbox.window_id)
        .outerjoin(EthTransaction, EthTransaction.id == RelayOutbox.transaction_id)
        .outerjoin(settle_tx, settle_tx.id == RelayOutbox.settle_transaction_id)
        .outerjoin(
            Plan,
            and_(Plan.meter_key == RelayOutbox.meter_key, Plan.interval_start == RelayOutbox.interval_start),
        )
        .order_by(RelayOutbox.interval_start, Meter.entity_id)
    )
    if meter_id is not None:
        query = query.where(RelayOutbox.meter_id == meter_id)
    if from_ is not None:
        query = query.where(RelayOutbox.interval_start >= from_)
    if to is not None:
        query = query.where(RelayOutbox.interval_start < to)
    with store.reading() as conn:
        price, tolerance = settlement_params(conn)
        return [_row(r, price, tolerance) for r in conn.execute(query).all()]


def _row(r: Any, price: int, tolerance: int) -> dict[str, Any]:
    imbalance = None if r.planned_wh is None else r.energy_wh - r.planned_wh
    charge = None if imbalance is None else charge_for(imbalance, price, tolerance)
    return {
        "entity_id": r.entity_id,
        "interval_start": r.interval_start.isoformat(),
        "interval_end": r.end.isoformat(),
        "actual_wh": r.energy_wh,
        "planned_wh": r.planned_wh,
        "imbalance_wh": imbalance,
        "charge_eur": None if charge is None else str(Decimal(charge) / 1_000_000),
        "relay_status": r.status,
        "eth_tx_hash": r.tx_hash if r.status in ("sent", "final") else None,
        "block_number": r.block_number if r.status in ("sent", "final") else None,
        "settled": r.settle_status == "final",
    }


def format_table(rows: list[dict[str, Any]]) -> str:
    """A readable fixed-width table: meter, interval, actual, planned, imbalance, charge, status."""
    head = ("meter", "interval", "actual Wh", "planned Wh", "imbalance Wh", "charge EUR", "relay")
    body = [
        (
            r["entity_id"],
            r["interval_start"],
            str(r["actual_wh"]),
            _dash(r["planned_wh"]),
            _dash(r["imbalance_wh"]),
            _dash(r["charge_eur"]),
            r["relay_status"] + (" settled" if r["settled"] else ""),
        )
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=False)]
    lines = [
        "  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)).rstrip()
        for line in (head, *body)
    ]
    return "\n".join(lines)


def _dash(value: Any) -> str:
    return "-" if value is None else str(value)
