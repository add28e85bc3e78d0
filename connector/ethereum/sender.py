"""One sender per key: a local nonce, EIP-1559 fees under a cap, replacement of stuck transactions.

The nonce is seeded from the node's pending count and then counted locally, so several transactions can
be in flight; it is resynced when the node says it is wrong or when a transaction fell out of the chain.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes

from connector.ethereum.errors import CALL_ERRORS, Action, FeeCapReached, NotAccepted, classify
from connector.ethereum.gateway import EthereumNode

__all__ = ["FeeCapReached", "Fees", "Sender", "Sent"]

GWEI = 10**9
BUMP_NUM, BUMP_DEN = 9, 8  # +12.5 %: nodes want at least +10 % on both fee fields to replace


@dataclass(frozen=True)
class Fees:
    max_fee: int
    priority_fee: int


@dataclass(frozen=True)
class Sent:
    tx_hash: str
    nonce: int
    fees: Fees
    gas: int


class Sender:
    """Signs and sends transactions of one account through `node`; use one instance per key and process."""

    def __init__(
        self, node: EthereumNode, account: LocalAccount, max_fee_gwei: float, priority_fee_gwei: float
    ) -> None:
        self.node = node
        self.account = account
        self.cap = int(max_fee_gwei * GWEI)
        self.priority = min(int(priority_fee_gwei * GWEI), self.cap)
        self._nonce: int | None = None
        self._chain_id: int | None = None
        self._lock = threading.Lock()

    @property
    def address(self) -> str:
        return str(self.account.address)

    def resync(self) -> None:
        """Forget the local nonce; the next send reads the node's pending count again."""
        with self._lock:
            self._nonce = None

    def fees(self) -> Fees:
        """Fees for a new transaction: max fee = 2 x base fee + tip, never above the cap."""
        base = self.node.base_fee()
        return Fees(min(self.cap, 2 * base + self.priority), self.priority)

    def bumped(self, old: Fees) -> Fees:
        """Fees that replace `old`: both fields +12.5 % (and at least today's), within the cap."""
        now = self.fees()
        priority = max(-(-old.priority_fee * BUMP_NUM // BUMP_DEN), now.priority_fee)
        max_fee = max(-(-old.max_fee * BUMP_NUM // BUMP_DEN), now.max_fee, priority)
        if max_fee > self.cap:
            raise FeeCapReached(f"replacing needs {max_fee} wei per gas, above the cap of {self.cap}")
        return Fees(max_fee, priority)

    def send(self, tx: dict[str, Any], gas: int, fees: Fees | None = None, nonce: int | None = None) -> Sent:
        """Sign and send `tx` (to, data); a new nonce unless `nonce` is given (a replacement).

        Fixes what can be fixed here: a stale nonce (resync, once) and fees below the base fee (bump,
        up to three times). Other errors of the libraries (`CALL_ERRORS`) propagate for the caller to
        classify; a FeeCapReached when the bump would pass the cap.
        """
        fees = fees or self.fees()
        fresh = nonce is None
        for _ in range(4):
            use = self._take_nonce() if fresh else nonce
            assert use is not None
            try:
                return self._send_signed(tx, gas, fees, use)
            except CALL_ERRORS as exc:
                action = classify(exc)
                if fresh:
                    self._give_back(use)
                if action is Action.RESYNC_NONCE and fresh:
                    self.resync()
                elif action is Action.BUMP_FEES:
                    fees = self.bumped(fees)
                else:
                    raise
        raise NotAccepted("transaction not accepted after fixing nonce and fees")

    def _send_signed(self, tx: dict[str, Any], gas: int, fees: Fees, nonce: int) -> Sent:
        full = {
            **tx,
            "from": self.address,
            "gas": gas,
            "nonce": nonce,
            "chainId": self._chain(),
            "maxFeePerGas": fees.max_fee,
            "maxPriorityFeePerGas": fees.priority_fee,
            "type": 2,
        }
        signed = self.account.sign_transaction(full)
        tx_hash = "0x" + HexBytes(signed.hash).hex().removeprefix("0x")
        try:
            self.node.send_raw_transaction(signed.raw_transaction)
        except CALL_ERRORS as exc:
            if classify(exc) is not Action.ALREADY_SENT:
                raise
        return Sent(tx_hash, nonce, fees, gas)

    def _chain(self) -> int:
        if self._chain_id is None:
            self._chain_id = self.node.chain_id()
        return self._chain_id

    def _take_nonce(self) -> int:
        with self._lock:
            if self._nonce is None:
                self._nonce = self.node.pending_nonce(self.account.address)
            nonce = self._nonce
            self._nonce += 1
            return nonce

    def _give_back(self, nonce: int) -> None:
        # A send that failed did not use its nonce; hand it back if nothing was taken after it.
        with self._lock:
            if self._nonce == nonce + 1:
                self._nonce = nonce
