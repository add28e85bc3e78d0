"""What the ledger writer's per-row and batched paths share: a signed row ready to send, and why not."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class Blocked(Exception):
    """A row cannot be signed yet (no confirmed asset, or the keystore lacks the meter's key)."""


@dataclass(frozen=True)
class Job:
    """A claimed, signed row ready to send: `text` is its JSON as stored in the outbox, the bytes sent."""

    row_id: int
    meter_id: int
    operation: str
    tx: dict[str, Any]
    text: str
    was_sent: bool

    @property
    def tx_id(self) -> str:
        return str(self.tx["id"])
