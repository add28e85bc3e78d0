"""Write tests/core/vectors/trees.json from the inputs below and `connector.core.trees`.

Run `PYTHONPATH=$PWD .venv/bin/python tests/core/vectors/generate_trees.py` only when the tree encoding
changes on purpose (and bump TREE_DOMAIN in connector/core/trees.py and docs/trees.md);
tests/core/test_trees.py checks the committed file against the implementation and an independent
re-implementation of docs/trees.md.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from connector.core.trees import (
    TREE_DOMAIN,
    WindowLeaf,
    build_trees,
    keccak256,
    merkle_path,
    merkle_root,
    node_hash,
    prefix_text,
)

OUT = Path(__file__).with_name("trees.json")
T0 = 1_552_924_800  # 2019-03-18T16:00:00Z
METERS = [  # (service path, entity id): one at the root, two regions, two groups in "north"
    ("/", "urn:ngsi-ld:SmartMeter:hq"),
    ("/north/g1", "urn:ngsi-ld:SmartMeter:001"),
    ("/north/g1", "urn:ngsi-ld:SmartMeter:002"),
    ("/north/g2", "urn:ngsi-ld:SmartMeter:003"),
    ("/south", "urn:ngsi-ld:SmartMeter:004"),
]


def leaf_inputs() -> list[dict[str, Any]]:
    """Two 15-minute windows of each meter of tenant "t1" (energies include a negative, exported one)."""
    out = []
    for m, (service_path, entity) in enumerate(METERS):
        for k in range(2):
            start = T0 + 900 * k
            fp = hashlib.sha256(f"fingerprint {entity} {start}".encode()).hexdigest()
            chain = hashlib.sha256(f"chain {entity} {start}".encode()).hexdigest()
            energy = (-1) ** m * (1000 * m + 10 * k + 7)
            out.append(
                {
                    "tenant": "t1",
                    "service_path": service_path,
                    "entity_id": entity,
                    "window_start": start,
                    "energy_wh": energy,
                    "fingerprint": fp,
                    "chain_hash": chain,
                }
            )
    return out


def rfc6962_cases() -> list[dict[str, Any]]:
    """Roots and audit paths of 1 to 7 children whose hashes are keccak256 of one byte 0..n-1."""
    cases = []
    for n in range(1, 8):
        children = [keccak256(bytes([i])) for i in range(n)]
        paths = [[[left, s.hex()] for left, s in merkle_path(children, i)] for i in range(n)]
        cases.append({"n": n, "root": merkle_root(children).hex(), "paths": paths})
    return cases


def tree_case(leaves: list[WindowLeaf]) -> list[dict[str, Any]]:
    """Per period: tenant root, subtree roots per prefix, and the proof of the third leaf in order."""
    periods = []
    for (_tenant, period), tree in sorted(build_trees(leaves, 900).items(), key=lambda kv: kv[0][1]):
        chosen = tree.leaves()[2]
        proof = tree.proof(chosen.service_path, chosen.entity_id, chosen.window_start)
        periods.append(
            {
                "period": period.to_dict(),
                "root": tree.root.hex(),
                "subtrees": {prefix_text(p): tree.subtree_root(p).hex() for p in tree.prefixes()},
                "leaf_order": [f"{w.service_path} {w.entity_id} {w.window_start}" for w in tree.leaves()],
                "proof": proof.to_dict(),
            }
        )
    return periods


def main() -> None:
    inputs = leaf_inputs()
    leaves = [WindowLeaf.from_dict(d) for d in inputs]
    first = leaves[0]
    vectors = {
        "version": TREE_DOMAIN,
        "node": {
            "left": keccak256(b"left").hex(),
            "right": keccak256(b"right").hex(),
            "hash": node_hash(keccak256(b"left"), keccak256(b"right")).hex(),
        },
        "leaf": {"input": inputs[0], "encoded": first.encode().hex(), "hash": first.hash.hex()},
        "rfc6962": rfc6962_cases(),
        "leaves": inputs,
        "periods": tree_case(leaves),
    }
    OUT.write_text(json.dumps(vectors, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
