"""A meter's ed25519 key pair as the keystore hands it to the ledger writer (only base58 and the ledger's
transaction builder beside it, so both the keystore and its cache can import it)."""

from __future__ import annotations

from dataclasses import dataclass, field

import base58

from connector.ledger.fast_tx import signing_key


@dataclass(frozen=True)
class KeyPair:
    """An ed25519 key pair as BigchainDB writes it: base58 public key and base58 32-byte private seed.

    `secret`, when not empty, is libsodium's 64-byte signing key of the pair (seed, then raw public key),
    made by `with_secret`, which checked that it is `public_key`'s: signing then skips deriving and checking
    it again (`connector.ledger.fast_tx`). Neither private part is ever in a repr."""

    public_key: str
    private_key: str = field(repr=False)
    secret: bytes = field(default=b"", repr=False, compare=False)

    def __str__(self) -> str:
        return f"KeyPair(public_key={self.public_key!r})"

    def with_secret(self) -> KeyPair:
        """This pair with its signing key, or as it is if its private key is not `public_key`'s (or no key
        at all): signing derives the key then, and refuses the mismatch."""
        try:
            secret = signing_key(self.public_key, self.private_key)
        except (ValueError, TypeError):  # a mismatch, not base58, not 32 bytes: reported when signing
            return self
        # Only for the canonical text of the key: signing then writes `public_key` where the driver writes
        # the raw half's base58, which is `public_key` exactly when it is canonical.
        if base58.b58encode(secret[32:]).decode() != self.public_key:
            return self
        return KeyPair(self.public_key, self.private_key, secret)
