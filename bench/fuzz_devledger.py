"""Fuzz the dev ledger's POST /api/v1/transactions over HTTP: hypothesis and the Big List of Naughty Strings.

The ledger runs as its own process (`python -m connector devledger --data DIR`), as in production. Cases:
arbitrary JSON and raw bytes; correctly signed CREATEs whose asset data and metadata are generated (naughty
keys and values); and valid CREATEs and TRANSFERs (spending a committed output) with one to three fields
replaced by generated values or removed, half of them with the transaction id recomputed so validation goes
past the id check. The `mode` parameter is generated too.

Every case must be answered below 500 and the process must stay up. Between the cases, every
`--valid-every`th one, a valid TRANSFER-to-self extends one asset's chain (and a fresh CREATE every tenth
time): each must be answered 202 at once (a generated case never reserves an output it did not spend) and
be readable afterwards; the asset's history must be one linear chain; `devledger --check` must find the
block hash chain intact after the stop.

Usage: python -m bench.fuzz_devledger [--cases 100000] [--valid-every 50]
Prints one JSON line: cases, seconds, cases/s, status counts, 5xx, valid sent / refused / missing.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests
from bigchaindb_driver.common.utils import serialize
from bigchaindb_driver.crypto import generate_keypair
from bigchaindb_driver.offchain import fulfill_transaction, prepare_transaction
from hypothesis import given
from hypothesis import strategies as st
from sha3 import sha3_256

from bench.fuzz_notify import JSONISH, STRINGS, fuzz_settings
from tests.reliability.harness import LedgerProcess

DELETE = object()  # a "replacement" that removes the field
MODES = st.sampled_from(["commit", "sync", "async"]) | STRINGS


def signed_create(key: Any, data: Any, metadata: Any = None) -> dict[str, Any]:
    """A CREATE of `data` owned and signed by `key`."""
    prepared = prepare_transaction(
        operation="CREATE", signers=key.public_key, asset={"data": data}, metadata=metadata
    )
    return fulfill_transaction(prepared, private_keys=key.private_key)


def signed_transfer(tx: dict[str, Any], asset_id: str, key: Any, metadata: Any = None) -> dict[str, Any]:
    """A TRANSFER-to-self of output 0 of `tx` (owned by `key`)."""
    output = tx["outputs"][0]
    spend = {
        "fulfillment": output["condition"]["details"],
        "fulfills": {"output_index": 0, "transaction_id": tx["id"]},
        "owners_before": output["public_keys"],
    }
    prepared = prepare_transaction(
        operation="TRANSFER",
        inputs=[spend],
        asset={"id": asset_id},
        recipients=key.public_key,
        metadata=metadata,
    )
    return fulfill_transaction(prepared, private_keys=key.private_key)


def paths(obj: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path (keys and list indexes) into `obj`, the empty path included."""
    yield prefix
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from paths(value, (*prefix, key))
    elif isinstance(obj, list):
        for index, value in enumerate(obj):
            yield from paths(value, (*prefix, index))


