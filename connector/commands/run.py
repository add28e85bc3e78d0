"""`smartmeter-connector run` (serve HTTP + scheduler) and `smartmeter-connector db upgrade`."""

from __future__ import annotations

import argparse

from connector.settings import Settings


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add `run` and `db`."""
    run = sub.add_parser("run", help="serve /notify and the query API, close windows, write the ledger")
    run.add_argument("--listen", help="host:port to listen on (default: settings listen)")
    run.set_defaults(func=_run)
    db = sub.add_parser("db", help="store maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    up = db_sub.add_parser("upgrade", help="apply the store's migrations (Alembic)")
    up.add_argument("--revision", default="head")
    up.set_defaults(func=_db_upgrade)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from connector.service import serve

    if args.listen:
        settings = settings.replace(listen=args.listen)
    return serve(settings)


def _db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from connector.store.db import migrate, open_store

    store = open_store(settings.store.url)
    migrate(store, args.revision)
    print(f"store at {settings.store.url.split('@')[-1]} is at revision {args.revision}")
    return 0
