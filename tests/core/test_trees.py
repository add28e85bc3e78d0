"""Period hash trees: the committed vectors, an independent re-implementation of docs/trees.md, and the
properties (every proof verifies; tampering changes exactly the affected periods; no second preimage)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from Crypto.Hash import keccak as pycryptodome_keccak
from eth_utils import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.core.trees import (
    Period,
    PeriodTree,
    Proof,
    WindowLeaf,
    build_trees,
    leaf_hash,
    merkle_path,
    merkle_root,
    meter_key,
    node_hash,
    path_segments,
    periods_of,
    root_from_path,
    verify,
    whole_wh,
)
from connector.ethereum.contract import energy_to_wh

ROOT = Path(__file__).resolve().parents[2]
VECTORS = json.loads((Path(__file__).parent / "vectors" / "trees.json").read_text(encoding="utf-8"))
T0 = 1_552_924_800  # 2019-03-18T16:00:00Z


class Auditor:
    """docs/trees.md re-implemented from the text: RFC 6962's recursive split, grouping by segment."""

    @staticmethod
    def keccak(data: bytes) -> bytes:
        return pycryptodome_keccak.new(digest_bits=256, data=data).digest()

    @classmethod
    def mth(cls, hashes: list[bytes]) -> bytes:
        """RFC 6962 section 2.1 with keccak256 and the 0x01 node prefix; children already hashed."""
        if len(hashes) == 1:
            return hashes[0]
        k = 1 << ((len(hashes) - 1).bit_length() - 1)  # largest power of two below n
        return cls.keccak(b"\x01" + cls.mth(hashes[:k]) + cls.mth(hashes[k:]))

    @classmethod
    def leaf(cls, d: dict[str, Any]) -> bytes:
        key = cls.keccak(f"{d['tenant']}|{d['service_path']}|{d['entity_id']}".encode())
        body = key + d["window_start"].to_bytes(32, "big") + d["energy_wh"].to_bytes(32, "big", signed=True)
        return cls.keccak(b"\x00" + body + bytes.fromhex(d["fingerprint"]) + bytes.fromhex(d["chain_hash"]))

    @classmethod
    def directory(cls, leaves: list[dict[str, Any]], depth: int) -> bytes:
        """Meters here (by entity id, service path; windows by start), then subdirectories by segment."""
        here = [d for d in leaves if len(path_segments(d["service_path"])) == depth]
        meters = sorted({(d["entity_id"], d["service_path"]) for d in here})
        children = []
        for entity, sp in meters:
            windows = sorted((d for d in here if (d["entity_id"], d["service_path"]) == (entity, sp)),
                             key=lambda d: d["window_start"])  # fmt: skip
            children.append(cls.mth([cls.leaf(d) for d in windows]))
        below = [d for d in leaves if len(path_segments(d["service_path"])) > depth]
        for segment in sorted({path_segments(d["service_path"])[depth] for d in below}):
            sub = [d for d in below if path_segments(d["service_path"])[depth] == segment]
            children.append(cls.directory(sub, depth + 1))
        return cls.mth(children)


def test_node_and_leaf_vectors() -> None:
    """The node, leaf encoding and leaf hash vectors match the module and the auditor."""
    node, leaf = VECTORS["node"], VECTORS["leaf"]
    left, right = bytes.fromhex(node["left"]), bytes.fromhex(node["right"])
    assert node_hash(left, right).hex() == node["hash"] == Auditor.mth([left, right]).hex()
    built = WindowLeaf.from_dict(leaf["input"])
    assert built.encode().hex() == leaf["encoded"]
    assert built.hash.hex() == leaf["hash"] == Auditor.leaf(leaf["input"]).hex()


@pytest.mark.parametrize("case", VECTORS["rfc6962"], ids=lambda c: f"n={c['n']}")
def test_rfc6962_vectors(case: dict[str, Any]) -> None:
    """Roots and audit paths of 1..7 children match the vectors, the auditor's recursion, and verify."""
    children = [Auditor.keccak(bytes([i])) for i in range(case["n"])]
    assert merkle_root(children).hex() == case["root"] == Auditor.mth(children).hex()
    for i, path in enumerate(case["paths"]):
        steps = merkle_path(children, i)
        assert [[left, s.hex()] for left, s in steps] == path
        assert root_from_path(children[i], steps) == merkle_root(children)


