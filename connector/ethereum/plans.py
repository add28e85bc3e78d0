"""BRP plans from CSV to the contract (submitPlans per interval) and into the store."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from eth_account.signers.local import LocalAccount
from sqlalchemy import delete, insert
from web3 import Web3

from connector.ethereum.client import settlement_contract
from connector.ethereum.contract import INT64_MAX, meter_key, unix_seconds
from connector.ethereum.errors import EthereumError
from connector.ethereum.gateway import Web3Gateway
from connector.ethereum.models import Plan
from connector.ethereum.sender import Sender
from connector.settings import EthereumSettings
from connector.store.db import Store

COLUMNS = ("tenant", "service_path", "entity_id", "interval_start", "planned_wh")
BATCH = 200


class PlanFileError(ValueError):
    """The plan CSV is malformed; the message names the line."""


@dataclass(frozen=True)
class PlanRow:
    tenant: str
    service_path: str
    entity_id: str
    interval_start: datetime
    planned_wh: int

    @property
    def key(self) -> bytes:
        return meter_key(self.tenant, self.service_path, self.entity_id)


def parse_plan_csv(text: str) -> list[PlanRow]:
    """Rows of a plan CSV with header tenant,service_path,entity_id,interval_start,planned_wh.

    interval_start is ISO 8601 with an offset (e.g. 2019-03-18T16:00:00Z); planned_wh a whole number
    (negative for generation). Raises PlanFileError naming the first bad line.
    """
    return [_row(line, raw) for line, raw in plan_lines(text, COLUMNS, "plan CSV")]


def plan_lines(text: str, columns: tuple[str, ...], what: str) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) of a CSV whose header has `columns`; PlanFileError naming those it lacks."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in columns if c not in (reader.fieldnames or [])]
    if missing:
        raise PlanFileError(f"{what} lacks column(s): {', '.join(missing)}")
    return enumerate(reader, start=2)


def planned_interval(line: int, raw: dict[str, str]) -> tuple[datetime, int]:
    """A row's interval_start (ISO 8601 with a UTC offset) and planned_wh (whole Wh within int64);
    PlanFileError naming the line otherwise."""
    try:
        start = datetime.fromisoformat(raw["interval_start"].strip().replace("Z", "+00:00"))
        planned = int(raw["planned_wh"].strip())
    except (ValueError, AttributeError) as exc:
        raise PlanFileError(f"line {line}: {exc}") from exc
    if start.tzinfo is None:
        raise PlanFileError(f"line {line}: interval_start needs a UTC offset")
    if abs(planned) > INT64_MAX:
        raise PlanFileError(f"line {line}: planned_wh out of range")
    return start, planned


def _row(line: int, raw: dict[str, str]) -> PlanRow:
    start, planned = planned_interval(line, raw)
    if not raw["entity_id"]:
        raise PlanFileError(f"line {line}: empty entity_id")
    return PlanRow(raw["tenant"], raw["service_path"], raw["entity_id"], start, planned)


def upload_plans(
    w3: Web3,
    account: LocalAccount,
    address: str,
    eth: EthereumSettings,
    store: Store,
    rows: list[PlanRow],
    now: datetime,
) -> list[str]:
    """Submit the plans (one transaction per interval and 200 meters), wait for each receipt, and record
    them in eth_plans. Returns the transaction hashes. The account must be the contract's BRP."""
    contract = settlement_contract(w3, address)
    sender = Sender(Web3Gateway(w3), account, eth.max_fee_gwei, eth.priority_fee_gwei)
    by_interval: dict[datetime, list[PlanRow]] = defaultdict(list)
    for row in rows:
        by_interval[row.interval_start].append(row)
    hashes = []
    for start, group in sorted(by_interval.items()):
        for i in range(0, len(group), BATCH):
            chunk = group[i : i + BATCH]
            call = contract.functions.submitPlans(
                unix_seconds(start), [r.key for r in chunk], [r.planned_wh for r in chunk]
            )
            gas = int(call.estimate_gas({"from": account.address})) * 6 // 5
            sent = sender.send({"to": contract.address, "data": call._encode_transaction_data()}, gas)
            receipt = w3.eth.wait_for_transaction_receipt(sent.tx_hash)  # type: ignore[arg-type]
            if receipt["status"] != 1:
                raise EthereumError(f"plan transaction {sent.tx_hash} reverted")
            _store(store, chunk, sent.tx_hash, int(receipt["blockNumber"]), now)
            hashes.append(sent.tx_hash)
    return hashes


def _store(store: Store, rows: list[PlanRow], tx_hash: str, block: int, now: datetime) -> None:
    with store.begin() as conn:
        for r in rows:
            conn.execute(
                delete(Plan).where(Plan.meter_key == r.key.hex(), Plan.interval_start == r.interval_start)
            )
        conn.execute(
            insert(Plan),
            [
                {
                    "meter_key": r.key.hex(),
                    "tenant": r.tenant,
                    "service_path": r.service_path,
                    "entity_id": r.entity_id,
                    "interval_start": r.interval_start,
                    "planned_wh": r.planned_wh,
                    "tx_hash": tx_hash,
                    "block_number": block,
                    "uploaded_at": now,
                }
                for r in rows
            ],
        )
