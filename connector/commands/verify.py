"""`smartmeter-connector verify --meter ID [--from --to]`: check a meter's off-chain readings against the
fingerprints anchored on BigchainDB. Exit status 0 when every window is ok, 1 otherwise."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TextIO

from connector.settings import Settings

CHUNK = timedelta(days=31)  # windows are recomputed a month at a time, so memory stays flat


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `verify` sub-command."""
    p = sub.add_parser("verify", help="verify a meter's readings against its fingerprints on the ledger")
    p.add_argument("--meter", help="entity id of the meter (required unless --proof)")
    p.add_argument("--from", dest="from_", help="first window start, ISO 8601 (default: the first window)")
    p.add_argument("--to", help="end, exclusive, ISO 8601 (default: after the last window)")
    p.add_argument("--tenant", default="", help="Fiware-Service of the meter (default: the default tenant)")
    p.add_argument("--servicepath", default="/#", help="Fiware-ServicePath (default: /#, any)")
    p.add_argument("--all", action="store_true", help="list every window, not only those that are not ok")
    p.add_argument("--proof", metavar="FILE", help="check a window's proof (GET .../proof) with no store")
    p.add_argument(
        "--ledger-url", action="append", help="with --proof: BigchainDB to check (default: ledger)"
    )
    p.add_argument("--rpc-url", help="with --proof: check the root on Ethereum (portfolio contract) instead")
    p.add_argument("--contract", help="with --rpc-url: the PortfolioSettlement address")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace, settings: Settings, out: TextIO = sys.stdout) -> int:
    """Run the verification; print a table of windows that are not ok (or all with --all) and a verdict."""
    if getattr(args, "proof", None):
        from connector.commands.proof import check_proof_file

        return check_proof_file(args, settings, out)
    if not args.meter:
        print("smartmeter-connector verify: --meter ID or --proof FILE is required", file=sys.stderr)
        return 2
    try:
        from_, to = _time(args.from_, "--from"), _time(args.to, "--to")
    except ValueError as exc:
        print(f"smartmeter-connector verify: {exc}", file=sys.stderr)
        return 2
    from connector.store.db import open_store

    store = open_store(settings.store.url)
    try:
        return _verify(store, settings, args, from_, to, out)
    finally:
        store.dispose()


def _time(text: str | None, name: str) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{name}: not an ISO 8601 time: {text!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _verify(store, settings: Settings, args, from_, to, out: TextIO) -> int:  # type: ignore[no-untyped-def]
    from connector.api.queries import find_meter, window_bounds
    from connector.api.tenancy import Scope
    from connector.audit import LedgerReadError, load_off_chain, overall, verify_meter
    from connector.errors import ApiError
    from ngsi.tenants import TenantError, normalise_tenant

    try:
        with store.reading() as conn:
            scope = Scope(normalise_tenant(args.tenant, "--tenant"), tuple(args.servicepath.split(",")))
            meter = find_meter(conn, scope, args.meter)
            bounds = window_bounds(conn, meter.id)
        history = _ledger_history(settings, meter.asset_id)
    except (ApiError, LedgerReadError, TenantError) as exc:
        print(f"smartmeter-connector verify: {getattr(exc, 'description', None) or exc}", file=sys.stderr)
        return 1
    lo, hi = _span(from_, to, [*bounds, *(w.start for w in history.windows)], settings.window.length)
    verdicts = []
    while lo is not None and hi is not None and lo < hi:
        step = min(lo + CHUNK, hi)
        with store.reading() as conn:
            off_chain = load_off_chain(conn, meter.id, lo, step)
        spec_for = partial(settings.attribute_spec, meter.entity_type)
        verdicts += verify_meter(off_chain, history, meter.chain_seed, spec_for, lo, step)
        lo = step
    verdict, counts = overall(verdicts)
    _print_table(verdicts, args.all, out)
    summary = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
    print(f"meter {args.meter}: {verdict.upper()} ({summary or 'no windows'})", file=out)
    return 0 if verdict == "ok" else 1


def _ledger_history(settings: Settings, asset_id: str | None):  # type: ignore[no-untyped-def]
    from connector.audit import DriverLedger, LedgerHistory
    from connector.ledger.client import DriverClient, ledger_urls

    if not asset_id:
        return LedgerHistory([], from_genesis=True)
    reader = DriverLedger(DriverClient(ledger_urls(settings), settings.ledger))
    return reader.window_transfers(asset_id, None, None)


def _span(
    from_: datetime | None, to: datetime | None, starts: list[datetime | None], length: int
) -> tuple[datetime | None, datetime | None]:
    """The range to verify: as given, else from the first to past the last window known on either side."""
    known = [s for s in starts if s is not None]
    lo = from_ or (min(known) if known else None)
    hi = to or (max(known) + timedelta(seconds=length) if known else None)
    return lo, hi


def _print_table(verdicts, show_all: bool, out: TextIO) -> None:  # type: ignore[no-untyped-def]
    rows = [v for v in verdicts if show_all or v.status != "ok"]
    if not rows:
        return
    print(f"{'window start':<26} {'status':<18} {'late':>4}  problems", file=out)
    for v in rows:
        problems = "; ".join(v.problems)
        print(f"{v.start.isoformat():<26} {v.status:<18} {len(v.late):>4}  {problems}", file=out)
