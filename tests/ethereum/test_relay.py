"""The relay on a real anvil and a real store (SQLite and PostgreSQL): enqueue, batch, finality, healing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import insert, select
from web3 import Web3
from web3.exceptions import TransactionNotFound

from connector.ethereum.anvil import AnvilProcess
from connector.ethereum.client import connect
from connector.ethereum.contract import chain_head, energy_to_wh, meter_key, unix_seconds
from connector.ethereum.models import EthTransaction, Plan, RelayOutbox
from connector.ethereum.relay import RelayService
from connector.ethereum.report import settlement_rows
from connector.store.db import Store
from tests.ethereum.conftest import ETH, funded, transact
from tests.ethereum.fixtures import add_grid, add_meter, add_window


def service(store: Store, w3: Web3, owner: Any, settlement: Any, clock: Any, **eth: Any) -> RelayService:
    settings = ETH.__class__(**{**ETH.__dict__, **eth})
    return RelayService(
        settings, store, clock.now, w3=w3, account=owner, address=settlement.address, stuck_after=30
    )


def rows(store: Store) -> list[Any]:
    with store.reading() as conn:
        return list(conn.execute(select(*RelayOutbox.__table__.c).order_by(RelayOutbox.id)).all())


def txs(store: Store) -> list[Any]:
    with store.reading() as conn:
        return list(conn.execute(select(*EthTransaction.__table__.c).order_by(EthTransaction.id)).all())


def mine(w3: Web3, blocks: int = 1) -> None:
    w3.provider.make_request("anvil_mine", [hex(blocks)])  # type: ignore[arg-type]


def run_until_final(relay: RelayService, w3: Web3, rounds: int = 20) -> None:
    for _ in range(rounds):
        relay.enqueue()
        while relay.dispatch_once():
            pass
        mine(w3)
        relay.confirm_once()
        if all(r.status == "final" for r in rows(relay.store)):
            return
    raise AssertionError(f"not final: {[(r.status, r.last_error) for r in rows(relay.store)]}")


def assert_heads(settlement: Any, grid: dict[str, list[Any]]) -> None:
    for entity, windows in grid.items():
        links = [
            (unix_seconds(w.start), energy_to_wh(w.energy_wh), bytes.fromhex(w.fingerprint)) for w in windows
        ]
        assert settlement.functions.chainHead(meter_key("t1", "/a", entity)).call() == chain_head(links)


def test_enqueue_only_confirmed_and_idempotent(store: Store, w3, owner, settlement, clock) -> None:
    """One relay row per confirmed window; unconfirmed windows wait; a second enqueue adds nothing."""
    meter = add_meter(store, "m1")
    add_window(store, meter, "m1", 0, "10")
    add_window(store, meter, "m1", 1, "11", status="sent")
    relay = service(store, w3, owner, settlement, clock)
    assert relay.enqueue() == 1
    assert relay.enqueue() == 0
    assert [(r.status, r.energy_wh) for r in rows(store)] == [("pending", 10)]


def test_relay_batches_per_interval_and_heads_match(store: Store, w3, owner, settlement, clock) -> None:
    """3 meters x 3 intervals go out as one batch per interval; on-chain heads equal the Python ones."""
    grid = add_grid(store, meters=3, intervals=3)
    relay = service(store, w3, owner, settlement, clock)
    run_until_final(relay, w3)
    record_txs = [t for t in txs(store) if t.kind == "record"]
    assert len(record_txs) == 3 and all(t.status == "final" for t in record_txs)
    assert all(r.transaction_id and r.final_at for r in rows(store))
    assert_heads(settlement, grid)


def test_batches_respect_gas_cap(store: Store, w3, owner, settlement, clock) -> None:
    """With a gas cap that fits two first-time meters, five meters of one interval take three batches."""
    add_grid(store, meters=5, intervals=1)
    relay = service(store, w3, owner, settlement, clock, gas_cap=60_000 + 2 * 55_000)
    relay.enqueue()
    sent = []
    while n := relay.dispatch_once():
        sent.append(n)
    assert sent == [2, 2, 1]


def test_reorg_is_healed(store: Store, w3, owner, settlement, clock) -> None:
    """A relayed batch removed by anvil_reorg goes back to pending, is sent again and becomes final."""
    grid = add_grid(store, meters=2, intervals=1)
    relay = service(store, w3, owner, settlement, clock, confirmations=5)
    relay.enqueue()
    relay.dispatch_once()
    mine(w3)
    relay.confirm_once()
    assert [t.status for t in txs(store)] == ["mined"]
    w3.provider.make_request("anvil_reorg", [2, []])  # type: ignore[arg-type]
    assert settlement.functions.chainHead(meter_key("t1", "/a", next(iter(grid)))).call() == b"\x00" * 32
    relay.confirm_once()
    assert [t.status for t in txs(store)] == ["dropped"]
    assert {r.status for r in rows(store)} == {"pending"}
    for _ in range(6):
        relay.dispatch_once()
        mine(w3)
        relay.confirm_once()
    assert {r.status for r in rows(store)} == {"final"}
    assert_heads(settlement, grid)


def test_anvil_restart_mid_run(store: Store, owner, clock, tmp_path) -> None:
    """anvil stopped mid-run: sends fail and stay pending; after a restart (state kept) relaying resumes."""
    node = AnvilProcess(state=str(tmp_path / "anvil.json")).start()
    try:
        w3 = connect(node.url)
        from connector.ethereum.client import fund_on_dev_node, settlement_contract
        from connector.ethereum.deploy import deploy

        fund_on_dev_node(w3, owner.address)
        settlement = settlement_contract(w3, deploy(w3, owner, ETH)[0])
        grid = add_grid(store, meters=2, intervals=1)
        relay = service(store, w3, owner, settlement, clock)
        run_until_final(relay, w3)
        node.stop()
        more = {e: [*ws, add_window(store, ws[0].meter_id, e, 1, "77")] for e, ws in grid.items()}
        relay.enqueue()
        assert relay.dispatch_once() == 0
        assert all("ConnectionError" in (r.last_error or "") for r in rows(store) if r.status == "pending")
        node.start()
        clock.advance(10)
        run_until_final(relay, w3)
        assert_heads(settlement, more)
    finally:
        node.stop()


def test_pool_lost_while_in_flight_keeps_each_meter_in_order(
    store: Store, w3, owner, settlement, clock
) -> None:
    """The node forgets its pending transactions (a restart) while a meter's interval is in flight: its later
    intervals wait until the earlier one is mined, so re-sent and new intervals cannot trade nonces and land
    out of order (on-chain heads equal the store's)."""
    grid = add_grid(store, meters=2, intervals=2)
    relay = service(store, w3, owner, settlement, clock)
    w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]

    def add_interval(index: int) -> None:
        for entity, windows in grid.items():
            windows.append(add_window(store, windows[0].meter_id, entity, index, f"{200 + index}.5"))

    def dispatch() -> None:
        relay.enqueue()
        while relay.dispatch_once():
            pass

    dispatch()
    w3.provider.make_request("anvil_dropAllTransactions", [])  # type: ignore[arg-type]
    add_interval(2)
    dispatch()  # before the relay has seen the loss
    relay.confirm_once()  # sees it: the lost intervals are due again
    add_interval(3)
    dispatch()
    run_until_final(relay, w3)
    assert_heads(settlement, grid)


