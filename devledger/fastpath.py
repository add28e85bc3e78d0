"""The signature check for the common shape of transaction, without the driver's model round trip.

bigchaindb-driver's `Transaction.from_dict(tx)._inputs_valid(uris)` parses every fulfillment URI with
pyasn1, rebuilds every output's condition, turns the model back into a dict (`to_dict`), blanks the
fulfillments, serializes that as the message, and for each input re-serializes and re-parses the
fulfillment before cryptoconditions verifies it. For a transaction of the shape below every one of those
steps is an identity, so the same verdict comes from the posted body directly:

- every output's condition is a single ed25519 key given in canonical base58 whose condition URI is the
  one the driver would compute (cached per key: it depends on the key alone), and whose amount is the
  canonical decimal of an int in [1, 9 * 10**18];
- every input's fulfillment is a URI string holding exactly the canonical DER of an ed25519 fulfillment
  (`a4 64 80 20 <key> 81 40 <signature>`), which is what `Fulfillment.from_uri` and `serialize_uri` map to
  each other, and `owners_before` is a list.

Then `to_dict()` equals the posted body, the message is `serialize(body with id and fulfillments None)`
plus `<txid><index>` for a TRANSFER input, and verification is cryptoconditions' `Ed25519Sha256.validate`
(PyNaCl), as in the driver. Anything else returns None and goes through the driver's model unchanged, so
its errors and texts stay the driver's.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import base58
from bigchaindb_driver.common.utils import serialize
from cryptoconditions.crypto import base64_add_padding
from cryptoconditions.types.ed25519 import Ed25519Sha256
from sha3 import sha3_256

MAX_AMOUNT = 9 * 10**18  # bigchaindb_driver.common.transaction.Output.MAX_AMOUNT
_ED25519 = "ed25519-sha-256"
_DER_PREFIX = b"\xa4\x64\x80\x20"  # [4] fulfillment, 100 bytes: [0] public key, 32 bytes
_DER_SIGNATURE = b"\x81\x40"  # [1] signature, 64 bytes
_DER_LENGTH = 102
_KEY_LENGTH = Ed25519Sha256.PUBLIC_KEY_LENGTH
_KEY_CHARS = 44
_BASE58_DIGITS = {char: digit for digit, char in enumerate(base58.BITCOIN_ALPHABET.decode())}
# An ed25519 condition's fingerprint is SHA-256 over the DER of `Ed25519FingerprintContents ::= SEQUENCE {
# publicKey [0] OCTET STRING (SIZE(32)) }` (crypto-conditions draft, section 8.4): this prefix and the key.
# cryptoconditions builds that with pyasn1, about 100 us a key; the bytes are the same (tested for many keys).
_FINGERPRINT_PREFIX = b"\x30\x22\x80\x20"
_URI_SUFFIX = "?fpt=ed25519-sha-256&cost=131072"  # Ed25519Sha256.CONSTANT_COST, no subtypes (a simple type)


@dataclass(frozen=True, slots=True)
class FastResult:
    """What the stateless check needs from the driver's model, computed without it."""

    spends: tuple[tuple[str, int], ...]
    spend_condition_uris: tuple[str, ...]
    outputs: tuple[tuple[int, str, tuple[str, ...]], ...]
    signatures_valid: bool


@lru_cache(maxsize=65536)
def condition_uri_of_key(public_key: str) -> str | None:
    """The driver's condition URI for a single-key output, None unless `public_key` is canonical base58."""
    # 32 bytes take at most 44 characters (58**44 > 2**256, a leading zero byte is one "1"); a longer text
    # is not a key, and decoding it would cost time quadratic in its length.
    raw = _canonical_base58(public_key) if len(public_key) <= _KEY_CHARS else None
    return _condition_uri_of_raw(raw) if raw is not None and len(raw) == _KEY_LENGTH else None


def _canonical_base58(text: str) -> bytes | None:
    """The bytes `text` encodes when it is canonical base58, else None.

    The same answer as `base58.b58decode` followed by a check that `b58encode` gives `text` back (the
    library's pair takes ~40 us a key): each character must be in the alphabet (the library's decoding
    also strips trailing whitespace, which the round trip then refuses), leading "1"s are zero bytes, the
    rest is the number's big-endian bytes, without leading zeros, as the encoder writes them.
    """
    number = 0
    for char in text:
        digit = _BASE58_DIGITS.get(char)
        if digit is None:
            return None
        number = number * 58 + digit
    zeros = len(text) - len(text.lstrip("1"))
    return bytes(zeros) + number.to_bytes((number.bit_length() + 7) // 8, "big")


def _condition_uri_of_raw(raw_key: bytes) -> str:
    """`Ed25519Sha256(public_key=raw_key).condition_uri`, for a 32-byte key, without pyasn1."""
    digest = hashlib.sha256(_FINGERPRINT_PREFIX + raw_key).digest()
    return f"ni:///sha-256;{base64.urlsafe_b64encode(digest).rstrip(b'=').decode()}{_URI_SUFFIX}"


def fast_result(tx: dict[str, Any]) -> FastResult | None:
    """The driver's verdict for a schema-valid `tx` of the common shape (see module doc), else None."""
    outputs = _outputs(tx["outputs"])
    if outputs is None:
        return None
    parsed = _inputs(tx["inputs"])
    if parsed is None:
        return None
    blank = {**tx, "id": None, "inputs": [{**i, "fulfillment": None} for i in tx["inputs"]]}
    body_hash = sha3_256(serialize(blank).encode())
    valid = True
    spends = []
    for input_, (fulfillment, _) in zip(tx["inputs"], parsed, strict=True):
        message = body_hash.copy()
        fulfills = input_["fulfills"]
        if fulfills is not None:
            spends.append((fulfills["transaction_id"], fulfills["output_index"]))
            message.update(f"{fulfills['transaction_id']}{fulfills['output_index']}".encode())
        if valid and not fulfillment.validate(message=message.digest()):
            valid = False
    return FastResult(tuple(spends), tuple(uri for _, uri in parsed), outputs, valid)


def _outputs(outputs: list[dict[str, Any]]) -> tuple[tuple[int, str, tuple[str, ...]], ...] | None:
    result = []
    for output in outputs:
        condition = output["condition"]
        details = condition["details"]
        if details.get("type") != _ED25519:
            return None
        uri = condition_uri_of_key(details["public_key"])
        amount = output["amount"]
        if uri is None or uri != condition["uri"] or not (amount.isascii() and amount.isdigit()):
            return None
        value = int(amount)
        if str(value) != amount or not 1 <= value <= MAX_AMOUNT:
            return None
        result.append((value, uri, tuple(output["public_keys"] or ())))
    return tuple(result)


def _inputs(inputs: list[dict[str, Any]]) -> list[tuple[Ed25519Sha256, str]] | None:
    parsed = []
    for input_ in inputs:
        uri = input_["fulfillment"]
        if not isinstance(uri, str) or not isinstance(input_["owners_before"], list):
            return None
        try:
            der = base64.urlsafe_b64decode(base64_add_padding(uri))
        except ValueError:
            return None
        if len(der) != _DER_LENGTH or der[:4] != _DER_PREFIX or der[36:38] != _DER_SIGNATURE:
            return None
        key = der[4:36]
        parsed.append((Ed25519Sha256(public_key=key, signature=der[38:]), _condition_uri_of_raw(key)))
    return parsed
