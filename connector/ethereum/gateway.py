"""What the relay and its sender need from an Ethereum node and the settlement contract, as Protocols.

`Web3Gateway` is the real one (web3.py over HTTP); `connector.ethereum.testing.FakeGateway` is a recording
fake for unit tests of the relay's logic. Integration tests use the real gateway on anvil. Errors are the
libraries' own (web3, requests, eth-account), sorted by `connector.ethereum.errors.classify`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from web3 import Web3
from web3.contract import Contract
from web3.exceptions import TransactionNotFound
from web3.logs import DISCARD

from connector.ethereum.client import settlement_contract


@dataclass(frozen=True)
class Receipt:
    """A mined transaction's receipt: what the relay stores, and `raw` for decoding its events."""

    status: int
    block_number: int
    block_hash: str
    gas_used: int
    raw: Any = None


class EthereumNode(Protocol):
    """What a `Sender` needs from a node: the chain id, the base fee, the pending nonce, and a send."""

    def chain_id(self) -> int:
        """The chain id transactions are signed for."""

    def base_fee(self) -> int:
        """The latest block's base fee per gas in wei (0 before London)."""

    def pending_nonce(self, address: str) -> int:
        """The number of transactions of `address`, counting those still in the pool."""

    def send_raw_transaction(self, raw: bytes) -> None:
        """Hand signed bytes to the node (returns when the node accepted them into its pool)."""


class EthereumGateway(EthereumNode, Protocol):
    """What the relay needs from a node and the settlement contract."""

    @property
    def contract_address(self) -> str:
        """The settlement contract's checksum address."""

    def interval_length(self) -> int:
        """Seconds per interval as deployed (the contract's immutable intervalLength)."""

    def record_intervals_data(
        self,
        start: int,
        keys: list[bytes],
        energies: list[int],
        fingerprints: list[bytes],
        tx_ids: list[bytes],
    ) -> str:
        """The calldata (hex) of recordIntervals(start, keys, energies, fingerprints, tx_ids)."""

    def settle_data(self, start: int, keys: list[bytes]) -> str:
        """The calldata (hex) of settle(start, keys)."""

    def estimate_gas(self, tx: dict[str, Any]) -> int:
        """The node's gas estimate for `tx` (from, to, data, accessList); a revert raises."""

    def block_number(self) -> int:
        """The head's block number."""

    def receipt(self, tx_hash: str) -> Receipt | None:
        """The receipt of `tx_hash`, or None while it is not mined (or fell out)."""

    def transaction(self, tx_hash: str) -> dict[str, Any] | None:
        """The transaction `tx_hash` (to, input, accessList, nonce, fees) as the node knows it, or None."""

    def record_conflicts(self, receipt: Receipt) -> list[bytes]:
        """Meter ids of the RecordConflict events in `receipt`."""

    def settled_meters(self, receipt: Receipt) -> set[bytes]:
        """Meter ids of the Settled events in `receipt`."""

    def plan_settled(self, meter_key: bytes, start: int) -> bool:
        """Whether the contract's plan of (meter, interval) says settled."""


class Web3Gateway:
    """EthereumGateway over web3.py; the contract address may be a callable, resolved on first use."""

    def __init__(self, w3: Web3, address: str | Callable[[], str] | None = None) -> None:
        self.w3 = w3
        self._address = address
        self._contract: Contract | None = None

    @property
    def contract(self) -> Contract:
        """The settlement contract (its address resolved once)."""
        if self._contract is None:
            address = self._address() if callable(self._address) else self._address
            if address is None:
                raise ValueError("no settlement contract address given to the gateway")
            self._contract = settlement_contract(self.w3, address)
        return self._contract

    @property
    def contract_address(self) -> str:
        return str(self.contract.address)

    def chain_id(self) -> int:
        return int(self.w3.eth.chain_id)

    def base_fee(self) -> int:
        return int(self.w3.eth.get_block("latest").get("baseFeePerGas", 0))

    def pending_nonce(self, address: str) -> int:
        return int(self.w3.eth.get_transaction_count(Web3.to_checksum_address(address), "pending"))

    def send_raw_transaction(self, raw: bytes) -> None:
        self.w3.eth.send_raw_transaction(raw)

    def interval_length(self) -> int:
        return int(self.contract.functions.intervalLength().call())

    def record_intervals_data(
        self,
        start: int,
        keys: list[bytes],
        energies: list[int],
        fingerprints: list[bytes],
        tx_ids: list[bytes],
    ) -> str:
        call = self.contract.functions.recordIntervals(start, keys, energies, fingerprints, tx_ids)
        return str(call._encode_transaction_data())

    def settle_data(self, start: int, keys: list[bytes]) -> str:
        return str(self.contract.functions.settle(start, keys)._encode_transaction_data())

    def estimate_gas(self, tx: dict[str, Any]) -> int:
        return int(self.w3.eth.estimate_gas(tx))  # type: ignore[arg-type]

    def block_number(self) -> int:
        return int(self.w3.eth.block_number)

    def receipt(self, tx_hash: str) -> Receipt | None:
        try:
            raw = self.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            return None
        block_hash = "0x" + bytes(raw["blockHash"]).hex()
        return Receipt(int(raw["status"]), int(raw["blockNumber"]), block_hash, int(raw["gasUsed"]), raw)

    def transaction(self, tx_hash: str) -> dict[str, Any] | None:
        try:
            return dict(self.w3.eth.get_transaction(tx_hash))  # type: ignore[arg-type]
        except TransactionNotFound:
            return None

    def record_conflicts(self, receipt: Receipt) -> list[bytes]:
        events = self.contract.events.RecordConflict().process_receipt(receipt.raw, errors=DISCARD)
        return [bytes(e["args"]["meterId"]) for e in events]

    def settled_meters(self, receipt: Receipt) -> set[bytes]:
        events = self.contract.events.Settled().process_receipt(receipt.raw, errors=DISCARD)
        return {bytes(e["args"]["meterId"]) for e in events}

    def plan_settled(self, meter_key: bytes, start: int) -> bool:
        return bool(self.contract.functions.planOf(meter_key, start).call()[2])