def mutated(tx: dict[str, Any], edits: list[tuple[tuple[Any, ...], Any]], rehash: bool) -> Any:
    """A copy of `tx` with each path replaced by its value (or removed); the id recomputed if asked."""
    result: Any = copy.deepcopy(tx)
    for path, value in edits:
        if not path:
            result = value if value is not DELETE else {}
            continue
        parent = result
        try:
            for step in path[:-1]:
                parent = parent[step]
            if value is DELETE:
                del parent[path[-1]]
            else:
                parent[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed or replaced this path
    if rehash and isinstance(result, dict):
        try:
            result["id"] = None
            result["id"] = sha3_256(serialize(result).encode()).hexdigest()
        except Exception:  # noqa: BLE001 - generated values that do not serialize: post as they are
            pass
    return result


class LedgerFuzzer:
    """Posts generated cases and valid transactions to a dev ledger at `url`; counts what it answers."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = requests.Session()
        self.key = generate_keypair()
        self.statuses: Counter[int] = Counter()
        self.server_errors: list[tuple[int, str]] = []
        self.broken: list[str] = []  # connection failures: the ledger stopped answering
        self.valid_ids: list[str] = []
        self.valid_refused: list[tuple[int, str]] = []
        self.cases = 0
        self.spare = self._commit(signed_create(self.key, {"fuzz": "spare output"}))
        self.chain_asset = self._commit(signed_create(self.key, {"fuzz": "valid chain"}))
        self.chain_head = self.chain_asset
        self.templates = [
            signed_create(self.key, {"meter": "urn:ngsi-ld:SMX:001"}, {"window": {"start": "x"}}),
            signed_transfer(self.spare, self.spare["id"], self.key, {"fingerprint": "00" * 32}),
        ]

    def _commit(self, tx: dict[str, Any]) -> dict[str, Any]:
        status, text = self._post(json.dumps(tx).encode(), "commit")
        if status != 202:
            raise RuntimeError(f"setup transaction refused: {status} {text[:300]}")
        return tx

    def _post(self, body: bytes, mode: str) -> tuple[int, str]:
        try:
            resp = self.session.post(
                self.url + "/api/v1/transactions",
                params={"mode": mode},
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=30,
            )
        except requests.RequestException as exc:
            self.broken.append(f"{type(exc).__name__}: {exc}")
            self.session = requests.Session()
            return 0, ""
        return resp.status_code, resp.text

    def post(self, body: Any, mode: str) -> int:
        """POST one generated case; records its status (0 = no answer) and every 5xx."""
        raw = body if isinstance(body, bytes) else json.dumps(body, allow_nan=True).encode()
        status, text = self._post(raw, mode)
        self.statuses[status] += 1
        if status >= 500:
            self.server_errors.append((status, raw[:300].decode("utf-8", "replace") + " -> " + text[:200]))
        self.cases += 1
        return status

    def post_valid(self) -> None:
        """Extend the valid chain by one TRANSFER (or post a fresh CREATE every tenth time)."""
        n = len(self.valid_ids)
        if n % 10 == 9:
            tx = signed_create(self.key, {"fuzz": "valid create", "n": n})
        else:
            tx = signed_transfer(self.chain_head, self.chain_asset["id"], self.key, {"n": n})
        status, text = self._post(json.dumps(tx).encode(), "commit")
        if status != 202:
            self.valid_refused.append((status, text[:300]))
            return
        self.valid_ids.append(tx["id"])
        if tx["operation"] == "TRANSFER":
            self.chain_head = tx

    def answers(self) -> bool:
        """True when the ledger's API root answers 200."""
        try:
            return self.session.get(self.url + "/api/v1/", timeout=10).status_code == 200
        except requests.RequestException:
            return False

    def missing_valid(self) -> list[str]:
        """Valid transactions answered 202 that cannot be read back."""
        return [
            tx_id
            for tx_id in self.valid_ids
            if self.session.get(f"{self.url}/api/v1/transactions/{tx_id}", timeout=10).status_code != 200
        ]

    def chain_problems(self) -> list[str]:
        """The valid asset's history read back: CREATE, then each TRANSFER spending the one before."""
        asset = self.chain_asset["id"]
        resp = self.session.get(f"{self.url}/api/v1/transactions", params={"asset_id": asset}, timeout=30)
        txs = resp.json()
        problems = [] if txs and txs[0]["id"] == asset else ["history does not start with its CREATE"]
        for prev, tx in zip(txs, txs[1:], strict=False):
            if tx["inputs"][0]["fulfills"]["transaction_id"] != prev["id"]:
                problems.append(f"{tx['id']} does not spend {prev['id']}")
        if txs and txs[-1]["id"] != self.chain_head["id"]:
            problems.append("the last committed TRANSFER is not the chain's head")
        return problems


def case_strategy(templates: list[dict[str, Any]], key: Any) -> st.SearchStrategy[Any]:
    """Generated bodies: arbitrary JSON or bytes, signed CREATEs of generated data, mutated valid txs."""
    keyed = st.dictionaries(STRINGS, JSONISH, max_size=4)
    signed = st.tuples(keyed, JSONISH).map(lambda t: _signed_or_raw(key, t[0], t[1]))
    edits = []
    for template in templates:
        one = st.tuples(st.sampled_from(list(paths(template))), JSONISH | st.just(DELETE))
        edits.append(
            st.tuples(st.lists(one, min_size=1, max_size=3), st.booleans()).map(
                lambda t, tpl=template: mutated(tpl, t[0], t[1])
            )
        )
    return st.one_of(JSONISH, st.binary(max_size=300), signed, *edits)


def _signed_or_raw(key: Any, data: dict[str, Any], metadata: Any) -> Any:
    # The driver refuses some generated values itself (e.g. NaN); those cases are posted unsigned.
    try:
        return signed_create(key, data, metadata)
    except Exception:  # noqa: BLE001 - generated input: any driver error just means "post it raw"
        return {"operation": "CREATE", "asset": {"data": data}, "metadata": metadata}


def run(fuzzer: LedgerFuzzer, cases: int, valid_every: int = 50, seed: int = 0) -> dict[str, Any]:
    """Run `cases` hypothesis cases (a valid transaction every `valid_every`) and return the figures."""
    started = time.perf_counter()

    @fuzz_settings(cases, seed)
    @given(body=case_strategy(fuzzer.templates, fuzzer.key), mode=MODES)
    def case(body: Any, mode: str) -> None:
        # No assertion here: every case runs and every 5xx is counted (hypothesis would stop at the first).
        if fuzzer.cases % valid_every == 0:
            fuzzer.post_valid()
        fuzzer.post(body, mode)

    case()
    seconds = time.perf_counter() - started
    fuzzer.post_valid()
    return {
        "cases": fuzzer.cases,
        "seconds": round(seconds, 1),
        "cases_per_s": round(fuzzer.cases / seconds, 1),
        "statuses": {str(k): v for k, v in sorted(fuzzer.statuses.items())},
        "server_errors": len(fuzzer.server_errors),
        "no_answer": len(fuzzer.broken),
        "still_answers": fuzzer.answers(),
        "valid_sent": len(fuzzer.valid_ids) + len(fuzzer.valid_refused),
        "valid_refused": len(fuzzer.valid_refused),
        "valid_missing": len(fuzzer.missing_valid()),
        "chain_problems": fuzzer.chain_problems(),
    }


def check_blocks(data_dir: Path) -> int:
    """`devledger --check` on the stopped ledger's data: 0 when the block hash chain is intact."""
    command = [sys.executable, "-m", "connector", "devledger", "--check", "--data", str(data_dir)]
    return subprocess.run(command, capture_output=True, check=False).returncode


def failed(result: dict[str, Any]) -> bool:
    """True when any promise of the fuzz run is broken."""
    keys = ("server_errors", "no_answer", "valid_refused", "valid_missing", "chain_problems")
    return any(result[k] for k in keys) or not result["still_answers"] or result["block_check"] != 0


def main(argv: list[str] | None = None) -> int:
    """Run the fuzz benchmark and print its JSON line; exit 1 when any promise is broken."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--valid-every", type=int, default=50)
    args = parser.parse_args(argv)
    # tmpfs when there is one: the fuzz is about validation, SQLite's fsync per block would dominate.
    with tempfile.TemporaryDirectory(dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as tmp:
        ledger = LedgerProcess(Path(tmp) / "devledger").start()
        try:
            fuzzer = LedgerFuzzer(ledger.url)
            result = run(fuzzer, args.cases, args.valid_every)
            result["process_alive"] = ledger.proc is not None and ledger.proc.poll() is None
        except BaseException:
            print(ledger.log_path.read_text()[-3000:], file=sys.stderr)
            raise
        finally:
            ledger.stop()
        result["block_check"] = check_blocks(Path(tmp) / "devledger")
        for status, text in fuzzer.server_errors[:5]:
            print(f"5xx {status}: {text}", file=sys.stderr)
        if failed(result) or not result["process_alive"]:
            print(ledger.log_path.read_text()[-3000:], file=sys.stderr)
    print(json.dumps(result))
    return 1 if failed(result) or not result["process_alive"] else 0


if __name__ == "__main__":
    sys.exit(main())