def test_duplicate_submission_is_noop(store: Store, w3, owner, settlement, clock) -> None:
    """A batch sent again after it landed (crash before bookkeeping) is mined as a no-op, no conflict."""
    grid = add_grid(store, meters=2, intervals=1)
    relay = service(store, w3, owner, settlement, clock)
    run_until_final(relay, w3)
    with relay.store.begin() as conn:
        conn.execute(RelayOutbox.__table__.update().values(status="pending", transaction_id=None))
    clock.advance(10)  # the attempt scheduled before the first send is due
    run_until_final(relay, w3)
    second = txs(store)[-1]
    receipt = w3.eth.get_transaction_receipt(second.tx_hash)
    assert receipt["status"] == 1 and receipt["logs"] == []
    assert_heads(settlement, grid)


def test_stuck_transaction_is_replaced(store: Store, w3, owner, settlement, clock) -> None:
    """With mining paused, a pending batch is replaced after the stuck timeout: same nonce, fees +12.5 %."""
    add_grid(store, meters=1, intervals=1)
    relay = service(store, w3, owner, settlement, clock)
    relay.enqueue()
    w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
    relay.dispatch_once()
    relay.confirm_once()
    assert [t.status for t in txs(store)] == ["sent"]
    clock.advance(31)
    relay.confirm_once()
    (tx,) = txs(store)
    first, second = json.loads(tx.tx_hashes)
    new = w3.eth.get_transaction(second)
    assert new["nonce"] == tx.nonce and tx.tx_hash == second
    assert new["maxPriorityFeePerGas"] * 10 >= 11 * 10**9  # the 1 gwei tip raised by more than 10 %
    mine(w3, 3)
    relay.confirm_once()
    assert rows(store)[0].status == "final"
    assert w3.eth.get_transaction_receipt(second)["status"] == 1
    with pytest.raises(TransactionNotFound):
        w3.eth.get_transaction_receipt(first)


