"""`smartmeter-connector` command line: one sub-command per capability, each registered by its own module.

Each module in COMMAND_MODULES has `register(subparsers)`, which adds its parsers with
`set_defaults(func=handler)`; a handler takes `(args, settings)` and returns the exit status. Heavy imports
stay inside handlers so `--help` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from connector import __version__
from connector.settings import SettingsError, load_settings

COMMAND_MODULES = (
    "connector.commands.run",  # run, db
    "devledger.cli",  # devledger
    "connector.commands.keys",  # keys
    "connector.commands.verify",  # verify
    "connector.commands.ethereum",  # contract, plan, settlement
    "connector.commands.orion",  # subscribe, simulate
    "connector.commands.demo",  # demo
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="smartmeter-connector",
        description="FIWARE smart-meter readings made tamper-evident on BigchainDB and settled on Ethereum.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--config", help="YAML settings file (default: config/connector.yaml)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, build the settings once, run the chosen command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        settings = load_settings(args.config, environ=_environ())
    except SettingsError as exc:
        print(f"smartmeter-connector: bad configuration: {exc}", file=sys.stderr)
        return 2
    try:
        return int(args.func(args, settings) or 0)
    except SettingsError as exc:  # found once the store is open (e.g. its window length)
        print(f"smartmeter-connector: bad configuration: {exc}", file=sys.stderr)
        return 2


def _environ() -> dict[str, str]:
    # The one place the process environment is read; everything else gets the settings object.
    import os

    return dict(os.environ)
