"""What the bridge must do next after an Ethereum error: the one place errors are sorted.

Evidence for each class, checked against anvil 1.7.1 and web3 8.0.0 (geth sends the same texts):
- A revert (ContractLogicError, ContractCustomError with the raw selector) is final: the same call fails
  again, so the work is dead and an alert is raised.
- "nonce too low": our local nonce is behind the chain (another process used the key, or a transaction we
  thought lost was mined): resync from the node and send again.
- "replacement transaction underpriced", "transaction underpriced", "max fee per gas less than block base
  fee": raise the fees (within the cap) and send again.
- "already known" / "transaction already imported": the node has exactly this transaction: it was sent.
- TimeExhausted: the receipt did not come in time; the transaction may still be mined, so look it up by
  hash before sending anything again.
- Connection refused / reset, HTTP timeouts, 5xx: the node is away (restart, network); retry later.
"""

from __future__ import annotations

import enum

import requests
from web3.exceptions import (
    ContractLogicError,
    ProviderConnectionError,
    TimeExhausted,
    TransactionNotFound,
    Web3RPCError,
)


class EthereumError(Exception):
    """Base of the bridge's own errors."""


class Action(enum.Enum):
    REVERT = "revert"  # permanent: mark dead, alert
    RESYNC_NONCE = "resync_nonce"  # fix the nonce, retry at once
    BUMP_FEES = "bump_fees"  # raise fees (capped), retry at once
    ALREADY_SENT = "already_sent"  # the node has it; wait for the receipt
    LOOKUP_RECEIPT = "lookup_receipt"  # timeout: ask for the receipt by hash before resending
    RETRY = "retry"  # transient: back off and retry


_MESSAGES = (
    ("nonce too low", Action.RESYNC_NONCE),
    ("nonce too high", Action.RESYNC_NONCE),
    ("replacement transaction underpriced", Action.BUMP_FEES),
    ("transaction underpriced", Action.BUMP_FEES),
    ("less than block base fee", Action.BUMP_FEES),
    ("fee cap less than block base fee", Action.BUMP_FEES),
    ("already known", Action.ALREADY_SENT),
    ("already imported", Action.ALREADY_SENT),
    ("execution reverted", Action.REVERT),
)


def classify(exc: BaseException) -> Action:
    """The next step after `exc` raised by web3 while estimating, sending or waiting."""
    if isinstance(exc, ContractLogicError):
        return Action.REVERT
    if isinstance(exc, TimeExhausted):
        return Action.LOOKUP_RECEIPT
    if isinstance(exc, Web3RPCError | ValueError):
        text = str(exc).lower()
        for needle, action in _MESSAGES:
            if needle in text:
                return action
    if isinstance(
        exc, requests.RequestException | ProviderConnectionError | ConnectionError | TransactionNotFound
    ):
        return Action.RETRY
    return Action.RETRY


def describe(exc: BaseException) -> str:
    """A short, key-free description for logs and the outbox's last_error."""
    return f"{type(exc).__name__}: {str(exc)[:300]}"
