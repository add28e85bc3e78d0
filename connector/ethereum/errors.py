"""What the bridge must do next after an Ethereum error: the one place errors are sorted.

Evidence for each class, checked against anvil 1.7.1, web3 8.0.0, requests 2.34 and eth-account 0.14
(geth sends the same texts):
- A revert (ContractLogicError and its ContractCustomError/ContractPanicError, raised by web3's error
  formatters on eth_estimateGas/eth_call) is final: the same call fails again, so the work is dead and an
  alert is raised.
- "nonce too low" / "nonce too high" (anvil's and geth's texts): our local nonce is off the chain's (another
  process used the key, or a transaction we thought lost was mined): resync from the node and send again.
- "replacement transaction underpriced", "transaction underpriced", "max fee per gas less than block base
  fee": raise the fees (within the cap) and send again.
- "already known" / "transaction already imported": the node has exactly this transaction: it was sent.
- "Insufficient funds for gas * price + value" (anvil; geth: "insufficient funds for gas * price + value"):
  the reporter key needs ether. Topping it up fixes it, so retry (reported stuck past max_attempts).
- TimeExhausted: the receipt did not come in time; the transaction may still be mined, so look it up by
  hash before sending anything again.
- The node away: requests' ConnectionError and Timeout (web3's HTTPProvider lets them through, after its
  own retries), OSError's ConnectionError/TimeoutError, web3's ProviderConnectionError, RequestTimedOut
  ("request timed out", geth) and TransactionNotFound -> retry later.
- requests' HTTPError (HTTPProvider's raise_for_status): 5xx, 429 and 401/403/404/405/408 are a node or a
  proxy not ready or a deployment problem (auth, routing, rate limit), not this transaction -> retry.
- JSON-RPC codes of EIP-1474 that say "not now": -32002 resource unavailable, -32005 limit exceeded.
- Our own FeeCapReached (fees above ethereum.max_fee_gwei) and NotAccepted (nonce and fees kept moving
  while we fixed them): both pass with time -> retry.
- Anything else has no evidence behind it: eth-account's TypeError/ValueError for a transaction it cannot
  sign ("Transaction had invalid fields"), an RPC error text we have not seen, a bug of ours. Sending it
  again will not help and retrying it forever would hide it: UNKNOWN, handled as dead and alerted.

`CALL_ERRORS` are the exception classes the libraries raise from a node call or a signature; only those
are caught around such calls (anything else propagates).
"""

from __future__ import annotations

import enum

import requests
from web3.exceptions import (
    ContractLogicError,
    ProviderConnectionError,
    RequestTimedOut,
    TimeExhausted,
    TransactionNotFound,
    Web3Exception,
    Web3RPCError,
)


class EthereumError(Exception):
    """Base of the bridge's own errors."""


class FeeCapReached(EthereumError):
    """The fees needed exceed ethereum.max_fee_gwei; the transaction waits until the base fee drops."""


class NotAccepted(EthereumError):
    """The node kept refusing a transaction after its nonce and fees were fixed (they moved meanwhile)."""


# web3's own classes, requests' (passed through by HTTPProvider), OSError (sockets), and the plain
# TypeError/ValueError that eth-account, eth-utils and hexbytes raise for values they cannot encode or sign.
CALL_ERRORS: tuple[type[Exception], ...] = (
    Web3Exception,
    requests.RequestException,
    OSError,
    TypeError,
    ValueError,
    EthereumError,
)


class Action(enum.Enum):
    REVERT = "revert"  # permanent: mark dead, alert
    RESYNC_NONCE = "resync_nonce"  # fix the nonce, retry at once
    BUMP_FEES = "bump_fees"  # raise fees (capped), retry at once
    ALREADY_SENT = "already_sent"  # the node has it; wait for the receipt
    LOOKUP_RECEIPT = "lookup_receipt"  # timeout: ask for the receipt by hash before resending
    RETRY = "retry"  # transient: back off and retry
    UNKNOWN = "unknown"  # no evidence what it means: permanent, mark dead, alert

    @property
    def dead(self) -> bool:
        """True when the work must be given up (and an alert raised) rather than tried again."""
        return self in (Action.REVERT, Action.UNKNOWN)


_MESSAGES = (
    ("nonce too low", Action.RESYNC_NONCE),
    ("nonce too high", Action.RESYNC_NONCE),
    ("replacement transaction underpriced", Action.BUMP_FEES),
    ("transaction underpriced", Action.BUMP_FEES),
    ("less than block base fee", Action.BUMP_FEES),
    ("fee cap less than block base fee", Action.BUMP_FEES),
    ("already known", Action.ALREADY_SENT),
    ("already imported", Action.ALREADY_SENT),
    ("insufficient funds for gas", Action.RETRY),
    ("execution reverted", Action.REVERT),
)
NOT_NOW_RPC_CODES = frozenset({-32002, -32005})  # EIP-1474: resource unavailable, limit exceeded
RETRY_HTTP = frozenset({401, 403, 404, 405, 408, 429})
NODE_AWAY = (
    requests.ConnectionError,
    requests.Timeout,
    ConnectionError,
    TimeoutError,
    ProviderConnectionError,
    RequestTimedOut,
    TransactionNotFound,
)


def classify(exc: BaseException) -> Action:
    """The next step after `exc` raised by web3 while estimating, signing, sending or waiting; an error
    without evidence behind it is UNKNOWN (dead and alerted), never retried."""
    if isinstance(exc, ContractLogicError):
        return Action.REVERT
    if isinstance(exc, TimeExhausted):
        return Action.LOOKUP_RECEIPT
    if isinstance(exc, (*NODE_AWAY, FeeCapReached, NotAccepted)):
        return Action.RETRY
    if isinstance(exc, requests.HTTPError):
        status = exc.response.status_code if exc.response is not None else 0
        return Action.RETRY if status >= 500 or status in RETRY_HTTP else Action.UNKNOWN
    if isinstance(exc, Web3RPCError | ValueError):
        return _by_message(exc)
    return Action.UNKNOWN


def _by_message(exc: Web3RPCError | ValueError) -> Action:
    text = str(exc).lower()
    for needle, action in _MESSAGES:
        if needle in text:
            return action
    response = getattr(exc, "rpc_response", None) or {}
    error = response.get("error") if isinstance(response, dict) else None
    if isinstance(error, dict) and error.get("code") in NOT_NOW_RPC_CODES:
        return Action.RETRY
    return Action.UNKNOWN


def describe(exc: BaseException) -> str:
    """A short, key-free description for logs and the outbox's last_error."""
    return f"{type(exc).__name__}: {str(exc)[:300]}"
