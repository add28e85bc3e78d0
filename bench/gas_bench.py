"""Gas per meter-interval of recordIntervals when batching 1, 10, 50 and 100 meters (anvil, prague).

    .venv/bin/python bench/gas_bench.py

For each batch size it records two consecutive intervals for the same meters and reports the second
(steady state: each meter's chain head already exists; a meter's very first record also creates its head
slot), three ways: without a plan, with the BRP's plan submitted ahead (record and plan share a slot), and
with the EIP-2930 access list the relay sends. Figures are gasUsed of the transaction divided by meters.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eth_account import Account  # noqa: E402

from connector.ethereum.anvil import AnvilProcess  # noqa: E402
from connector.ethereum.client import connect, settlement_contract  # noqa: E402
from connector.ethereum.contract import record_slots  # noqa: E402
from connector.ethereum.deploy import deploy  # noqa: E402
from connector.ethereum.sender import Sender  # noqa: E402
from connector.settings import EthereumSettings  # noqa: E402

SIZES = (1, 10, 50, 100)
ETH = EthereumSettings(max_fee_gwei=200, priority_fee_gwei=1)


def send(w3: Any, sender: Sender, call: Any, access_list: list[Any] | None = None) -> int:
    tx: dict[str, Any] = {"to": call.address, "data": call._encode_transaction_data()}
    if access_list:
        tx["accessList"] = access_list
    params = {"from": sender.address, **({"accessList": access_list} if access_list else {})}
    sent = sender.send(tx, int(w3.eth.estimate_gas({**params, **tx})) * 6 // 5)
    receipt = w3.eth.wait_for_transaction_receipt(sent.tx_hash)
    assert receipt["status"] == 1
    return int(receipt["gasUsed"])


def measure(
    w3: Any, sender: Sender, contract: Any, n: int, start: int, plan: bool, access: bool
) -> tuple[int, int]:
    """(first-record gas, steady-state gas) per meter for a batch of n new meters."""
    meters = [os.urandom(32) for _ in range(n)]
    figures = []
    for t in (start, start + 900):
        if plan:
            send(w3, sender, contract.functions.submitPlans(t, meters, [1000] * n))
        call = contract.functions.recordIntervals(
            t, meters, [1234] * n, [os.urandom(32) for _ in range(n)], [os.urandom(32) for _ in range(n)]
        )
        slots = [s for m in meters for s in record_slots(m, t)]
        access_list = (
            [{"address": contract.address, "storageKeys": ["0x" + s.hex() for s in slots]}]
            if access
            else None
        )
        figures.append(send(w3, sender, call, access_list) / n)
    return round(figures[0]), round(figures[1])


def main() -> None:
    with AnvilProcess() as node:
        w3 = connect(node.url)
        account = Account.create()
        contract = settlement_contract(w3, deploy(w3, account, ETH)[0])
        sender = Sender(w3, account, ETH.max_fee_gwei, ETH.priority_fee_gwei)
        columns = (
            "meters per batch",
            "first record",
            "steady, no plan",
            "steady, plan ahead",
            "steady + access list",
        )
        print("| " + " | ".join(columns) + " |")
        print("|---:|---:|---:|---:|---:|")
        start = 1_552_924_800
        for n in SIZES:
            first, steady = measure(w3, sender, contract, n, start, plan=False, access=False)
            _, planned = measure(w3, sender, contract, n, start + 10_000, plan=True, access=False)
            _, listed = measure(w3, sender, contract, n, start + 20_000, plan=False, access=True)
            print(f"| {n} | {first:,} | {steady:,} | {planned:,} | {listed:,} |")
            start += 100_000


if __name__ == "__main__":
    main()