def test_revert_marks_dead(store: Store, w3, settlement, clock) -> None:
    """A key that is not a reporter makes the batch revert: rows dead with the reason, alert counted."""
    add_grid(store, meters=1, intervals=1)
    stranger = funded(w3)
    relay = service(store, w3, stranger, settlement, clock)
    relay.enqueue()
    assert relay.dispatch_once() == 0
    (row,) = rows(store)
    assert row.status == "dead" and "ContractCustomError" in row.last_error
    assert relay.counter.labels("dead")._value.get() == 1


@pytest.mark.parametrize("energy", ["abc", "1e40"])
def test_unrecordable_window_is_dead(store: Store, w3, owner, settlement, clock, energy) -> None:
    """A window whose energy cannot go on chain gets a dead relay row at once (never deleted)."""
    meter = add_meter(store, "m1")
    add_window(store, meter, "m1", 0, energy)
    relay = service(store, w3, owner, settlement, clock)
    relay.enqueue()
    assert [r.status for r in rows(store)] == ["dead"]


def test_settle_before_plan_is_retried(store: Store, w3, owner, settlement, clock) -> None:
    """A settle() that lands before the plan is on chain settles nothing; the rows are settled again later."""
    grid = add_grid(store, meters=2, intervals=1)
    relay = service(store, w3, owner, settlement, clock)
    run_until_final(relay, w3)
    windows = [ws[0] for ws in grid.values()]
    keys = [meter_key("t1", "/a", w.entity_id) for w in windows]
    start = unix_seconds(windows[0].start)
    # The store knows the plan (uploaded by `plan upload`), but its transaction is not on chain yet.
    with store.begin() as conn:
        conn.execute(insert(Plan), [plan_row(w, key) for w, key in zip(windows, keys, strict=True)])
    assert relay.settle_once() == 2
    mine(w3, 2)
    relay.confirm_once()
    assert relay.counter.labels("settle_retried")._value.get() == 2
    assert all(r.settle_transaction_id is None for r in rows(store))
    assert relay.settle_once() == 0  # not due before the backoff
    transact(w3, owner, settlement.functions.submitPlans(start, keys, [90, 90]))
    clock.advance(5)
    assert relay.settle_once() == 2
    mine(w3, 2)
    relay.confirm_once()
    assert relay.counter.labels("settle_retried")._value.get() == 2
    assert [settlement.functions.planOf(k, start).call()[2] for k in keys] == [True, True]
    # 100.4 -> 100 Wh and 110.4 -> 110 Wh against 90 planned: 10 and 20 Wh at 200 micro-EUR per Wh
    assert [settlement.functions.runningBalance(k).call() for k in keys] == [2_000, 4_000]
    assert [r["settled"] for r in settlement_rows(store, None, None, None)] == [True, True]


def plan_row(window: Any, key: bytes) -> dict[str, Any]:
    return {
        "meter_key": key.hex(),
        "tenant": "t1",
        "service_path": "/a",
        "entity_id": window.entity_id,
        "interval_start": window.start,
        "planned_wh": 90,
        "tx_hash": "0x" + "00" * 32,
        "block_number": None,
        "uploaded_at": window.start,
    }
