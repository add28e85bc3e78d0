"""A recording fake of `connector.ethereum.gateway.EthereumGateway`, shipped next to the code for unit tests
of the relay's and the sender's logic.

It behaves like a dev node with the settlement contract, in memory: signed bytes are decoded and checked
(chain id, nonce: "nonce too low", a second copy: "already known") and wait in a pool until `mine()`;
calldata is the real ABI encoding; a mined settle() settles the meters that have a plan (`plans`). Every
call is recorded in `calls`, and `fail(method, *errors)` makes the next calls of a method raise the given
errors (the libraries' own exception objects), so each error class can be fed through the relay.
Integration tests use the real gateway on anvil instead.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import Web3RPCError
from web3.types import RPCResponse

from connector.ethereum.contract import artifact
from connector.ethereum.gateway import Receipt

FAKE_ADDRESS = Web3.to_checksum_address("0x" + "5e" * 20)


def rpc_error(code: int, message: str) -> Web3RPCError:
    """A node's JSON-RPC error, as web3 raises it."""
    error = {"code": code, "message": message}
    response: RPCResponse = {"jsonrpc": "2.0", "id": 1, "error": error}  # type: ignore[typeddict-item]
    return Web3RPCError(repr(error), rpc_response=response)


class FakeGateway:
    """An in-memory EthereumGateway: one node, one settlement contract, blocks mined on demand."""

    def __init__(self, *, chain_id: int = 31337, interval_length: int = 900, gas: int = 100_000) -> None:
        self.chain = chain_id
        self.length = interval_length
        self.gas = gas
        self.fee = 10**9  # the base fee per gas
        self.head = 1
        self.calls: list[tuple[str, Any]] = []
        self.errors: dict[str, list[BaseException]] = defaultdict(list)
        self.nonces: dict[str, int] = {}
        self.txs: dict[str, dict[str, Any]] = {}  # every accepted transaction, decoded, by hash
        self.pool: list[str] = []
        self.receipts: dict[str, Receipt] = {}
        self.plans: set[tuple[bytes, int]] = set()  # (meter, interval start) with a plan on chain
        self.settled: set[tuple[bytes, int]] = set()
        self._abi = Web3().eth.contract(abi=artifact()["abi"])

    def fail(self, method: str, *errors: BaseException) -> None:
        """Make the next calls of `method` raise `errors`, one per call, in order."""
        self.errors[method].extend(errors)

    def _enter(self, method: str, arg: Any = None) -> None:
        self.calls.append((method, arg))
        if self.errors[method]:
            raise self.errors[method].pop(0)

    def called(self, method: str) -> int:
        """How often `method` was called."""
        return sum(1 for name, _ in self.calls if name == method)

    # ----- node -----

    @property
    def contract_address(self) -> str:
        return FAKE_ADDRESS

    def chain_id(self) -> int:
        self._enter("chain_id")
        return self.chain

    def base_fee(self) -> int:
        self._enter("base_fee")
        return self.fee

    def pending_nonce(self, address: str) -> int:
        self._enter("pending_nonce", address)
        return self.nonces.get(address, 0)

    def send_raw_transaction(self, raw: bytes) -> None:
        tx_hash = "0x" + Web3.keccak(raw).hex().removeprefix("0x")
        self._enter("send_raw_transaction", tx_hash)
        fields = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
        sender = Account.recover_transaction(raw)
        if tx_hash in self.txs:
            raise rpc_error(-32000, "already known")
        if fields["chainId"] != self.chain:
            raise rpc_error(-32000, "invalid chain id for signer")
        if fields["nonce"] < self.nonces.get(sender, 0):
            raise rpc_error(-32003, "nonce too low")
        if fields["maxFeePerGas"] < self.fee:
            raise rpc_error(-32003, "max fee per gas less than block base fee")
        self.nonces[sender] = max(self.nonces.get(sender, 0), fields["nonce"] + 1)
        self.txs[tx_hash] = {
            "hash": tx_hash,
            "from": sender,
            "to": Web3.to_checksum_address(fields["to"]),
            "input": HexBytes(fields["data"]),
            "accessList": list(fields.get("accessList", ())),
            "nonce": fields["nonce"],
            "maxFeePerGas": fields["maxFeePerGas"],
            "maxPriorityFeePerGas": fields["maxPriorityFeePerGas"],
            "gas": fields["gas"],
        }
        self.pool.append(tx_hash)

    def block_number(self) -> int:
        self._enter("block_number")
        return self.head

    def estimate_gas(self, tx: dict[str, Any]) -> int:
        self._enter("estimate_gas", tx)
        return self.gas

    def receipt(self, tx_hash: str) -> Receipt | None:
        self._enter("receipt", tx_hash)
        return self.receipts.get(tx_hash)

    def transaction(self, tx_hash: str) -> dict[str, Any] | None:
        self._enter("transaction", tx_hash)
        return self.txs.get(tx_hash)

    def mine(self, blocks: int = 1, status: int = 1) -> None:
        """Mine the pool (one transaction per nonce, the last version sent wins) into one block, then
        `blocks - 1` empty ones."""
        self.head += 1
        chosen: dict[tuple[str, int], str] = {}
        for tx_hash in self.pool:
            tx = self.txs[tx_hash]
            chosen[(tx["from"], tx["nonce"])] = tx_hash
        block_hash = "0x" + self.head.to_bytes(32, "big").hex()
        for tx_hash in chosen.values():
            self.receipts[tx_hash] = Receipt(status, self.head, block_hash, 50_000, self._effects(tx_hash))
        self.pool.clear()
        self.head += blocks - 1

    def _effects(self, tx_hash: str) -> dict[str, Any]:
        name, args = self.decoded(tx_hash)
        if name != "settle":
            return {"conflicts": [], "settled": set()}
        start = args["intervalStart"]
        done = {bytes(m) for m in args["meterIds"] if (bytes(m), start) in self.plans}
        self.settled |= {(m, start) for m in done}
        return {"conflicts": [], "settled": done}

    def decoded(self, tx_hash: str) -> tuple[str, dict[str, Any]]:
        """The contract function and arguments of a sent transaction."""
        function, args = self._abi.decode_function_input(self.txs[tx_hash]["input"])
        return str(function.fn_name), dict(args)

    # ----- contract -----

    def interval_length(self) -> int:
        self._enter("interval_length")
        return self.length

    def record_intervals_data(
        self,
        start: int,
        keys: list[bytes],
        energies: list[int],
        fingerprints: list[bytes],
        tx_ids: list[bytes],
    ) -> str:
        args = [start, keys, energies, fingerprints, tx_ids]
        return str(self._abi.encode_abi("recordIntervals", args=args))

    def settle_data(self, start: int, keys: list[bytes]) -> str:
        return str(self._abi.encode_abi("settle", args=[start, keys]))

    def record_conflicts(self, receipt: Receipt) -> list[bytes]:
        return list(receipt.raw["conflicts"])

    def settled_meters(self, receipt: Receipt) -> set[bytes]:
        return set(receipt.raw["settled"])

    def plan_settled(self, meter_key: bytes, start: int) -> bool:
        self._enter("plan_settled", meter_key)
        return (meter_key, start) in self.settled
