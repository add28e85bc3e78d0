"""What to do after a BigchainDB call failed: retry later, give up on this transaction, or check the chain.

The evidence for each verdict (bigchaindb v2.2.2 and bigchaindb-driver 0.6.2, see reference/bigchaindb.md):

- `requests` ConnectionError / the driver's TimeoutError: the node is down or unreachable; the driver has
  already failed over between all URLs until its timeout. Nothing reached a block. -> retry.
- The builtin TimeoutError: the driver's connection.py raises it (it does not import its own) when the time
  left is shorter than a node's backoff; the same situation as the driver's TimeoutError. -> retry.
- `requests` ChunkedEncodingError / ContentDecodingError: the answer broke off or arrived garbled (a proxy,
  a node restarting mid-answer); like a read timeout the POST may have been processed. -> retry.
- `requests` InvalidURL / MissingSchema / InvalidSchema / TooManyRedirects: a node URL or proxy that is
  misconfigured, not a problem of this transaction (fixed by configuration) -> retry, reported stuck.
- `requests` Timeout (read timeout): the request may or may not have been processed. A resend of the same
  signed bytes is harmless (a committed duplicate answers 400 DuplicateTransaction/DoubleSpend). -> retry.
- 500: BigchainDB answers 500 when Tendermint's broadcast fails or a commit-mode POST times out; the tx can
  still be committed later. -> retry (and confirm by reading it back).
- 502/503/504 (the driver's ServiceUnavailable, GatewayTimeout): a proxy or a node not ready. -> retry.
- 401/403/404/405/408/429 on a POST: deployment problems (auth headers, routing, rate limits), not a problem
  of this transaction. -> retry with backoff; past max_attempts reported stuck, never skipped.
- 400 "DuplicateTransaction" / "DoubleSpend ... already spent" / "InputDoesNotExist": the server validated
  our tx against committed state and found it conflicts. Either this very tx is already committed (a resend
  after a crash, or a 202 we never saw) or our chain head is stale (store restored from an older copy).
  -> CONFLICT: read the tx back; if it is there, success; else recover the head from the ledger.
- Any other 400 (schema, key names, signature, amounts, "spends inputs twice"): the tx itself is invalid
  and sending it again cannot help. -> permanent: dead, with the server's message as the reason.
- The driver's key errors (KeypairNotFoundException, InvalidPrivateKey, InvalidPublicKey,
  MissingPrivateKeyError): the transaction cannot be built or signed with what we hold. -> permanent.
- A plain TypeError: requests serializes the POST body itself and wraps only json's ValueError
  (models.py prepare_body), so a transaction holding a value json cannot write raises TypeError as is.
  The writer hands it here (it is in its CALL_ERRORS); it is no network failure -> permanent, as below.
- Anything else (a TypeError, an error class or status without evidence here): sending again cannot be
  shown to help, and retrying it forever would hide it as "stuck". -> permanent, with the reason starting
  "unknown error"; the writer marks the row dead and alerts (ledger.dead at error, connector_ledger_dead).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import requests
from bigchaindb_driver import exceptions as bdb


class Verdict(enum.Enum):
    TRANSIENT = "transient"
    PERMANENT = "permanent"
    CONFLICT = "conflict"


@dataclass(frozen=True)
class Classified:
    """A failed call's verdict and a short reason safe to store and log (no key material)."""

    verdict: Verdict
    reason: str


CONFLICT_MARKERS = ("(DuplicateTransaction)", "(DoubleSpend)", "(InputDoesNotExist)")
# "DoubleSpend: tx ... spends inputs twice" is a malformed tx of ours, not a conflict with the chain.
SELF_DOUBLE_SPEND = "spends inputs twice"
TRANSIENT_4XX = frozenset({401, 403, 404, 405, 408, 429})
BROKEN_ANSWER = (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)
MISCONFIGURED = (
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.TooManyRedirects,
)
KEY_ERRORS = (
    bdb.KeypairNotFoundException,
    bdb.InvalidPrivateKey,
    bdb.InvalidPublicKey,
    bdb.MissingPrivateKeyError,
)


def classify(exc: BaseException) -> Classified:
    """Sort an exception from a BigchainDB call by the evidence above; one without evidence is permanent
    (its reason starts "unknown error"), so it ends dead and alerted instead of being retried forever."""
    if isinstance(exc, bdb.TimeoutError | TimeoutError):
        return Classified(Verdict.TRANSIENT, "timeout: no node answered")
    if isinstance(exc, bdb.TransportError) and isinstance(exc.status_code, int):
        return _classify_http(exc.status_code, _message(exc))
    if isinstance(exc, requests.Timeout):
        return Classified(Verdict.TRANSIENT, f"timeout: {type(exc).__name__}")
    if isinstance(exc, (requests.ConnectionError, ConnectionError, bdb.ConnectionError, *BROKEN_ANSWER)):
        return Classified(Verdict.TRANSIENT, f"connection: {type(exc).__name__}")
    if isinstance(exc, MISCONFIGURED):
        return Classified(Verdict.TRANSIENT, f"node URL: {type(exc).__name__}: {str(exc)[:200]}")
    if isinstance(exc, KEY_ERRORS):
        return Classified(Verdict.PERMANENT, f"key: {type(exc).__name__}")
    return Classified(Verdict.PERMANENT, f"unknown error: {type(exc).__name__}: {str(exc)[:200]}")


def _classify_http(status: int, message: str) -> Classified:
    reason = f"HTTP {status}: {message}"[:500]
    if status == 400:
        if any(marker in message for marker in CONFLICT_MARKERS) and SELF_DOUBLE_SPEND not in message:
            return Classified(Verdict.CONFLICT, reason)
        return Classified(Verdict.PERMANENT, reason)
    if status >= 500 or status in TRANSIENT_4XX:
        return Classified(Verdict.TRANSIENT, reason)
    return Classified(Verdict.PERMANENT, reason)


def _message(exc: bdb.TransportError) -> str:
    info = exc.info
    if isinstance(info, dict) and "message" in info:
        return str(info["message"])
    return str(exc.error)[:300]
