"""The settlement contract as Python sees it: the compiled artifact, meter ids, and the on-chain hash chain.

Pure functions only; the web3 side is in `client`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from functools import cache
from pathlib import Path
from typing import Any

from eth_abi import encode
from eth_utils import keccak

ARTIFACT = Path(__file__).resolve().parent.parent / "contracts" / "Settlement.json"
SOURCE = Path(__file__).resolve().parents[2] / "contracts" / "Settlement.sol"
INT64_MAX = 2**63 - 1
ZERO32 = b"\x00" * 32


class EnergyError(ValueError):
    """An energy value that cannot be recorded on chain (not a number, or outside int96)."""


@cache
def artifact() -> dict[str, Any]:
    """The committed compiler output: abi, bytecode, deployedBytecode, storageLayout, sourceSha256."""
    return json.loads(ARTIFACT.read_text())  # type: ignore[no-any-return]


def meter_key(tenant: str, service_path: str, entity_id: str) -> bytes:
    """A meter's on-chain id: keccak256 of the UTF-8 text "<tenant>|<service_path>|<entity_id>"."""
    return keccak(f"{tenant}|{service_path}|{entity_id}".encode())


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
    """Whole Wh from the store's decimal text (half-even rounding); no energy attribute means 0 Wh."""
    if text is None:
        return 0
    try:
        value = Decimal(text).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    except InvalidOperation as exc:
        raise EnergyError(f"energy {text!r} is not a number") from exc
    if not value.is_finite() or abs(value) > INT64_MAX:
        raise EnergyError(f"energy {text!r} Wh is outside the contract's range")
    return int(value)


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
