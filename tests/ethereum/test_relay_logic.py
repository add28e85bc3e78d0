"""The relay's decisions per error class, against the recording FakeGateway and a real store."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from eth_account import Account
from sqlalchemy import insert, select
from structlog.testing import capture_logs
from web3.exceptions import ContractCustomError

from connector.ethereum.contract import unix_seconds
from connector.ethereum.models import Plan, RelayOutbox
from connector.ethereum.relay import RelayService
from connector.ethereum.testing import FakeGateway, rpc_error
from connector.store.db import Store
from tests.ethereum.conftest import ETH
from tests.ethereum.fixtures import add_grid

KEY = "0x" + "42" * 32
PLAN_TX = {"tx_hash": "0x" + "cc" * 32, "block_number": 1}


def relay_on(store: Store, clock: Any, gateway: FakeGateway, **eth: Any) -> RelayService:
    settings = ETH.__class__(**{**ETH.__dict__, **eth})
    account = Account.from_key(KEY)
    return RelayService(settings, store, clock.now, account=account, gateway=gateway, stuck_after=30)


def rows(store: Store) -> list[Any]:
    with store.reading() as conn:
        return list(conn.execute(select(*RelayOutbox.__table__.c).order_by(RelayOutbox.id)).all())


def outcome(relay: RelayService, name: str) -> float:
    return float(relay.counter.labels(name)._value.get())


@pytest.fixture
def gateway() -> FakeGateway:
    """A fake node with the settlement contract."""
    return FakeGateway()


def test_fake_round_trip_to_final(store: Store, clock, gateway: FakeGateway) -> None:
    """Through the fake, a batch is encoded as recordIntervals, mined and final after the confirmations."""
    add_grid(store, meters=2, intervals=1)
    relay = relay_on(store, clock, gateway)
    relay.enqueue()
    assert relay.dispatch_once() == 2
    (sent,) = gateway.txs
    name, args = gateway.decoded(sent)
    assert name == "recordIntervals" and len(args["meterIds"]) == 2
    gateway.mine(2)
    assert relay.confirm_once() == 2
    assert [r.status for r in rows(store)] == ["final", "final"]


@pytest.mark.parametrize(
    "error",
    [TypeError("Transaction had invalid fields: {'gas': 'x'}"), rpc_error(-32000, "something never seen")],
)
def test_unknown_error_is_dead_and_alerted(store: Store, clock, gateway: FakeGateway, error) -> None:
    """An error without evidence (a TypeError, an unseen RPC text) ends the rows dead at once, alerted at
    error level and counted; later rounds do not send them again."""
    add_grid(store, meters=1, intervals=1)
    relay = relay_on(store, clock, gateway)
    relay.enqueue()
    gateway.fail("estimate_gas", error)
    with capture_logs() as logs:
        assert relay.dispatch_once() == 0
    (row,) = rows(store)
    assert row.status == "dead" and type(error).__name__ in row.last_error
    assert outcome(relay, "dead") == 1 and outcome(relay, "retried") == 0
    (alert,) = [e for e in logs if e["event"] == "ethereum.relay.dead"]
    assert alert["log_level"] == "error" and alert["action"] == "unknown"
    clock.advance(3600)
    assert relay.dispatch_once() == 0 and gateway.called("estimate_gas") == 1


def test_revert_is_dead(store: Store, clock, gateway: FakeGateway) -> None:
    """A revert of the estimate (anvil: ContractCustomError) ends the rows dead as a revert."""
    add_grid(store, meters=1, intervals=1)
    relay = relay_on(store, clock, gateway)
    relay.enqueue()
    gateway.fail("estimate_gas", ContractCustomError("0x07c4dc6c", data="0x07c4dc6c"))
    with capture_logs() as logs:
        relay.dispatch_once()
    assert rows(store)[0].status == "dead"
    assert [e["action"] for e in logs if e["event"] == "ethereum.relay.dead"] == ["revert"]


@pytest.mark.parametrize(
    "error",
    [
        requests.ConnectionError("refused"),
        requests.ReadTimeout("slow"),
        rpc_error(-32005, "limit exceeded"),
        rpc_error(-32000, "Insufficient funds for gas * price + value"),
    ],
)
def test_node_away_is_retried_then_sent(store: Store, clock, gateway: FakeGateway, error) -> None:
    """A node away, rate-limited or a key without ether: the rows stay pending with the reason and go out
    once the attempt is due again."""
    add_grid(store, meters=1, intervals=1)
    relay = relay_on(store, clock, gateway)
    relay.enqueue()
    gateway.fail("send_raw_transaction", error)
    assert relay.dispatch_once() == 0
    (row,) = rows(store)
    assert row.status == "pending" and type(error).__name__ in row.last_error
    assert outcome(relay, "retried") == 1 and outcome(relay, "dead") == 0
    clock.advance(3600)
    assert relay.dispatch_once() == 1


def test_stale_nonce_is_resynced(store: Store, clock, gateway: FakeGateway) -> None:
    """Another process used the key: "nonce too low" makes the sender read the node's count and resend."""
    add_grid(store, meters=1, intervals=2)
    relay = relay_on(store, clock, gateway)
    relay.enqueue()
    assert relay.dispatch_once() == 1
    gateway.mine(1)
    relay.confirm_once()  # mined: the meter's next interval may go
    gateway.nonces[relay.sender.address] += 5  # five transactions of another process
    assert relay.dispatch_once() == 1
    nonces = sorted(tx["nonce"] for tx in gateway.txs.values())
    assert nonces == [0, 6] and gateway.called("pending_nonce") == 2


def test_fees_below_base_fee_are_bumped(store: Store, clock, gateway: FakeGateway) -> None:
    """A base fee that rose between reading and sending: the fees are raised and the batch goes out."""
    add_grid(store, meters=1, intervals=1)
    relay = relay_on(store, clock, gateway)
    relay.enqueue()
    gateway.fail("send_raw_transaction", rpc_error(-32003, "max fee per gas less than block base fee"))
    assert relay.dispatch_once() == 1
    assert gateway.called("send_raw_transaction") == 2


def test_unknown_settle_error_is_alerted_and_backed_off(store: Store, clock, gateway: FakeGateway) -> None:
    """A settle() failing with an error without evidence is alerted and waits the backoff; the rows stay
    final (their record is on chain) and settle once the error is gone."""
    grid = add_grid(store, meters=1, intervals=1)
    relay = relay_on(store, clock, gateway)
    relay.enqueue()
    relay.dispatch_once()
    gateway.mine(2)
    relay.confirm_once()
    window = next(iter(grid.values()))[0]
    key = bytes.fromhex(rows(store)[0].meter_key)
    start = unix_seconds(window.start)
    plan = {"meter_key": key.hex(), "tenant": "t1", "service_path": "/a", "entity_id": window.entity_id}
    plan |= {"interval_start": window.start, "planned_wh": 90, "uploaded_at": clock.now(), **PLAN_TX}
    with store.begin() as conn:
        conn.execute(insert(Plan), [plan])
    gateway.plans.add((key, start))
    gateway.fail("estimate_gas", TypeError("unexpected"))
    with capture_logs() as logs:
        assert relay.settle_once() == 0
    assert [e["log_level"] for e in logs if e["event"] == "ethereum.relay.settle_failed"] == ["error"]
    assert relay.settle_once() == 0  # not due before the backoff
    clock.advance(5)
    assert relay.settle_once() == 1
    gateway.mine(2)
    relay.confirm_once()
    assert gateway.settled == {(key, start)} and rows(store)[0].status == "final"
