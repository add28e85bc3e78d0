"""The settlement contract as Python sees it: the compiled artifact, meter ids, and the on-chain hash chain.

Pure functions only; the web3 side is in `client`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from functools import cache
from pathlib import Path
from typing import Any

from eth_abi import encode
from eth_utils import keccak

# The meter key and the energy's whole Wh are the period trees' (one definition for chain and trees).
from connector.core.trees import INT64_MAX as INT64_MAX
from connector.core.trees import meter_key as meter_key
from connector.core.trees import whole_wh

ARTIFACT = Path(__file__).resolve().parent.parent / "contracts" / "Settlement.json"
SOURCE = Path(__file__).resolve().parents[2] / "contracts" / "Settlement.sol"
ZERO32 = b"\x00" * 32


class EnergyError(ValueError):
    """An energy value that cannot be recorded on chain (not a number, or outside int96)."""


@cache
def artifact() -> dict[str, Any]:
    """The committed compiler output: abi, bytecode, deployedBytecode, storageLayout, sourceSha256."""
    return json.loads(ARTIFACT.read_text())  # type: ignore[no-any-return]


def chain_link(prev_head: bytes, interval_start: int, energy_wh: int, fingerprint: bytes) -> bytes:
    """The contract's next chain head: keccak256(abi.encode(prev, uint64 start, int256 Wh, bytes32 fp))."""
    return keccak(
        encode(
            ["bytes32", "uint64", "int256", "bytes32"], [prev_head, interval_start, energy_wh, fingerprint]
        )
    )


def chain_head(links: list[tuple[int, int, bytes]], start: bytes = ZERO32) -> bytes:
    """The head after recording (interval_start, energy_wh, fingerprint) links in order from `start`."""
    head = start
    for interval_start, energy_wh, fingerprint in links:
        head = chain_link(head, interval_start, energy_wh, fingerprint)
    return head


def energy_to_wh(text: str | None) -> int:
    """Whole Wh from the store's decimal text (half-even rounding, as the period trees' leaves:
    `connector.core.trees.whole_wh`); no energy attribute means 0 Wh. EnergyError outside int64."""
    try:
        return whole_wh(text)
    except ValueError as exc:
        raise EnergyError(str(exc)) from None


def unix_seconds(moment: datetime) -> int:
    """Interval start as the contract's uint64: whole seconds since the epoch (UTC)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime; use timezone-aware UTC")
    return int(moment.timestamp())


def from_unix(seconds: int) -> datetime:
    """The inverse of `unix_seconds`."""
    return datetime.fromtimestamp(seconds, tz=UTC)


def price_micro_eur(price_eur_per_kwh: str) -> int:
    """The contract's price unit (micro-EUR per kWh) from the settings' decimal EUR per kWh."""
    return int((Decimal(price_eur_per_kwh) * 1_000_000).to_integral_value(rounding=ROUND_HALF_EVEN))


def charge_for(imbalance_wh: int, price_micro_eur_per_kwh: int, tolerance_wh: int) -> int:
    """The contract's charge in micro-EUR: |imbalance| * price // 1000 once |imbalance| > tolerance."""
    magnitude = abs(imbalance_wh)
    if magnitude <= tolerance_wh:
        return 0
    return magnitude * price_micro_eur_per_kwh // 1000


def _slot_index(label: str) -> int:
    for entry in artifact()["storageLayout"]:
        if entry["label"] == label:
            return int(entry["slot"])
    raise KeyError(label)


def record_slots(meter: bytes, interval_start: int, interval_length: int) -> tuple[bytes, bytes]:
    """The storage slots recordIntervals touches for one meter: (records[meter][pair], chainHead[meter]).

    Records of two consecutive intervals share a word: with k = interval_start // interval_length + (the
    meter id's lowest bit), the key is k // 2. Listing the slots in an EIP-2930 access list pre-warms them
    (1,900 gas each instead of 2,100 cold).
    """
    pair = (interval_start // interval_length + (meter[-1] & 1)) // 2
    inner = keccak(meter + _slot_index("records").to_bytes(32, "big"))
    record = keccak(pair.to_bytes(32, "big") + inner)
    head = keccak(meter + _slot_index("chainHead").to_bytes(32, "big"))
    return record, head
