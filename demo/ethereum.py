"""The demo's Ethereum half: anvil as a child process, the settlement contract, a BRP plan, the report."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from connector.ethereum.anvil import AnvilProcess
from connector.ethereum.client import connect, reporter_account
from connector.ethereum.deploy import deploy, remember
from connector.ethereum.models import EthTransaction, RelayOutbox
from connector.ethereum.plans import PlanRow, upload_plans
from connector.ethereum.report import format_table, settlement_rows
from connector.settings import Settings
from connector.store.db import migrate, open_store

# The demo BRP's forecast: a flat 480 W drawn per meter, i.e. -8 Wh per 1-minute interval (consumption is
# negative, as in the seeds), so a negative imbalance means consumption above plan.
FLAT_PLAN_WH = -8


@dataclass
class DemoEthereum:
    anvil: AnvilProcess
    address: str
    settings: Settings

    @property
    def rpc_url(self) -> str:
        return self.anvil.url

    @classmethod
    def start(cls, settings: Settings, now: datetime) -> DemoEthereum:
        """Start anvil, deploy the contract with the connector's reporter key, remember its address."""
        anvil = AnvilProcess().start()
        eth = dataclasses.replace(
            settings.ethereum, enabled=True, rpc_url=anvil.url, confirmations=1, relay_interval=0.5
        )
        settings = settings.replace(ethereum=eth)
        address, _gas = deploy(
            connect(anvil.url), reporter_account(settings), eth, interval_length=settings.window.length
        )
        store = open_store(settings.store.url)
        migrate(store)
        remember(store, address, eth, now)
        store.dispose()
        return cls(
            anvil, address, settings.replace(ethereum=dataclasses.replace(eth, contract_address=address))
        )

    def upload_plan(
        self, store: Any, entity_ids: list[str], first: datetime, windows: int, length: int, now: datetime
    ) -> str:
        """The BRP's plan: FLAT_PLAN_WH for every meter and interval of the demo."""
        rows = [
            PlanRow("", "/", entity_id, first + timedelta(seconds=k * length), FLAT_PLAN_WH)
            for entity_id in entity_ids
            for k in range(windows)
        ]
        w3 = connect(self.anvil.url)
        upload_plans(
            w3, reporter_account(self.settings), self.address, self.settings.ethereum, store, rows, now
        )
        return f"planned {FLAT_PLAN_WH} Wh per interval for {len(entity_ids)} meters x {windows} intervals"

    def relay_counts(self, store: Any, expected: int) -> tuple[int, int]:
        """(relay rows final whose settle transaction is final too, windows expected)."""
        with store.reading() as conn:
            done = conn.execute(
                select(func.count())
                .select_from(RelayOutbox)
                .join(EthTransaction, EthTransaction.id == RelayOutbox.settle_transaction_id)
                .where(RelayOutbox.status == "final", EthTransaction.status == "final")
            ).scalar_one()
        return done, expected

    def settlement_table(self, store: Any, limit: int) -> str:
        rows = settlement_rows(store, None, None, None)
        total = sum(Decimal(str(r["charge_eur"] or 0)) for r in rows)
        settled = sum(1 for r in rows if r["settled"])
        shown = format_table(rows[:limit])
        more = f"; first {limit} shown" if len(rows) > limit else ""
        summary = f"{len(rows)} meter-intervals relayed, {settled} settled{more}; total charge {total} EUR"
        return f"{shown}\n({summary})\n"

    def stop(self) -> None:
        self.anvil.stop()
