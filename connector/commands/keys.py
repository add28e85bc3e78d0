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

from connector.settings import Settings

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
    restore = actions.add_parser("restore", help="add the entries of a backup FILE this keystore lacks")
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
        except (KeystoreError, OSError, ValueError) as exc:
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
    matches = [e for e in meters if e.name == args.meter] or [
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
    """Restore from a backup file and say how many entries were added."""
    added = _keystore(settings).restore(args.file)
    print(f"restored {added} entries from {args.file}")
    return 0
