"""Signed BigchainDB v2.0 CREATE and TRANSFER transactions, byte-identical to bigchaindb-driver 0.6.2's.

The driver's `prepare_*_transaction` + `fulfill_transaction` build a model (cryptoconditions objects,
pyasn1 encoding, deep copies, three serializations) and cost about 0.9 ms of CPU per transaction. For the
connector's two shapes (one single-key ed25519 input, one output of amount 1 to the same key) the result is
fixed apart from the key, the asset or metadata and the signature, so it is built here directly:

- the condition URI of an ed25519 key is `ni:///sha-256;<b64url(sha256(DER fingerprint))>?fpt=ed25519-sha-256
  &cost=131072`, the fingerprint being `30 22 80 20 <key>` (cryptoconditions 0.8.1's
  `Ed25519Sha256.fingerprint_contents`); computed once per key;
- the signed message is SHA3-256 of the serialized transaction with every fulfillment and the id null,
  updated with `<txid><index>` for a TRANSFER input (the driver's `_sign_simple_signature_fulfillment`);
- the fulfillment URI is b64url, unpadded, of the DER `a4 64 80 20 <key> 81 40 <signature>`
  (cryptoconditions' `serialize_uri`);
- the id is SHA3-256 of the serialized signed transaction with `"id": null`;
- serialization is the driver's own: `rapidjson.dumps(..., ensure_ascii=False, sort_keys=True)`.

Dictionaries are built in the driver's key order too, so even an unsorted dump of them is identical.
`tests/ledger/test_fast_transactions.py` compares every byte with the driver over generated data.
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache
from typing import Any, NamedTuple

import base58
import rapidjson
from nacl.bindings import crypto_sign, crypto_sign_seed_keypair

ED25519 = "ed25519-sha-256"
_FINGERPRINT_PREFIX = b"\x30\x22\x80\x20"  # SEQUENCE (34 bytes) { [0] publicKey (32 bytes) }
_FULFILLMENT_PREFIX = b"\xa4\x64\x80\x20"  # [4] ed25519-sha-256 fulfillment (100 bytes) { [0] key ...
_SIGNATURE_PREFIX = b"\x81\x40"  # ... [1] signature (64 bytes) }
_COST = 131072  # Ed25519Sha256.CONSTANT_COST


class KeyMismatch(ValueError):
    """The private key is not the pair of the public key it should sign for."""


def serialize(tx: dict[str, Any]) -> str:
    """The driver's serialization (`bigchaindb_driver.common.utils.serialize`): sorted keys, no spaces,
    UTF-8 kept; what ids and signatures are computed over."""
    return rapidjson.dumps(tx, skipkeys=False, ensure_ascii=False, sort_keys=True)  # type: ignore[no-any-return]


# What is derived from a public key is cached for the keys of about one round (the writer's BATCH rows):
# each is used several times while its transaction is built. Kept longer it was 0.6 KB a key, and with
# more meters than entries, signed in turn, the cache would hold 42 MB and still miss every time.
KEY_CACHE = 4096


@lru_cache(maxsize=KEY_CACHE)
def _raw_public_key(public_key: str) -> bytes:
    return bytes(base58.b58decode(public_key))


@lru_cache(maxsize=KEY_CACHE)
def condition_uri(public_key: str) -> str:
    """The condition URI of a single ed25519 key output (cryptoconditions' `condition_uri`)."""
    return _condition_uri(hashlib.sha256(_FINGERPRINT_PREFIX + _raw_public_key(public_key)).digest())


def _condition_uri(fingerprint_digest: bytes) -> str:
    return f"ni:///sha-256;{_b64url(fingerprint_digest)}?fpt={ED25519}&cost={_COST}"


@lru_cache(maxsize=KEY_CACHE)
def _details_key(public_key: str) -> str:
    # The driver writes the condition details' key back from the raw bytes (canonical base58).
    return base58.b58encode(_raw_public_key(public_key)).decode()


def fulfillment_uri(raw_public_key: bytes, signature: bytes) -> str:
    """The URI of an ed25519-sha-256 fulfillment (cryptoconditions' `serialize_uri`)."""
    return _b64url(_FULFILLMENT_PREFIX + raw_public_key + _SIGNATURE_PREFIX + signature)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signing_key(public_key: str, private_key: str) -> bytes:
    """libsodium's 64-byte secret key (seed + public key) for the base58 seed `private_key`; KeyMismatch
    if it is not `public_key`'s, ValueError if `private_key` is no base58 32-byte seed."""
    derived, secret = crypto_sign_seed_keypair(bytes(base58.b58decode(private_key)))
    if derived != _raw_public_key(public_key):
        # The driver raises MissingPrivateKeyError here; signing with a mismatched pair must never happen.
        raise KeyMismatch("the private key does not belong to the public key")
    return bytes(secret)


class _Key(NamedTuple):
    """What a transaction needs of its key: the base58 public key, its raw bytes, libsodium's signing key,
    and the output's condition details key and URI."""

    public_key: str
    raw: bytes
    secret: bytes
    details_key: str
    uri: str


def _key(public_key: str, private_key: str, secret: bytes) -> _Key:
    """The key's parts. With `secret` (the keystore's `KeyPair.secret`, checked there to be `public_key`'s,
    whose raw half therefore base58-encodes to `public_key` itself) nothing is decoded or derived: for a
    key outside the caches below that was 45 us of the 120 a TRANSFER took."""
    if secret:
        raw = secret[32:]
        digest = hashlib.sha256(_FINGERPRINT_PREFIX + raw).digest()
        return _Key(public_key, raw, secret, public_key, _condition_uri(digest))
    signing = signing_key(public_key, private_key)
    raw = _raw_public_key(public_key)
    return _Key(public_key, raw, signing, _details_key(public_key), condition_uri(public_key))


def _output(key: _Key) -> dict[str, Any]:
    return {
        "public_keys": [key.public_key],
        "condition": {"details": {"type": ED25519, "public_key": key.details_key}, "uri": key.uri},
        "amount": "1",
    }


def _signed(tx: dict[str, Any], key: _Key, fulfills: dict[str, Any] | None) -> dict[str, Any]:
    message = hashlib.sha3_256(serialize(tx).encode())
    if fulfills is not None:
        message.update(f"{fulfills['transaction_id']}{fulfills['output_index']}".encode())
    signature = crypto_sign(message.digest(), key.secret)[:64]  # signed message = signature + message
    tx["inputs"][0]["fulfillment"] = fulfillment_uri(key.raw, signature)
    tx["id"] = hashlib.sha3_256(serialize(tx).encode()).hexdigest()
    return tx


def _unsigned(
    operation: str, key: _Key, fulfills: dict[str, Any] | None, metadata: Any, asset: dict[str, Any]
) -> dict[str, Any]:
    if metadata is not None and not isinstance(metadata, dict):
        raise TypeError("`metadata` must be a dict or None")
    return {
        "inputs": [{"owners_before": [key.public_key], "fulfills": fulfills, "fulfillment": None}],
        "outputs": [_output(key)],
        "operation": operation,
        "metadata": metadata,
        "asset": asset,
        "version": "2.0",
        "id": None,
    }


def create_transaction(
    public_key: str,
    private_key: str,
    asset: dict[str, Any] | None,
    metadata: dict[str, Any] | None,
    secret: bytes = b"",
) -> dict[str, Any]:
    """A signed CREATE of `asset` (`{"data": ...}` or None) with one output of 1 to `public_key`.

    Equal, and serialized byte for byte equal, to `fulfill_transaction(prepare_create_transaction(
    signers=public_key, asset=asset, metadata=metadata), private_keys=private_key)`.
    Raises TypeError where the driver does (metadata or asset data not a dict), KeyMismatch if the
    private key is not `public_key`'s. `secret`: the pair's checked signing key (`KeyPair.secret`), if known.
    """
    data = asset["data"] if asset else None
    if not (data is None or isinstance(data, dict)):
        raise TypeError("`asset` must be a dict or None")
    key = _key(public_key, private_key, secret)
    return _signed(_unsigned("CREATE", key, None, metadata, {"data": data}), key, None)


def transfer_transaction(
    public_key: str,
    private_key: str,
    asset_id: str,
    spent_tx_id: str,
    metadata: dict[str, Any] | None,
    output_index: int = 0,
    secret: bytes = b"",
) -> dict[str, Any]:
    """A signed TRANSFER of asset `asset_id` spending output `output_index` of `spent_tx_id` (owned by
    `public_key`) and paying it back to `public_key` (one output of amount 1).

    Equal, and serialized byte for byte equal, to the driver's `prepare_transfer_transaction(inputs={
    "fulfillment": {"type": "ed25519-sha-256", "public_key": public_key}, "fulfills": {...},
    "owners_before": [public_key]}, recipients=public_key, asset={"id": asset_id}, metadata=metadata)`
    fulfilled with `private_key` (`secret`: as in `create_transaction`).
    """
    if not isinstance(asset_id, str):
        raise TypeError("`asset_id` must be a string")
    fulfills = {"transaction_id": spent_tx_id, "output_index": output_index}
    key = _key(public_key, private_key, secret)
    return _signed(_unsigned("TRANSFER", key, fulfills, metadata, {"id": asset_id}), key, fulfills)
