"""Portfolio mode's commands (`ethereum.mode: portfolio`): `plan upload FILE.csv` per portfolio and
`settlement prove --meter ID --window START`, which proves a meter's window on chain with its audit path
in the window period's tree (docs/settlement.md)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from connector.settings import Settings


def register_prove(settlement_sub: Any) -> None:
    """Add `settlement prove` to the `settlement` sub-commands."""
    prove = settlement_sub.add_parser("prove", help="portfolio mode: prove a meter's window on chain")
    prove.add_argument("--meter", required=True, help="entity id of the meter")
    prove.add_argument("--window", required=True, help="the window's start, ISO 8601 with offset")
    prove.add_argument(
        "--tenant", default="", help="Fiware-Service of the meter (default: the default tenant)"
    )
    prove.add_argument("--servicepath", default="/#", help="Fiware-ServicePath (default: /#, any)")
    prove.set_defaults(func=prove_command)


def _stores(settings: Settings) -> tuple[Any, Any, Any, str]:
    from connector.ethereum.client import connect, contract_address, reporter_account
    from connector.store.db import migrate, open_store

    store = open_store(settings.store.url)
    migrate(store)
    try:
        return (
            store,
            connect(settings.ethereum.rpc_url),
            reporter_account(settings),
            contract_address(settings.ethereum, store),
        )
    except BaseException:
        store.dispose()
        raise


def prove_command(args: argparse.Namespace, settings: Settings) -> int:
    """Build the window's proof from the store and send `proveMeter`; exit 1 when it is refused."""
    from datetime import UTC, datetime

    from connector.api.errors import ApiError
    from connector.api.queries import find_meter
    from connector.api.tenancy import Scope
    from connector.ethereum.errors import CALL_ERRORS, describe
    from connector.ethereum.portfolio_ops import prove_on_chain
    from connector.proofs import ProofUnavailable, window_proof
    from ngsi.tenants import TenantError, normalise_tenant

    try:
        start = datetime.fromisoformat(args.window.replace("Z", "+00:00"))
    except ValueError:
        print(f"settlement prove: --window: not an ISO 8601 time: {args.window!r}", file=sys.stderr)
        return 2
    start = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
    store, w3, account, address = _stores(settings)
    try:
        with store.reading() as conn:
            scope = Scope(normalise_tenant(args.tenant, "--tenant"), tuple(args.servicepath.split(",")))
            meter = find_meter(conn, scope, args.meter)
            found = window_proof(conn, meter, start, "window", settings.window.length)
        receipt = prove_on_chain(w3, account, address, settings.ethereum, found.proof)
    except ProofUnavailable as exc:
        print(f"settlement prove: {exc.message}", file=sys.stderr)
        return 1
    except (ApiError, TenantError) as exc:
        print(f"settlement prove: {getattr(exc, 'description', None) or exc}", file=sys.stderr)
        return 1
    except CALL_ERRORS as exc:
        print(f"settlement prove: refused by the contract or node: {describe(exc)}", file=sys.stderr)
        return 1
    finally:
        store.dispose()
    tx, gas = receipt["transactionHash"].hex(), receipt["gasUsed"]
    print(
        f"proven: {args.meter} at {start.isoformat()} in root {found.proof.root.hex()} ({gas} gas, tx {tx})"
    )
    return 0


def plan_upload_portfolio(args: argparse.Namespace, settings: Settings) -> int:
    """`plan upload` in portfolio mode: CSV tenant,interval_start,planned_wh submitted per portfolio."""
    from connector.ethereum.plans import PlanFileError
    from connector.ethereum.portfolio_ops import parse_portfolio_csv, upload_portfolio_plans

    try:
        with open(args.file, encoding="utf-8") as handle:
            rows = parse_portfolio_csv(handle.read())
    except (OSError, PlanFileError) as exc:
        print(f"plan upload: {exc}", file=sys.stderr)
        return 2
    store, w3, account, address = _stores(settings)
    try:
        receipts = upload_portfolio_plans(w3, account, address, settings.ethereum, rows)
    finally:
        store.dispose()
    print(f"{len(rows)} portfolio plan rows in {len(receipts)} transaction(s)")
    return 0
