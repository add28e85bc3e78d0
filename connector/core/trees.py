"""Period hash trees (seed 002's summary tree): one root per tenant and period over all meters' windows.

The leaves are the meters' window records (meter key, window start, energy, fingerprint, chain hash); a
tree is a directory tree (tenant -> service path segments -> meter -> windows) whose every level is an
RFC 6962 Merkle tree hash over its children, with keccak256 and domain-separated leaf (0x00) and node
(0x01) hashing. So every service-path prefix (seed 002's region, group) has a subtree root that is a node
of the tenant root, and one audit path (sibling hashes with their side) proves a window against either.
The exact specification and test vectors are in docs/trees.md. Pure: no I/O, no clock.

keccak256, not SHA-256: the same proof is checked on Ethereum by `PortfolioSettlement.proveMeter`, where
keccak256 is an opcode (48 gas per node) and SHA-256 a precompile call (about 200 gas per node, by the
gas schedule); the leaf's meter key is the contract's meter id, already a keccak256. Note that Python's
`hashlib.sha3_256` is *not* keccak256 (different padding); safe-pysha3's `keccak_256` (already pinned for
the BigchainDB driver) provides it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from functools import cached_property
from itertools import groupby
from typing import Any

from connector.core.directories import (
    DirectoryTree,
    MeterId,
    MeterRoot,
    Prefix,
    as_prefix,
    path_segments,
    prefix_text,
)
from connector.core.merkle import (
    LEAF_PREFIX,
    NODE_PREFIX,
    Step,
    keccak256,
    leaf_hash,
    merkle_path,
    merkle_root,
    node_hash,
    root_from_path,
)

__all__ = [
    "DirectoryTree",
    "LEAF_PREFIX",
    "MeterRoot",
    "NODE_PREFIX",
    "Period",
    "PeriodTree",
    "Proof",
    "Step",
    "WindowLeaf",
    "build_trees",
    "group_by_period",
    "keccak256",
    "leaf_hash",
    "leaf_order",
    "merkle_path",
    "merkle_root",
    "meter_key",
    "meter_proof",
    "meter_roots",
    "node_hash",
    "path_segments",
    "period_roots",
    "periods_of",
    "prefix_text",
    "root_from_path",
    "verify",
    "whole_wh",
]

TREE_DOMAIN = "smartmeter-connector/trees/v1"
DAY = 86_400
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1


def meter_key(tenant: str, service_path: str, entity_id: str) -> bytes:
    """A meter's key: keccak256 of UTF-8 "<tenant>|<service_path>|<entity_id>" (the contract's meter id)."""
    return keccak256(f"{tenant}|{service_path}|{entity_id}".encode())


def whole_wh(text: str | None) -> int:
    """Whole Wh from the store's decimal energy text, rounded half-even; no energy means 0 Wh.

    Raises ValueError for text that is not a finite number within int64 (the contract's range).
    """
    if text is None:
        return 0
    try:
        value = Decimal(text).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    except InvalidOperation as exc:
        raise ValueError(f"energy {text!r} is not a number") from exc
    if not value.is_finite() or abs(value) > INT64_MAX:
        raise ValueError(f"energy {text!r} Wh is outside int64")
    return int(value)


def _hash32(value: bytes | str, name: str) -> bytes:
    raw = bytes.fromhex(value) if isinstance(value, str) else bytes(value)
    if len(raw) != 32:
        raise ValueError(f"{name} must be 32 bytes (64 hex characters), got {len(raw)} bytes")
    return raw


@dataclass(frozen=True)
class WindowLeaf:
    """One meter's closed window as a tree leaf. `window_start` is whole seconds since the epoch (UTC)."""

    tenant: str
    service_path: str
    entity_id: str
    window_start: int
    energy_wh: int
    fingerprint: bytes
    chain_hash: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.window_start <= UINT64_MAX:
            raise ValueError(f"window start {self.window_start} is outside uint64")
        if abs(self.energy_wh) > INT64_MAX:
            raise ValueError(f"energy {self.energy_wh} Wh is outside int64")
        object.__setattr__(self, "fingerprint", _hash32(self.fingerprint, "fingerprint"))
        object.__setattr__(self, "chain_hash", _hash32(self.chain_hash, "chain hash"))

    @classmethod
    def from_window(
        cls,
        tenant: str,
        service_path: str,
        entity_id: str,
        start: datetime,
        energy_text: str | None,
        fingerprint_hex: str,
        chain_hash_hex: str,
    ) -> WindowLeaf:
        """The leaf of a stored window (energy as the store's decimal text, hashes as hex)."""
        if start.utcoffset() is None:
            raise ValueError("naive window start; use timezone-aware UTC")
        return cls(
            tenant,
            service_path,
            entity_id,
            int(start.timestamp()),
            whole_wh(energy_text),
            bytes.fromhex(fingerprint_hex),
            bytes.fromhex(chain_hash_hex),
        )

    @cached_property
    def meter_key(self) -> bytes:
        """keccak256("<tenant>|<service_path>|<entity_id>")."""
        return meter_key(self.tenant, self.service_path, self.entity_id)

    def encode(self) -> bytes:
        """160 bytes: abi.encode(bytes32 meterKey, uint64 start, int256 Wh, bytes32 fp, bytes32 chainHash)."""
        return b"".join(
            (
                self.meter_key,
                self.window_start.to_bytes(32, "big"),
                self.energy_wh.to_bytes(32, "big", signed=True),
                self.fingerprint,
                self.chain_hash,
            )
        )

    @cached_property
    def hash(self) -> bytes:
        """The leaf hash: keccak256(0x00 || encode())."""
        return leaf_hash(self.encode())

    def to_dict(self) -> dict[str, Any]:
        """JSON form: identity, meter key, start (seconds), Wh, hashes as lowercase hex."""
        return {
            "tenant": self.tenant,
            "service_path": self.service_path,
            "entity_id": self.entity_id,
            "meter_key": self.meter_key.hex(),
            "window_start": self.window_start,
            "energy_wh": self.energy_wh,
            "fingerprint": self.fingerprint.hex(),
            "chain_hash": self.chain_hash.hex(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WindowLeaf:
        """The inverse of `to_dict`; raises ValueError when a given meter_key does not match the identity."""
        leaf = cls(
            str(data["tenant"]),
            str(data["service_path"]),
            str(data["entity_id"]),
            int(data["window_start"]),
            int(data["energy_wh"]),
            bytes.fromhex(data["fingerprint"]),
            bytes.fromhex(data["chain_hash"]),
        )
        if "meter_key" in data and bytes.fromhex(data["meter_key"]) != leaf.meter_key:
            raise ValueError("meter_key does not match tenant, service_path and entity_id")
        return leaf


def verify(leaf: WindowLeaf, steps: Iterable[Step], root: bytes) -> bool:
    """Whether `leaf` with audit path `steps` leads to `root`."""
    return root_from_path(leaf.hash, steps) == root


@dataclass(frozen=True, order=True)
class Period:
    """A closed period: `kind` "window" (length = the window length) or "day" (a UTC day, 86,400 s)."""

    kind: str
    start: int
    length: int

    def contains(self, t: int) -> bool:
        """Whether a window starting at `t` belongs to this period."""
        return self.start <= t < self.start + self.length

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "start": self.start, "length": self.length}


def periods_of(window_start: int, window_length: int) -> tuple[Period, Period]:
    """The window period and the UTC day a window starting at `window_start` belongs to (by its start)."""
    window = Period("window", window_start - window_start % window_length, window_length)
    return window, Period("day", window_start - window_start % DAY, DAY)


def group_by_period(
    leaves: Iterable[WindowLeaf], window_length: int
) -> dict[tuple[str, Period], list[WindowLeaf]]:
    """Leaves per (tenant, period), for both kinds of period."""
    groups: dict[tuple[str, Period], list[WindowLeaf]] = {}
    for leaf in leaves:
        for period in periods_of(leaf.window_start, window_length):
            groups.setdefault((leaf.tenant, period), []).append(leaf)
    return groups


class PeriodTree:
    """The tree of one tenant and period: tenant root, subtree roots per service-path prefix, proofs.

    Order: in each directory, first its meters by (entity id, service path), then its subdirectories by
    segment (code points); a meter's windows by start. That is the leaves sorted by
    (service path segments, entity id, service path, window start), segments compared as tuples.
    """

    def __init__(self, tenant: str, period: Period, leaves: Iterable[WindowLeaf]) -> None:
        self.tenant, self.period = tenant, period
        self._meters: dict[MeterId, list[WindowLeaf]] = {}
        for leaf in leaves:
            _check(tenant, period, leaf)
            self._meters.setdefault((leaf.entity_id, leaf.service_path), []).append(leaf)
        if not self._meters:
            raise ValueError(f"no windows for tenant {tenant!r} in {period}")
        self._dirs = DirectoryTree(_meter_root(windows) for windows in self._meters.values())

    @property
    def root(self) -> bytes:
        """The tenant root of the period (seed 002's Hash_G)."""
        return self._dirs.root

    @property
    def energy_wh(self) -> int:
        """The sum of the leaves' whole Wh: the portfolio energy `recordPortfolio` records with the root."""
        return self._dirs.energy_wh

    @property
    def meter_count(self) -> int:
        """How many meters have a window in the period."""
        return len(self._meters)

    def prefixes(self) -> list[Prefix]:
        """Every service-path prefix (directory) that holds a meter of this period, the root () first."""
        return self._dirs.prefixes()

    def subtree_root(self, prefix: Prefix | str) -> bytes:
        """The root of a service-path prefix (a node of the tenant root); KeyError when it has no meter."""
        return self._dirs.subtree_root(prefix)

    def meter_root(self, service_path: str, entity_id: str) -> bytes:
        """A meter's root over its windows of the period (seed 002's Hash^j)."""
        return self._dirs.meter((entity_id, service_path)).root

    def leaves(self) -> list[WindowLeaf]:
        """All leaves in canonical order."""
        out = [leaf for windows in self._meters.values() for leaf in windows]
        return sorted(out, key=leaf_order)

    def proof(self, service_path: str, entity_id: str, window_start: int, to: Prefix | str = ()) -> Proof:
        """The audit path of one window up to the tenant root, or to the subtree root of prefix `to`."""
        windows = self._meters[(entity_id, service_path)]
        starts = [w.window_start for w in windows]
        if window_start not in starts:
            raise KeyError(f"no window {window_start} of {entity_id!r} in {self.period}")
        index = starts.index(window_start)
        steps = merkle_path([w.hash for w in windows], index)
        top = as_prefix(to)
        steps += self._dirs.meter_steps((entity_id, service_path), top)
        root = self.subtree_root(top)
        return Proof(self.tenant, self.period, top, windows[index], tuple(steps), root)

    def directory_proof(self, prefix: Prefix | str) -> tuple[Step, ...]:
        """The audit path from a prefix's subtree root up to the tenant root."""
        return tuple(self._dirs.directory_steps(prefix))


def _check(tenant: str, period: Period, leaf: WindowLeaf) -> WindowLeaf:
    if leaf.tenant != tenant:
        raise ValueError(f"leaf of tenant {leaf.tenant!r} in the tree of {tenant!r}")
    if not period.contains(leaf.window_start):
        raise ValueError(f"window {leaf.window_start} is outside {period}")
    return leaf


def _meter_root(windows: list[WindowLeaf]) -> MeterRoot:
    """The root of one meter's windows; sorts `windows` by start in place (a proof reads them so)."""
    windows.sort(key=lambda w: w.window_start)
    first = windows[0]
    if len({w.window_start for w in windows}) < len(windows):
        raise ValueError(f"two windows of one start for meter {(first.entity_id, first.service_path)}")
    root = merkle_root([w.hash for w in windows])
    return MeterRoot(
        first.service_path, first.entity_id, root, sum(w.energy_wh for w in windows), len(windows)
    )


def meter_roots(tenant: str, period: Period, leaves: Iterable[WindowLeaf]) -> Iterator[MeterRoot]:
    """Each meter's root from leaves that come grouped by meter (a meter's windows one after another, in
    any order among themselves), holding one meter's leaves at a time. Refuses what PeriodTree refuses;
    a meter whose windows are not together comes out twice, which DirectoryTree refuses."""
    for _, group in groupby(leaves, key=lambda w: (w.entity_id, w.service_path)):
        yield _meter_root([_check(tenant, period, w) for w in group])


def period_roots(tenant: str, period: Period, leaves: Iterable[WindowLeaf]) -> DirectoryTree:
    """The tree of leaves grouped by meter (see `meter_roots`) without its leaves: memory bounded by the
    meters, and the same root, subtree roots, meter roots, energy and counts as
    `PeriodTree(tenant, period, leaves)`. ValueError when there is no leaf."""
    return DirectoryTree(meter_roots(tenant, period, leaves))


def meter_proof(
    tenant: str,
    period: Period,
    dirs: DirectoryTree,
    meter: MeterId,
    windows: Sequence[WindowLeaf],
    window_start: int,
    to: Prefix | str = (),
) -> Proof:
    """`PeriodTree.proof` from the tree's directory levels and the proven meter's windows (by start) alone,
    so a proof needs the meters' roots and one meter's windows, not every leaf. The same KeyError for a
    meter without windows, a window that is not one of them, or a prefix `to` that does not enclose it."""
    if not windows:
        raise KeyError(meter)
    starts = [w.window_start for w in windows]
    if window_start not in starts:
        raise KeyError(f"no window {window_start} of {meter[0]!r} in {period}")
    index = starts.index(window_start)
    top = as_prefix(to)
    steps = merkle_path([w.hash for w in windows], index) + dirs.meter_steps(meter, top)
    return Proof(tenant, period, top, windows[index], tuple(steps), dirs.subtree_root(top))


def leaf_order(leaf: WindowLeaf) -> tuple[Any, ...]:
    """The canonical leaf order within a tenant and period (see PeriodTree)."""
    return (path_segments(leaf.service_path), leaf.entity_id, leaf.service_path, leaf.window_start)


def build_trees(leaves: Iterable[WindowLeaf], window_length: int) -> dict[tuple[str, Period], PeriodTree]:
    """Every tenant's tree for every window period and UTC day the leaves fall in."""
    return {
        (tenant, period): PeriodTree(tenant, period, group)
        for (tenant, period), group in group_by_period(leaves, window_length).items()
    }


@dataclass(frozen=True)
class Proof:
    """A window, its audit path and the root it leads to (the tenant root, or a prefix's subtree root)."""

    tenant: str
    period: Period
    prefix: Prefix
    leaf: WindowLeaf
    steps: tuple[Step, ...]
    root: bytes

    def verify(self) -> bool:
        """Whether the leaf belongs to the tenant, period and prefix, and its path leads to the root."""
        return (
            self.leaf.tenant == self.tenant
            and self.period.contains(self.leaf.window_start)
            and path_segments(self.leaf.service_path)[: len(self.prefix)] == self.prefix
            and verify(self.leaf, self.steps, self.root)
        )

    def onchain(self) -> tuple[list[bytes], int]:
        """The contract's form: siblings bottom-up, and a bit mask whose bit i is set if sibling i is left."""
        return [s for _, s in self.steps], sum(1 << i for i, (left, _) in enumerate(self.steps) if left)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (hashes as lowercase hex), see docs/trees.md."""
        return {
            "version": TREE_DOMAIN,
            "hash": "keccak256",
            "tenant": self.tenant,
            "period": self.period.to_dict(),
            "prefix": prefix_text(self.prefix),
            "leaf": self.leaf.to_dict(),
            "path": [{"side": "left" if left else "right", "hash": s.hex()} for left, s in self.steps],
            "root": self.root.hex(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Proof:
        """The inverse of `to_dict`; raises ValueError (or KeyError) for a malformed proof."""
        if data.get("version") != TREE_DOMAIN or data.get("hash", "keccak256") != "keccak256":
            raise ValueError(f"unknown proof version {data.get('version')!r} or hash {data.get('hash')!r}")
        sides = {"left": True, "right": False}
        period = data["period"]
        return cls(
            str(data["tenant"]),
            Period(str(period["kind"]), int(period["start"]), int(period["length"])),
            path_segments(str(data["prefix"])),
            WindowLeaf.from_dict(data["leaf"]),
            tuple((sides[s["side"]], _hash32(s["hash"], "sibling")) for s in data["path"]),
            _hash32(data["root"], "root"),
        )
