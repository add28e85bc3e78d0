"""The levels of a period tree above its meters (docs/trees.md): the service-path directories over each
meter's root. A directory's children are first its meters by (entity id, service path), then its
subdirectories by segment (code points); each directory is an RFC 6962 Merkle tree over its children.

What this holds is bounded by the number of meters (a 32-byte root and two counts each), not by their
windows: a meter's root over its windows is folded as they pass (`connector.core.trees.meter_roots`), so
a day of 96 windows a meter costs what one window does. Pure: no I/O.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field

from connector.core.merkle import Step, levels, path_in_levels

Prefix = tuple[str, ...]  # service path segments: "/a/b" -> ("a", "b"), "/" -> ()
MeterId = tuple[str, str]  # (entity id, service path): a meter within a tenant, in its sort order


def path_segments(service_path: str) -> Prefix:
    """The directory levels of a service path: its non-empty "/"-separated segments."""
    return tuple(s for s in service_path.split("/") if s)


def prefix_text(prefix: Prefix) -> str:
    """ "/a/b" for ("a", "b"); "/" for the tenant root."""
    return "/" + "/".join(prefix)


def as_prefix(prefix: Prefix | str) -> Prefix:
    """A prefix given as segments or as a service path, as segments."""
    return path_segments(prefix) if isinstance(prefix, str) else prefix


@dataclass(frozen=True, slots=True)
class MeterRoot:
    """One meter's part of a period tree: its root over its windows (seed 002's Hash^j), their whole Wh
    and how many there are."""

    service_path: str
    entity_id: str
    root: bytes
    energy_wh: int
    window_count: int

    @property
    def key(self) -> MeterId:
        return (self.entity_id, self.service_path)


@dataclass
class _Directory:
    meters: list[MeterRoot] = field(default_factory=list)  # sorted by key once all are in
    subdirs: list[str] = field(default_factory=list)  # segments, sorted
    levels: list[list[bytes]] = field(default_factory=list)  # of the children's hashes
    meter_count: int = 0  # in the whole subtree
    window_count: int = 0

    @property
    def root(self) -> bytes:
        return self.levels[-1][0]

    def index(self, meter: MeterId) -> int:
        """The child position of a meter of this directory; KeyError when it is not one."""
        i = bisect_left(self.meters, meter, key=lambda m: m.key)
        if i == len(self.meters) or self.meters[i].key != meter:
            raise KeyError(meter)
        return i


class DirectoryTree:
    """A period tree's directory levels over its meters' roots: tenant root, subtree roots and counts per
    service-path prefix, and the audit path from a meter's root up to a prefix's root."""

    def __init__(self, meters: Iterable[MeterRoot]) -> None:
        self._dirs: dict[Prefix, _Directory] = {}
        seen: set[MeterId] = set()
        for meter in meters:
            if meter.key in seen:
                raise ValueError(f"meter {meter.key} given twice")
            seen.add(meter.key)
            prefix = path_segments(meter.service_path)
            for depth in range(len(prefix) + 1):
                self._dirs.setdefault(prefix[:depth], _Directory())
            self._dirs[prefix].meters.append(meter)
        if not seen:
            raise ValueError("a tree needs at least one meter")
        self._hash_directories()

    def _hash_directories(self) -> None:
        for prefix in sorted(self._dirs, key=len, reverse=True):
            if prefix:
                self._dirs[prefix[:-1]].subdirs.append(prefix[-1])
        for prefix in sorted(self._dirs, key=len, reverse=True):  # deepest first: subdirectories are done
            directory = self._dirs[prefix]
            directory.meters.sort(key=lambda m: m.key)
            directory.subdirs.sort()
            below = [self._dirs[(*prefix, s)] for s in directory.subdirs]
            directory.levels = levels([m.root for m in directory.meters] + [d.root for d in below])
            directory.meter_count = len(directory.meters) + sum(d.meter_count for d in below)
            directory.window_count = sum(m.window_count for m in directory.meters)
            directory.window_count += sum(d.window_count for d in below)

    @property
    def root(self) -> bytes:
        """The tenant root."""
        return self._dirs[()].root

    def prefixes(self) -> list[Prefix]:
        """Every service-path prefix (directory) that holds a meter, the root () first."""
        return sorted(self._dirs)

    def subtree_root(self, prefix: Prefix | str) -> bytes:
        """The root of a service-path prefix; KeyError when it has no meter."""
        return self._dirs[as_prefix(prefix)].root

    def counts(self, prefix: Prefix | str) -> tuple[int, int]:
        """(meters, windows) under a service-path prefix; KeyError when it has no meter."""
        directory = self._dirs[as_prefix(prefix)]
        return directory.meter_count, directory.window_count

    def meters(self) -> list[MeterRoot]:
        """Every meter's root, in the tree's order."""
        return [m for prefix in sorted(self._dirs) for m in self._dirs[prefix].meters]

    def meter(self, meter: MeterId) -> MeterRoot:
        """A meter's root; KeyError when it has no window in the tree."""
        directory = self._dirs[path_segments(meter[1])]
        return directory.meters[directory.index(meter)]

    @property
    def energy_wh(self) -> int:
        """The sum of the meters' whole Wh."""
        return sum(m.energy_wh for d in self._dirs.values() for m in d.meters)

    @property
    def meter_count(self) -> int:
        return self._dirs[()].meter_count

    @property
    def window_count(self) -> int:
        return self._dirs[()].window_count

    def meter_steps(self, meter: MeterId, top: Prefix | str = ()) -> list[Step]:
        """The audit path from a meter's root up to the root of prefix `top` (which must enclose it)."""
        prefix, to = path_segments(meter[1]), as_prefix(top)
        if prefix[: len(to)] != to:
            raise KeyError(f"{meter[1]!r} is not under {prefix_text(to)!r}")
        directory = self._dirs[prefix]
        return path_in_levels(directory.levels, directory.index(meter)) + self.directory_steps(prefix, to)

    def directory_steps(self, prefix: Prefix | str, top: Prefix | str = ()) -> list[Step]:
        """The audit path from a prefix's subtree root up to the root of prefix `top`."""
        steps: list[Step] = []
        here, to = as_prefix(prefix), as_prefix(top)
        while len(here) > len(to):
            parent = self._dirs[here[:-1]]
            position = len(parent.meters) + parent.subdirs.index(here[-1])
            steps += path_in_levels(parent.levels, position)
            here = here[:-1]
        return steps
