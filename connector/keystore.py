"""The connector's keystore: one ed25519 key pair per meter, plus named secrets, kept in files.

Layout: a directory (mode 0700) holding `keystore.json` (format, and with a passphrase the KDF salt and a
check value) and one file per entry (mode 0600), named by the SHA-256 of what it stores so names never leak
tenants or entity ids. Files are created atomically and exclusively: written to a temporary file, fsynced,
then hard-linked to the final name, which fails if the name exists. Two processes that create the same
meter's key at once therefore both end with the winner's key.

With a passphrase, secrets are sealed with AES-256-GCM under a key derived once per keystore with Argon2id;
each file has its own nonce and the entry name as associated data. A private key never appears in a repr,
a log line or an exception message.
"""

from __future__ import annotations

import base64
import builtins
import hashlib
import json
import os
import secrets
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from connector.keycache import KeyCache
from connector.keypair import KeyPair

FORMAT = "smartmeter-connector/keystore/v1"
BACKUP_FORMAT = "smartmeter-connector/keystore-backup/v1"
HEADER = "keystore.json"
CHECK_PLAINTEXT = b"smartmeter-connector keystore check"
KDF_PARAMS = {"name": "argon2id", "iterations": 2, "lanes": 4, "memory_cost": 65536}
# Meter key pairs kept in memory (connector/keycache.py: 340 bytes each, 51 MB when full, 34 MB at 100,000
# meters). The writer signs every meter's window in turn, so fewer than the meters is a file read and a key
# derivation for every signature (75 us of CPU): 20,000 did that for every TRANSFER past 20,000 meters.
KEY_CACHE = 150_000


class KeystoreError(Exception):
    """The keystore cannot be used as asked; the message never contains key material."""


class WrongPassphrase(KeystoreError):
    """The passphrase does not open this keystore."""


KEY_MISSING = "key missing"  # how KeyMissing's message starts (the outbox row's last_error shows it)


class KeyMissing(KeystoreError):
    """The keystore lacks the key a meter's asset is owned by (lost keystore): restore the backup."""


# A restore's planned entries: (backup record, secret, public key of the entry here or None).
_Plan = list[tuple[dict[str, Any], bytes, str | None]]


@dataclass(frozen=True)
class Restored:
    """What a restore did: entries added, and meters whose key it replaced (name, replaced public key)."""

    added: int
    replaced: list[tuple[str, str | None]]


@dataclass(frozen=True)
class Entry:
    """One keystore entry as listed: kind ("meter" or "secret"), its name, and a meter's public key."""

    kind: str
    name: str
    public_key: str | None
    file: str


# BigchainDB 2.2.2's transaction schema takes a public key only as 43 or 44 base58 characters (pattern
# "[1-9a-zA-Z^OIl]{43,44}"). About one ed25519 key in 50,000 (a leading zero byte and a small rest) encodes
# to 42 or fewer, and the ledger rejects its CREATE: seen once at 100,000 meters (2026-12-07), which left
# the meter's CREATE dead and every window of it unanchored.
LEDGER_KEY_LENGTHS = (43, 44)


def ledger_accepts(public_key: str) -> bool:
    """Whether BigchainDB's transaction schema takes `public_key` (the length of its base58 text)."""
    return len(public_key) in LEDGER_KEY_LENGTHS


def _generate_meter_keypair(seed: Callable[[], bytes] = lambda: os.urandom(32)) -> KeyPair:
    """A new meter key pair the ledger accepts: one it would reject is drawn again."""
    from bigchaindb_driver.crypto import generate_keypair

    while True:
        pair = generate_keypair(seed())
        if ledger_accepts(pair.public_key):
            return KeyPair(public_key=pair.public_key, private_key=pair.private_key)


def _file_name(kind: str, name: str) -> str:
    return f"{kind}-{hashlib.sha256(name.encode('utf-8')).hexdigest()[:40]}.json"


