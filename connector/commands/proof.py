"""`smartmeter-connector verify --proof FILE`: check a window's inclusion proof with no store, against the
ledger (the root's BigchainDB transaction, fetched by its id) or, given `--rpc-url`, only against Ethereum
(the portfolio contract's interval root). Exit status 0 when every check holds, 1 otherwise, 2 for a file
that cannot be read. See connector/proofcheck.py for what is checked."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from connector.proofcheck import Check, check_ethereum, check_ledger, check_path
from connector.settings import Settings


def check_proof_file(args: argparse.Namespace, settings: Settings, out: TextIO = sys.stdout) -> int:
    """Check the proof in `args.proof`; print one line per check and a verdict."""
    try:
        with open(args.proof, encoding="utf-8") as f:
            data = json.load(f)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        print(f"smartmeter-connector verify: --proof {args.proof}: {exc}", file=sys.stderr)
        return 2
    proof, first = check_path(data)
    checks = [first]
    if proof is not None:
        try:
            checks.append(_anchor_check(args, settings, proof, data))
        except Exception as exc:  # noqa: BLE001 - any failure to reach the anchor is reported, not raised
            checks.append(Check("anchor", False, f"could not be read: {type(exc).__name__}: {exc}"[:300]))
    for c in checks:
        print(f"{c.name:<9} {'ok' if c.ok else 'FAILED':<7} {c.detail}", file=out)
    ok = all(c.ok for c in checks)
    print(f"proof: {'OK' if ok else 'FAILED'}", file=out)
    return 0 if ok else 1


def _anchor_check(args: argparse.Namespace, settings: Settings, proof: Any, data: dict[str, Any]) -> Check:
    if getattr(args, "rpc_url", None):
        from web3 import Web3

        from connector.ethereum.portfolio import portfolio_contract

        address = args.contract or settings.ethereum.contract_address
        if not address:
            return Check("ethereum", False, "--contract ADDRESS (or ethereum.contract_address) is required")
        w3 = Web3(Web3.HTTPProvider(args.rpc_url, request_kwargs={"timeout": 20}))
        return check_ethereum(proof, portfolio_contract(w3, address))
    from connector.ledger.client import DriverClient, ledger_urls

    urls = list(getattr(args, "ledger_url", None) or ledger_urls(settings))
    client = DriverClient(urls, settings.ledger)
    try:
        return check_ledger(proof, (data.get("ledger") or {}).get("tx_id"), client)
    finally:
        client.close()