@pytest.mark.parametrize(
    "case", VECTORS["periods"], ids=lambda c: f"{c['period']['kind']}-{c['period']['start']}"
)
def test_period_vectors(case: dict[str, Any]) -> None:
    """Each period's tenant root, subtree roots, leaf order and proof match the vectors and the auditor."""
    period = Period(**case["period"])
    inputs = [d for d in VECTORS["leaves"] if period.contains(d["window_start"])]
    tree = PeriodTree("t1", period, [WindowLeaf.from_dict(d) for d in inputs])
    assert tree.root.hex() == case["root"] == Auditor.directory(inputs, 0).hex()
    for prefix, root in case["subtrees"].items():
        depth = len(path_segments(prefix))
        under = [d for d in inputs if path_segments(d["service_path"])[:depth] == path_segments(prefix)]
        assert tree.subtree_root(prefix).hex() == root == Auditor.directory(under, depth).hex()
    assert [f"{w.service_path} {w.entity_id} {w.window_start}" for w in tree.leaves()] == case["leaf_order"]
    proof = Proof.from_dict(case["proof"])
    assert proof.verify() and proof.to_dict() == case["proof"]
    assert tree.proof(proof.leaf.service_path, proof.leaf.entity_id, proof.leaf.window_start) == proof


def test_docs_carry_the_vectors() -> None:
    """docs/trees.md shows the node, leaf and every period root of the committed vectors."""
    text = (ROOT / "docs" / "trees.md").read_text(encoding="utf-8")
    expected = [VECTORS["node"]["hash"], VECTORS["leaf"]["hash"], VECTORS["rfc6962"][-1]["root"]]
    expected += [c["root"] for c in VECTORS["periods"]]
    expected += list(VECTORS["periods"][0]["subtrees"].values())
    assert [h for h in expected if h not in text] == []


def test_keys_and_energy_are_the_contract_formulas() -> None:
    """meter_key is keccak256 of "tenant|service_path|entity_id" (eth_utils' keccak, an independent
    implementation), whole Wh rounds half-even within int64; the contract module uses these very functions."""
    for tenant, path, entity in (("", "/", "urn:x"), ("t1", "/a/b", "m|ü")):
        assert meter_key(tenant, path, entity) == keccak(f"{tenant}|{path}|{entity}".encode())
    for text, wh in ((None, 0), ("0", 0), ("123.456789", 123), ("-0.000001", 0), ("1E+3", 1000)):
        assert whole_wh(text) == energy_to_wh(text) == wh
    assert [whole_wh(t) for t in ("0.5", "1.5", "-1.5", "2.5", "1234.4999995")] == [0, 2, -2, 2, 1234]
    for bad in ("NaN", str(2**63)):
        with pytest.raises(ValueError):
            whole_wh(bad)


def test_refusals() -> None:
    """Foreign tenants, windows outside the period, two windows of one start, bad hashes are refused."""
    period = Period("window", T0, 900)
    a = WindowLeaf("t1", "/a", "m", T0, 1, b"\x01" * 32, b"\x02" * 32)
    for leaves in ([a, a], [WindowLeaf("t2", "/a", "m", T0, 1, b"\x01" * 32, b"\x02" * 32)], []):
        with pytest.raises(ValueError):
            PeriodTree("t1", period, leaves)
    with pytest.raises(ValueError):
        PeriodTree("t1", Period("window", T0 + 900, 900), [a])
    with pytest.raises(ValueError):
        WindowLeaf("t1", "/a", "m", T0, 1, b"\x01" * 31, b"\x02" * 32)
    forged = {**a.to_dict(), "meter_key": "00" * 32}
    with pytest.raises(ValueError):
        WindowLeaf.from_dict(forged)
    proof = PeriodTree("t1", period, [a]).proof("/a", "m", T0).to_dict()
    for wrong in ({"hash": "sha256"}, {"version": "smartmeter-connector/trees/v0"}):
        with pytest.raises(ValueError):
            Proof.from_dict({**proof, **wrong})


def test_from_window_converts_store_values() -> None:
    """A stored window becomes a leaf: start in seconds, energy half-even to Wh, hex hashes to bytes."""
    start = datetime(2019, 3, 18, 16, 0, tzinfo=UTC)
    leaf = WindowLeaf.from_window("t1", "/a", "m", start, "2.5", "11" * 32, "22" * 32)
    assert (leaf.window_start, leaf.energy_wh, leaf.fingerprint) == (T0, 2, b"\x11" * 32)
    assert WindowLeaf.from_window("t1", "/a", "m", start, None, "11" * 32, "22" * 32).energy_wh == 0


def test_portfolio_energy_and_meter_count() -> None:
    """A tree's energy is the sum of its leaves' Wh (the portfolio energy); meters are counted once."""
    leaves = [WindowLeaf.from_dict(d) for d in VECTORS["leaves"]]
    day = PeriodTree("t1", Period("day", T0 - 16 * 3600, 86_400), leaves)
    assert day.energy_wh == sum(d["energy_wh"] for d in VECTORS["leaves"]) and day.meter_count == 5


