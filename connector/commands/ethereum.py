"""`contract deploy`, `plan upload FILE.csv`, `settlement report [--from --to]`."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import Any

from connector.settings import Settings


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add this area's sub-commands."""
    contract = sub.add_parser("contract", help="the Ethereum settlement contract")
    contract_sub = contract.add_subparsers(dest="contract_command", metavar="ACTION", required=True)
    deploy = contract_sub.add_parser("deploy", help="deploy the contract, print and store its address")
    deploy.set_defaults(func=deploy_command)

    plan = sub.add_parser("plan", help="BRP plans")
    plan_sub = plan.add_subparsers(dest="plan_command", metavar="ACTION", required=True)
    upload = plan_sub.add_parser("upload", help="upload planned Wh per meter and interval from a CSV file")
    upload.add_argument(
        "file", help="CSV with header tenant,service_path,entity_id,interval_start,planned_wh"
    )
    upload.set_defaults(func=plan_upload_command)

    settlement = sub.add_parser("settlement", help="imbalance settlement")
    settlement_sub = settlement.add_subparsers(dest="settlement_command", metavar="ACTION", required=True)
    report = settlement_sub.add_parser(
        "report", help="table of meter, interval, actual, planned, imbalance, charge"
    )
    report.add_argument(
        "--from", dest="from_", type=_instant, help="first interval start (ISO 8601, UTC offset)"
    )
    report.add_argument(
        "--to", type=_instant, help="end (exclusive) of interval starts (ISO 8601, UTC offset)"
    )
    report.set_defaults(func=report_command)
    from connector.commands.portfolio import register_prove

    register_prove(settlement_sub)


def _instant(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a UTC offset, e.g. 2019-03-18T16:00:00Z")
    return value


def _open(settings: Settings) -> tuple[Any, Any, Any]:
    from connector.ethereum.client import connect, reporter_account
    from connector.store.db import migrate, open_store

    store = open_store(settings.store.url)
    migrate(store)
    return store, connect(settings.ethereum.rpc_url), reporter_account(settings)


def deploy_command(args: argparse.Namespace, settings: Settings) -> int:
    """Deploy with the reporter key as owner, reporter and BRP; print the address and store it."""
    from connector.context import utc_now
    from connector.ethereum.deploy import deploy, remember

    if not settings.ethereum.rpc_url:
        print("contract deploy: set ethereum.rpc_url (CONNECTOR_ETHEREUM_RPC_URL)", file=sys.stderr)
        return 2
    store, w3, account = _open(settings)
    compiled = None  # Settlement, the per-meter mode
    if settings.ethereum.mode == "portfolio":  # docs/settlement.md, portfolio mode
        from connector.ethereum.portfolio import artifact

        compiled = artifact()
    try:
        address, gas = deploy(
            w3, account, settings.ethereum, interval_length=settings.window.length, compiled=compiled
        )
        remember(store, address, settings.ethereum, utc_now())
    finally:
        store.dispose()
    print(address)
    print(f"deployed by {account.address} ({gas} gas); stored as ethereum.contract_address", file=sys.stderr)
    return 0


def plan_upload_command(args: argparse.Namespace, settings: Settings) -> int:
    """Parse the CSV (exit 2 with the bad line on error) and submit the plans as the BRP."""
    if settings.ethereum.mode == "portfolio":
        from connector.commands.portfolio import plan_upload_portfolio

        return plan_upload_portfolio(args, settings)
    from connector.context import utc_now
    from connector.ethereum.client import contract_address
    from connector.ethereum.plans import PlanFileError, parse_plan_csv, upload_plans

    try:
        with open(args.file, encoding="utf-8") as handle:
            rows = parse_plan_csv(handle.read())
    except (OSError, PlanFileError) as exc:
        print(f"plan upload: {exc}", file=sys.stderr)
        return 2
    store, w3, account = _open(settings)
    try:
        hashes = upload_plans(
            w3, account, contract_address(settings.ethereum, store), settings.ethereum, store, rows, utc_now()
        )
    finally:
        store.dispose()
    print(f"{len(rows)} plan rows in {len(hashes)} transaction(s)")
    return 0


def report_command(args: argparse.Namespace, settings: Settings) -> int:
    """Print the settlement table from the store (no node needed)."""
    from connector.ethereum.report import format_table, settlement_rows
    from connector.store.db import migrate, open_store

    store = open_store(settings.store.url)
    try:
        migrate(store)
        rows = settlement_rows(store, None, args.from_, args.to)
    finally:
        store.dispose()
    print(format_table(rows) if rows else "no relayed intervals in this range")
    return 0
