"""`smartmeter-connector run` (serve HTTP + scheduler) and `smartmeter-connector db upgrade`."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from connector.roles import APART, LEDGER
from connector.settings import Settings, SettingsError, validate


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add `run` and `db`."""
    run = sub.add_parser("run", help="serve /notify and the query API, close windows, write the ledger")
    run.add_argument("--listen", help="host:port to listen on (default: settings listen)")
    run.add_argument("--workers", type=int, help="HTTP worker processes (default: settings server.workers)")
    # A worker process started by the primary (connector/supervisor.py): the inherited listening socket.
    run.add_argument("--worker-fd", type=int, help=argparse.SUPPRESS)
    run.add_argument("--primary-pid", type=int, help=argparse.SUPPRESS)
    # The ledger process (embedded dev ledger, ledger writer, relay) or the closer process (window closer,
    # period-tree builder) started by the primary.
    run.add_argument("--role", choices=APART, help=argparse.SUPPRESS)
    run.set_defaults(func=_run)
    db = sub.add_parser("db", help="store maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    up = db_sub.add_parser("upgrade", help="apply the store's migrations (Alembic)")
    up.add_argument("--revision", default="head")
    up.set_defaults(func=_db_upgrade)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.listen:
        settings = settings.replace(listen=args.listen)
    if args.workers is not None:
        try:
            server = dataclasses.replace(settings.server, workers=args.workers)
            settings = validate(settings.replace(server=server))
        except SettingsError as exc:
            print(f"smartmeter-connector: --workers: {exc}", file=sys.stderr)
            return 2
    if args.worker_fd is not None or args.role:  # started by the primary, with its --workers
        from connector.supervisor import serve_worker

        return serve_worker(settings, args.worker_fd, args.primary_pid, args.role or LEDGER)
    if settings.server.workers > 1 or settings.server.ledger_process:
        from connector.supervisor import serve_workers  # before anything imports prometheus_client

        return serve_workers(settings, args.config)
    from connector.service import serve

    return serve(settings)


def _db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from connector.store.db import migrate, open_store

    store = open_store(settings.store.url)
    migrate(store, args.revision)
    print(f"store at {settings.store.url.split('@')[-1]} is at revision {args.revision}")
    return 0