def test_periods_of_windows() -> None:
    """A window belongs to its window period and to the UTC day of its start."""
    window, day = periods_of(T0 + 900, 900)
    assert window == Period("window", T0 + 900, 900)
    assert day == Period("day", T0 - 16 * 3600, 86_400) and day.contains(T0 + 900)


# ----- properties -----

SERVICE_PATHS = ("/", "/a", "/a/b", "/b", "/a/b/c", "/a/")
HASHES = st.binary(min_size=32, max_size=32)
LEAVES = st.lists(
    st.builds(
        WindowLeaf,
        st.sampled_from(("t1", "t2")),
        st.sampled_from(SERVICE_PATHS),
        st.sampled_from(("m0", "m1", "m2", "urn:x")),
        st.integers(0, 200).map(lambda k: T0 + 900 * k),  # spans two UTC days
        st.integers(-(2**63) + 1, 2**63 - 1),
        HASHES,
        HASHES,
    ),
    min_size=1,
    max_size=40,
    unique_by=lambda w: (w.tenant, w.service_path, w.entity_id, w.window_start),
)


def all_proofs(tree: PeriodTree) -> list[Proof]:
    return [tree.proof(w.service_path, w.entity_id, w.window_start) for w in tree.leaves()]


@settings(max_examples=60, deadline=None)
@given(LEAVES)
def test_every_proof_verifies(leaves: list[WindowLeaf]) -> None:
    """Every leaf's proof verifies against its tenant root and against each enclosing prefix's root."""
    for tree in build_trees(leaves, 900).values():
        assert tree.root == Auditor.directory([w.to_dict() for w in tree.leaves()], 0)
        for w in tree.leaves():
            segments = path_segments(w.service_path)
            for depth in range(len(segments) + 1):
                proof = tree.proof(w.service_path, w.entity_id, w.window_start, to=segments[:depth])
                assert proof.verify() and proof.root == tree.subtree_root(segments[:depth])
                assert root_from_path(proof.root, tree.directory_proof(segments[:depth])) == tree.root
            assert Proof.from_dict(json.loads(json.dumps(proof.to_dict()))) == proof


@settings(max_examples=60, deadline=None)
@given(LEAVES, st.data())
def test_tampering_changes_exactly_the_affected_periods(leaves: list[WindowLeaf], data: Any) -> None:
    """Altering one leaf changes the roots of its periods only; its old proof fails; others still verify."""
    index = data.draw(st.integers(0, len(leaves) - 1))
    field = data.draw(st.sampled_from(("energy_wh", "fingerprint", "chain_hash")))
    old = leaves[index]
    energy = old.energy_wh - 1 if old.energy_wh > 0 else old.energy_wh + 1
    value = energy if field == "energy_wh" else bytes(b ^ 1 for b in getattr(old, field))
    altered = WindowLeaf(**{**old.__dict__, field: value})
    before = build_trees(leaves, 900)
    after = build_trees([*leaves[:index], altered, *leaves[index + 1 :]], 900)
    touched = {(old.tenant, p) for p in periods_of(old.window_start, 900)}
    for key, tree in before.items():
        if key in touched:
            assert after[key].root != tree.root
            proof = tree.proof(old.service_path, old.entity_id, old.window_start)
            assert not verify(old, proof.steps, after[key].root)  # the anchored proof no longer holds
            assert not verify(
                altered, proof.steps, tree.root
            )  # nor does the altered leaf's, with the old root
            assert all(p.verify() for p in all_proofs(after[key]))
        else:
            assert after[key].root == tree.root
            assert all(verify(p.leaf, p.steps, after[key].root) for p in all_proofs(tree))


@settings(max_examples=60, deadline=None)
@given(LEAVES)
def test_internal_node_cannot_pass_as_leaf(leaves: list[WindowLeaf]) -> None:
    """Second preimage: an internal node's children, hashed as a leaf, do not lead to the root."""
    for tree in build_trees(leaves, 900).values():
        for proof in all_proofs(tree):
            h = proof.leaf.hash
            for i, (left, sibling) in enumerate(proof.steps):
                pair = sibling + h if left else h + sibling
                h = node_hash(sibling, h) if left else node_hash(h, sibling)
                assert root_from_path(h, proof.steps[i + 1 :]) == tree.root  # the node is genuine
                assert leaf_hash(pair) != h
                assert root_from_path(leaf_hash(pair), proof.steps[i + 1 :]) != tree.root


@settings(max_examples=40, deadline=None)
@given(LEAVES, st.randoms(use_true_random=False))
def test_order_of_input_does_not_matter(leaves: list[WindowLeaf], rng: Any) -> None:
    """The roots depend on the leaves, not on the order they are given in."""
    shuffled = list(leaves)
    rng.shuffle(shuffled)
    assert {k: t.root for k, t in build_trees(leaves, 900).items()} == {
        k: t.root for k, t in build_trees(shuffled, 900).items()
    }
