"""`smartmeter-connector keys ...`: inspect, export and back up the connector's keystore.

No sub-command ever prints a private key: `show` and `export-public` print public keys only, and a backup
is written to a file (mode 0600), sealed exactly as the keystore stores it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from connector.settings import Settings
from ngsi.tenants import TenantError, normalise_tenant

if TYPE_CHECKING:
    from connector.keystore import Keystore

Handler = Callable[[argparse.Namespace, Settings], int]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `keys list | show METER | export-public | backup FILE | restore FILE`."""
    keys = sub.add_parser("keys", help="the keystore of meter key pairs")
    actions = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    actions.add_parser("list", help="list the keystore's entries").set_defaults(func=cmd_list)
    show = actions.add_parser("show", help="the public key of one meter")
    show.add_argument("meter", help='"tenant|service_path|entity_id", or an entity id if it is unique')
    show.set_defaults(func=cmd_show)
    export = actions.add_parser("export-public", help="every meter's public key as JSON")
    export.set_defaults(func=cmd_export_public)
    backup = actions.add_parser("backup", help="write every entry, still sealed, to FILE (mode 0600)")
    backup.add_argument("file")
    backup.set_defaults(func=cmd_backup)
    restore = actions.add_parser(
        "restore",
        help="add the entries of a backup FILE this keystore lacks; its key replaces a meter key made "
        "after the keystore was lost when the meter's asset (in the store) is owned by the backup's key",
    )
    restore.add_argument("file")
    restore.set_defaults(func=cmd_restore)


def _keystore(settings: Settings) -> Keystore:
    from connector.keystore import Keystore

    return Keystore(settings.keystore.path, settings.keystore.passphrase)


def _guard(action: Handler) -> Handler:
    """Run a keystore action, turning KeystoreError into a one-line message and exit status 1."""

    def run(args: argparse.Namespace, settings: Settings) -> int:
        from connector.keystore import KeystoreError

        try:
            return int(action(args, settings))
        except (KeystoreError, TenantError, OSError, ValueError) as exc:
            print(f"smartmeter-connector keys: {exc}", file=sys.stderr)
            return 1

    run.__doc__ = action.__doc__
    return run


@_guard
def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    """Print one line per entry: kind, name, public key (meters)."""
    for entry in _keystore(settings).list():
        print(f"{entry.kind}\t{entry.name}\t{entry.public_key or '-'}")
    return 0


@_guard
def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    """Print the public key of one meter; exit 1 if there is none (or the entity id is ambiguous)."""
    meters = [e for e in _keystore(settings).list() if e.kind == "meter"]
    matches = [e for e in meters if e.name == _keystore_name(args.meter)] or [
        e for e in meters if e.name.rsplit("|", 1)[-1] == args.meter
    ]
    if len(matches) != 1:
        what = "no meter" if not matches else f"{len(matches)} meters"
        print(f"smartmeter-connector keys: {what} named {args.meter!r} in the keystore", file=sys.stderr)
        return 1
    print(json.dumps({"meter": matches[0].name, "public_key": matches[0].public_key}))
    return 0


@_guard
def cmd_export_public(args: argparse.Namespace, settings: Settings) -> int:
    """Print {meter: public key} for every meter, as JSON."""
    meters = {e.name: e.public_key for e in _keystore(settings).list() if e.kind == "meter"}
    print(json.dumps(meters, indent=2, sort_keys=True))
    return 0


@_guard
def cmd_backup(args: argparse.Namespace, settings: Settings) -> int:
    """Write the backup file and say how many entries it holds."""
    count = _keystore(settings).backup(args.file)
    print(f"backed up {count} entries to {args.file}")
    return 0


@_guard
def cmd_restore(args: argparse.Namespace, settings: Settings) -> int:
    """Restore from a backup file; say how many entries were added and which meter keys were replaced."""
    owners: dict[str, str] = {}

    def replaceable(name: str, backup_key: str) -> bool:
        # The store is read only when the backup conflicts with a key here (a restore into an empty
        # keystore needs no store).
        if not owners:
            owners.update(_asset_keys(settings))
        return owners.get(name) == backup_key

    done = _keystore(settings).restore(args.file, replaceable)
    print(f"restored {done.added} entries from {args.file}")
    for name, old in done.replaced:
        print(f"replaced the key of {name} ({old} -> {owners[name]}): its asset is owned by the backup's key")
    return 0


def _asset_keys(settings: Settings) -> dict[str, str]:
    """The store's {meter keystore name: key its asset is owned by}; {} when the store does not exist yet."""
    from connector.ledger.recovery import asset_keys
    from connector.store.db import open_store

    store = open_store(settings.store.url)
    try:
        return asset_keys(store)
    except SQLAlchemyError as exc:  # no store (or no meters table) yet: no asset to restore a key for
        print(
            f"smartmeter-connector keys: store not read ({type(exc).__name__}); no key replaced",
            file=sys.stderr,
        )
        return {}
    finally:
        store.dispose()


def _keystore_name(meter: str) -> str:
    """`tenant|service_path|entity_id` with the tenant spelled as the connector files it (lower-case)."""
    tenant, sep, rest = meter.partition("|")
    return normalise_tenant(tenant) + sep + rest if sep else meter