def _write_exclusive(directory: Path, name: str, data: bytes) -> bool:
    """Create `directory/name` with `data` (mode 0600) atomically; False if it already exists."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
        os.close(fd)
        fd = -1
        try:
            os.link(tmp, directory / name)  # fails if the name exists: the first writer wins
        except FileExistsError:
            return False
        _fsync_dir(directory)
        return True
    finally:
        if fd >= 0:
            os.close(fd)
        os.unlink(tmp)


def _write_replacing(directory: Path, name: str, data: bytes) -> None:
    """Put `data` at `directory/name` as a new file (mode 0600): written and fsynced beside it, then
    renamed over whatever was there, so readers see the old or the new file, never a part."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, directory / name)
        _fsync_dir(directory)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Keystore:
    """Meter key pairs and named secrets in a directory; see the module docstring for the guarantees."""

    def __init__(self, path: str | os.PathLike[str], passphrase: str = "", cache: int = KEY_CACHE) -> None:
        self.path = Path(path)
        self._passphrase = passphrase
        self._lock = threading.Lock()
        self._cache = KeyCache(cache)  # the most recently used meters' pairs, with their signing keys
        self._aead: AESGCM | None = None
        self._opened = False

    def __repr__(self) -> str:
        return f"Keystore(path={str(self.path)!r}, encrypted={bool(self._passphrase)})"

    # -- public API ---------------------------------------------------------------------------------------

    def meter_keypair(self, meter_ref: str) -> KeyPair:
        """The key pair of `meter_ref` ("tenant|service_path|entity_id"), created on first use.

        Called only for a meter none of whose transactions was signed yet (signing_keys): a key kept from
        before `ledger_accepts` was checked that the ledger would reject is replaced here."""
        with self._lock:
            cached = self._cache.get(meter_ref)
            if cached is not None:
                return cached
            record = self._read("meter", meter_ref)
            if record is not None and not ledger_accepts(str(record.get("public_key"))):
                return self._replace(meter_ref, str(record.get("public_key")))
            if record is None:
                new = _generate_meter_keypair()
                self._create("meter", meter_ref, new.public_key, new.private_key.encode())
                record = self._read("meter", meter_ref)
                assert record is not None  # we or a concurrent writer just created it
            pair = KeyPair(record["public_key"], self._unseal(record).decode()).with_secret()
            self._cache.put(meter_ref, pair)
            return pair

    def replace_meter_keypair(self, meter_ref: str, rejected: str) -> KeyPair:
        """A new key pair for `meter_ref` in place of `rejected`, the one kept. Only for a key no ledger
        transaction can be owned by (one `ledger_accepts` refuses: every transaction signed with it was
        rejected)."""
        with self._lock:
            return self._replace(meter_ref, rejected)

    def _replace(self, meter_ref: str, rejected: str) -> KeyPair:
        """The key pair that replaces `rejected` for `meter_ref`: the same in every process that replaces
        it at once. Each writes its candidate exclusively under a successor name made from the rejected key
        (the first writer wins, as in `_create`) and puts the winner's file in the meter's place; the
        successor stays, so a process that comes later for the same rejected key gets the same pair."""
        name = _file_name("meter", meter_ref)
        successor = f".renew-{hashlib.sha256(f'{name}|{rejected}'.encode()).hexdigest()[:40]}"
        new = _generate_meter_keypair()
        record: dict[str, Any] = {"kind": "meter", "name": meter_ref, "public_key": new.public_key}
        record.update(self._seal(meter_ref, new.private_key.encode()))
        _write_exclusive(self.path, successor, json.dumps(record, sort_keys=True).encode())
        won = self._load_file(self.path / successor)
        if won["kind"] != "meter" or won["name"] != meter_ref:
            raise KeystoreError(f"keystore file {successor} does not hold the entry its name says")
        current = self._read("meter", meter_ref)
        if current is None or current.get("public_key") == rejected:
            _write_replacing(self.path, name, json.dumps(won, sort_keys=True).encode())
        elif current.get("public_key") != won["public_key"]:  # e.g. a restore put another key there since
            if not ledger_accepts(str(current.get("public_key"))):
                raise KeystoreError(f"keystore file {name} holds another key the ledger rejects")
            won = current
        pair = KeyPair(won["public_key"], self._unseal(won).decode()).with_secret()
        self._cache.put(meter_ref, pair)
        return pair

    def keypair_for(self, meter_ref: str, public_key: str) -> KeyPair:
        """The key pair of `meter_ref` whose public key is `public_key` (the key its asset is owned by).

        Never creates a key: a meter that already has an asset must not silently get a new one. Raises
        KeyMissing when the keystore has no key for the meter or another one (a restore may since have
        put the right one back: the file is read again whenever the cached pair does not match).
        """
        with self._lock:
            cached = self._cache.get(meter_ref)
            if cached is not None and cached.public_key == public_key:
                return cached
            record = self._read("meter", meter_ref)
            if record is None or record.get("public_key") != public_key:
                what = "no key" if record is None else "another key"
                raise KeyMissing(
                    f"{KEY_MISSING}: the keystore has {what} for this meter, whose asset is owned by "
                    f"{public_key}; its ledger work is held until `keys restore BACKUP` puts it back"
                )
            pair = KeyPair(public_key, self._unseal(record).decode()).with_secret()
            self._cache.put(meter_ref, pair)
            return pair

    @property
    def cached(self) -> int:
        """How many meter key pairs are held in memory (at most the `cache` it was made with)."""
        return len(self._cache)

    def public_key(self, meter_ref: str) -> str | None:
        """The public key of `meter_ref`, or None if the keystore has no key for it. Never creates one."""
        record = self._read("meter", meter_ref)
        return None if record is None else str(record["public_key"])

    def secret(self, name: str, create: Callable[[], bytes]) -> bytes:
        """The named secret (e.g. an Ethereum account key); `create()` makes it on first use."""
        with self._lock:
            record = self._read("secret", name)
            if record is None:
                self._create("secret", name, None, create())
                record = self._read("secret", name)
                assert record is not None
            return self._unseal(record)

    def list(self) -> list[Entry]:
        """Every entry, sorted by kind and name; opens no secret."""
        if not self.path.is_dir():
            return []
        self._open()  # a wrong passphrase is an error here too, not a silent listing
        entries = []
        for file in sorted(self.path.glob("*-*.json")):
            record = self._load_file(file)
            entries.append(Entry(record["kind"], record["name"], record.get("public_key"), file.name))
        return sorted(entries, key=lambda e: (e.kind, e.name))

    def backup(self, target: str | os.PathLike[str]) -> int:
        """Write every entry, still sealed as stored, to one file (mode 0600); returns the entry count.

        The file is always a new one (written beside `target`, then renamed over it), so a backup onto an
        existing file never keeps that file's wider mode. The backup is only as confidential as the
        keystore: without a passphrase it holds plain keys.
        """
        self._open()
        files = {f.name: self._load_file(f) for f in sorted(self.path.glob("*-*.json"))}
        header = json.loads((self.path / HEADER).read_text())
        doc = {"format": BACKUP_FORMAT, "header": header, "entries": files}
        target = Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps(doc, sort_keys=True, indent=1).encode()
        _write_replacing(target.parent, target.name, data)
        return len(files)

    def restore(
        self, source: str | os.PathLike[str], replaceable: Callable[[str, str], bool] | None = None
    ) -> Restored:
        """Add the entries of a backup that this keystore lacks.

        The backup must have been made under the same passphrase. An entry that exists here with a
        different public key or secret is a conflict, and stops the restore before anything is written,
        unless it is a meter key and `replaceable(name, backup_public_key)` says the backup's key is the
        one the meter's asset is owned by: then the backup's key replaces the one here (a key made after
        the keystore was lost), and the result names it.
        """
        doc = json.loads(Path(source).read_text())
        if doc.get("format") != BACKUP_FORMAT:
            raise KeystoreError(f"{source} is not a keystore backup")
        backup_aead = self._aead_for(doc["header"])
        self._open()
        add, replace = self._restore_plan(doc["entries"], backup_aead, replaceable)
        added = sum(self._create(r["kind"], r["name"], r.get("public_key"), v) for r, v, _old in add)
        for record, value, _old in replace:
            self._overwrite(record["kind"], record["name"], record["public_key"], value)
        with self._lock:
            self._cache.clear()
        return Restored(added, [(r["name"], old) for r, _v, old in replace])

    def _restore_plan(
        self,
        entries: dict[str, Any],
        backup_aead: AESGCM | None,
        replaceable: Callable[[str, str], bool] | None,
    ) -> tuple[_Plan, _Plan]:
        """(entries to add, entries to replace), each (record, value, current public key); KeystoreError
        naming every conflicting entry when any conflict may not be replaced."""
        add: _Plan = []
        replace: _Plan = []
        conflicts: builtins.list[str] = []
        for file_name, record in sorted(entries.items()):
            value = self._unseal(record, backup_aead)
            current = self._read(record["kind"], record["name"])
            if current is None:
                add.append((record, value, None))
            elif self._unseal(current) == value and current.get("public_key") == record.get("public_key"):
                continue
            elif (
                record["kind"] == "meter"
                and replaceable
                and replaceable(record["name"], record["public_key"])
            ):
                replace.append((record, value, current.get("public_key")))
            else:
                conflicts.append(file_name)
        if conflicts:
            raise KeystoreError(f"restore conflict: entries {', '.join(conflicts)} differ from the ones here")
        return add, replace

    # -- files ----------------------------------------------------------------------------------------------

    def _open(self) -> None:
        if self._opened:
            return
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.path, 0o700)
        header_file = self.path / HEADER
        if not header_file.exists():
            _write_exclusive(self.path, HEADER, json.dumps(self._new_header(), sort_keys=True).encode())
        self._aead = self._aead_for(json.loads(header_file.read_text()))
        self._opened = True

    def _new_header(self) -> dict[str, Any]:
        if not self._passphrase:
            return {"format": FORMAT, "encrypted": False}
        salt = secrets.token_bytes(16)
        aead = AESGCM(self._derive(salt, KDF_PARAMS))
        nonce = secrets.token_bytes(12)
        check = aead.encrypt(nonce, CHECK_PLAINTEXT, None)
        return {
            "format": FORMAT,
            "encrypted": True,
            "kdf": dict(KDF_PARAMS, salt=_b64(salt)),
            "check": {"nonce": _b64(nonce), "ciphertext": _b64(check)},
        }

    def _aead_for(self, header: dict[str, Any]) -> AESGCM | None:
        """The cipher a keystore header describes under our passphrase (None when not encrypted)."""
        if header.get("format") != FORMAT:
            raise KeystoreError("unknown keystore format")
        if not header["encrypted"]:
            if self._passphrase:
                raise KeystoreError("the keystore is not encrypted but a passphrase was given")
            return None
        if not self._passphrase:
            raise KeystoreError("the keystore is encrypted: set the keystore passphrase")
        kdf = header["kdf"]
        aead = AESGCM(self._derive(_unb64(kdf["salt"]), kdf))
        try:
            aead.decrypt(_unb64(header["check"]["nonce"]), _unb64(header["check"]["ciphertext"]), None)
        except InvalidTag:
            raise WrongPassphrase("wrong keystore passphrase") from None
        return aead

    def _derive(self, salt: bytes, params: dict[str, Any]) -> bytes:
        if params.get("name") != "argon2id":
            raise KeystoreError(f"unsupported key derivation {params.get('name')!r}")
        kdf = Argon2id(
            salt=salt,
            length=32,
            iterations=int(params["iterations"]),
            lanes=int(params["lanes"]),
            memory_cost=int(params["memory_cost"]),
        )
        return kdf.derive(self._passphrase.encode("utf-8"))

    def _read(self, kind: str, name: str) -> dict[str, Any] | None:
        self._open()
        file = self.path / _file_name(kind, name)
        if not file.exists():
            return None
        record = self._load_file(file)
        if record["kind"] != kind or record["name"] != name:
            raise KeystoreError(f"keystore file {file.name} does not hold the entry its name says")
        return record

    @staticmethod
    def _load_file(file: Path) -> dict[str, Any]:
        try:
            record: dict[str, Any] = json.loads(file.read_text())
        except (OSError, ValueError) as exc:
            raise KeystoreError(f"cannot read keystore file {file.name}: {type(exc).__name__}") from None
        return record

    def _create(self, kind: str, name: str, public_key: str | None, value: bytes) -> bool:
        record: dict[str, Any] = {"kind": kind, "name": name, "public_key": public_key}
        record.update(self._seal(name, value))
        data = json.dumps(record, sort_keys=True).encode()
        return _write_exclusive(self.path, _file_name(kind, name), data)

    def _overwrite(self, kind: str, name: str, public_key: str | None, value: bytes) -> None:
        record: dict[str, Any] = {"kind": kind, "name": name, "public_key": public_key}
        record.update(self._seal(name, value))
        _write_replacing(self.path, _file_name(kind, name), json.dumps(record, sort_keys=True).encode())

    def _seal(self, name: str, value: bytes) -> dict[str, str]:
        if self._aead is None:
            return {"secret": _b64(value)}
        nonce = secrets.token_bytes(12)
        return {"nonce": _b64(nonce), "ciphertext": _b64(self._aead.encrypt(nonce, value, name.encode()))}

    def _unseal(self, record: dict[str, Any], aead: AESGCM | None | bool = False) -> bytes:
        cipher = self._aead if aead is False else aead
        if "secret" in record:
            if cipher is not None:
                raise KeystoreError(f"entry {record['kind']} is stored in clear in an encrypted keystore")
            return _unb64(record["secret"])
        if cipher is None or not isinstance(cipher, AESGCM):
            raise KeystoreError("the entry is encrypted: set the keystore passphrase")
        try:
            nonce, sealed = _unb64(record["nonce"]), _unb64(record["ciphertext"])
            return cipher.decrypt(nonce, sealed, record["name"].encode())
        except InvalidTag:
            raise WrongPassphrase("a keystore entry does not decrypt with this passphrase") from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"))
