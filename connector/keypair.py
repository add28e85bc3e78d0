"""A meter's ed25519 key pair as the keystore hands it to the ledger writer (standard library, base58 and
libsodium only, so both the keystore and its cache can import it)."""

from __future__ import annotations

from dataclasses import dataclass, field

import base58
from nacl.bindings import crypto_sign_seed_keypair


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
            raw_public, secret = crypto_sign_seed_keypair(bytes(base58.b58decode(self.private_key)))
        except (ValueError, TypeError):  # not base58, not 32 bytes: fast_tx reports it when signing
            return self
        # Base58 is one-to-one: the key's raw bytes encode to `public_key` exactly when they are its bytes.
        if base58.b58encode(raw_public).decode() != self.public_key:
            return self
        return KeyPair(self.public_key, self.private_key, bytes(secret))
