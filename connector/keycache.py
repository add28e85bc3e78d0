"""The keystore's memory of meter key pairs: bounded, one packed bytes object per meter.

The ledger writer signs every meter's TRANSFER each window, in turn. A pair not in memory is its file read
and parsed again (30 us) and its signing key derived again (45 us: base58 decoding, libsodium's seed
expansion, the key check), so the memory must hold every meter, 100,000 and more; held as `KeyPair`
objects (0.4-0.5 KB each) that was 40-50 MB at 100,000. Here a pair is one bytes object, libsodium's
64-byte signing key followed by the base58 private and public keys, 340 bytes with its name and its
slot (`tests/ledger/test_keystore.py` holds a full cache to its budget). The bytes never appear in a
repr or a log.
"""

from __future__ import annotations

from collections import OrderedDict

from connector.keypair import KeyPair

SECRET = 64  # libsodium's ed25519 signing key: the 32-byte seed, then the 32-byte public key


class KeyCache:
    """At most `capacity` meters' key pairs, least recently used dropped first. Not locked: the keystore
    calls it under its own lock. Only pairs with their signing key (`KeyPair.secret`) are kept."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._packed: OrderedDict[str, bytes] = OrderedDict()

    def get(self, name: str) -> KeyPair | None:
        """The pair kept under `name` (now the most recently used), or None."""
        packed = self._packed.get(name)
        if packed is None:
            return None
        self._packed.move_to_end(name)
        split = SECRET + 1 + packed[SECRET]
        return KeyPair(
            public_key=packed[split:].decode("ascii"),
            private_key=packed[SECRET + 1 : split].decode("ascii"),
            secret=packed[:SECRET],
        )

    def put(self, name: str, pair: KeyPair) -> None:
        """Keep `pair` under `name` if it has its signing key, dropping the least recently used past the
        capacity."""
        self._packed.pop(name, None)
        if len(pair.secret) != SECRET or self.capacity <= 0:
            return
        private = pair.private_key.encode("ascii")
        self._packed[name] = pair.secret + bytes([len(private)]) + private + pair.public_key.encode("ascii")
        while len(self._packed) > self.capacity:
            self._packed.popitem(last=False)

    def clear(self) -> None:
        """Forget every pair."""
        self._packed.clear()

    def __len__(self) -> int:
        return len(self._packed)

    def __repr__(self) -> str:
        return f"KeyCache({len(self)} of {self.capacity})"
